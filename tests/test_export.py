"""Exported workflows run with other tools give the local back-end's results."""
import json
import subprocess
import sys

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from mempamal import Experiment, run
from mempamal.backends.soma_workflow import _end_light_mode_scheduler
from mempamal.export import EXPORTERS, export
from mempamal.workflow import load_workflow

from conftest import assert_same_results


def write_iris(workdir):
    """Outer 2-fold cross-validation, no grid: two refits and a gather."""
    X, y = load_iris(return_X_y=True)
    Experiment(LogisticRegression(), cv=StratifiedKFold(2, shuffle=True, random_state=0),
               scoring="accuracy").write(X, y, workdir)


@pytest.fixture(scope="module")
def local_results(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("local") / "run"
    write_iris(workdir)
    run(workdir, backend="local", progress=False)
    return workdir


def test_unknown_format_is_refused(tmp_path):
    write_iris(tmp_path / "run")
    assert {"soma-workflow", "cmd-list"} <= set(EXPORTERS)
    with pytest.raises(ValueError, match="format: unknown export format 'xml'"):
        export(tmp_path / "run", "xml", tmp_path / "wf.xml")


def test_soma_workflow_file_runs_in_a_plain_controller(tmp_path, local_results, monkeypatch):
    monkeypatch.delenv("SOMA_WORKFLOW_CONFIG", raising=False)  # isolated light mode sets it for good
    from soma_workflow import constants
    from soma_workflow.client import Helper, WorkflowController

    workdir = tmp_path / "run"
    write_iris(workdir)
    out = subprocess.run([sys.executable, "-m", "mempamal", "export", str(workdir), "--format", "soma-workflow",
                          "-o", str(tmp_path / "wf.json")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr

    workflow = Helper.unserialize(str(tmp_path / "wf.json"))
    assert sorted(j.name for j in workflow.jobs) == ["gather", "refit-o0", "refit-o1"]
    controller = WorkflowController(isolated_light_mode=str(tmp_path / "soma-workflow"))
    try:
        workflow_id = controller.submit_workflow(workflow)
        controller.wait_workflow(workflow_id)
        jobs = controller.workflow_elements_status(workflow_id)[0]
        assert [j[3][:2] for j in jobs] == [(constants.FINISHED_REGULARLY, 0)] * 3
        controller.delete_workflow(workflow_id)
    finally:
        _end_light_mode_scheduler(controller)  # its threads would poll until the tests end
        controller.stop_engine()
    assert_same_results(workdir, local_results)


def test_cmd_list_runs_from_anywhere(tmp_path, local_results):
    # A path that only survives correct shell quoting.
    workdir = tmp_path / "my run's dir"
    write_iris(workdir)
    export(workdir, "cmd-list", tmp_path / "cmds.json")
    doc = json.loads((tmp_path / "cmds.json").read_text())
    workflow = load_workflow(workdir)
    assert doc["names"] == [t.name for t in workflow.tasks]
    assert sorted(doc["dependencies"]) == sorted(
        [doc["names"].index(d), doc["names"].index(t.name)] for t in workflow.tasks for d in t.dependencies)

    # Run them in waves, each command once all it waits for have succeeded, from another directory.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = set()
    while len(done) < len(doc["commands"]):
        wave = [j for j in range(len(doc["commands"])) if j not in done
                and all(i in done for i, k in doc["dependencies"] if k == j)]
        procs = [subprocess.Popen(["bash", "-c", doc["commands"][j]], cwd=elsewhere) for j in wave]
        assert [p.wait() for p in procs] == [0] * len(wave)
        done.update(wave)
    assert_same_results(workdir, local_results)
