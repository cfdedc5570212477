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
from mempamal.workdir.batches import plan_batches
from mempamal.workdir.workflow import load_workflow, shell_line

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


@pytest.mark.parametrize("batch_size, jobs", [(1, ["gather", "refit-o0", "refit-o1"]), (2, ["gather", "refit-batch0"])])
def test_soma_workflow_file_runs_in_a_plain_controller(tmp_path, local_results, monkeypatch, batch_size, jobs):
    monkeypatch.delenv("SOMA_WORKFLOW_CONFIG", raising=False)  # isolated light mode sets it for good
    from soma_workflow import constants
    from soma_workflow.client import Helper, WorkflowController

    workdir = tmp_path / "run"
    write_iris(workdir)
    out = subprocess.run([sys.executable, "-m", "mempamal", "export", str(workdir), "--format", "soma-workflow",
                          "-o", str(tmp_path / "wf.json"), "--batch-size", str(batch_size)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr

    workflow = Helper.unserialize(str(tmp_path / "wf.json"))
    assert sorted(j.name for j in workflow.jobs) == jobs
    controller = WorkflowController(isolated_light_mode=str(tmp_path / "soma-workflow"))
    try:
        workflow_id = controller.submit_workflow(workflow)
        controller.wait_workflow(workflow_id)
        jobs = controller.workflow_elements_status(workflow_id)[0]
        assert [j[3][:2] for j in jobs] == [(constants.FINISHED_REGULARLY, 0)] * len(workflow.jobs)
        controller.delete_workflow(workflow_id)
    finally:
        _end_light_mode_scheduler(controller)  # its threads would poll until the tests end
        controller.stop_engine()
    assert_same_results(workdir, local_results)


def test_cmd_list_runs_from_anywhere(tmp_path, local_results):
    # A path that only survives correct shell quoting.
    workdir = tmp_path / "my run's dir"
    write_iris(workdir)
    export(workdir, "cmd-list", tmp_path / "cmds.json", batch_size=1)
    doc = json.loads((tmp_path / "cmds.json").read_text())
    workflow = load_workflow(workdir)
    assert doc["names"] == [t.name for t in workflow.tasks] and doc["tasks"] == [[t.name] for t in workflow.tasks]
    assert doc["commands"] == [t.shell_command(workdir) for t in workflow.tasks]
    assert sorted(doc["dependencies"]) == sorted(
        [doc["names"].index(d), doc["names"].index(t.name)] for t in workflow.tasks for d in t.dependencies)

    run_in_waves(doc, tmp_path / "elsewhere")
    assert_same_results(workdir, local_results)


def run_in_waves(doc, elsewhere):
    """Run a cmd-list's lines with bash in waves, each once all it waits for have succeeded, from another
    directory; the waves' lines in order."""
    elsewhere.mkdir()
    done, waves = set(), []
    while len(done) < len(doc["commands"]):
        wave = [j for j in range(len(doc["commands"])) if j not in done
                and all(i in done for i, k in doc["dependencies"] if k == j)]
        procs = [subprocess.Popen(["bash", "-c", doc["commands"][j]], cwd=elsewhere, stdout=subprocess.PIPE,
                                  text=True) for j in wave]
        assert [p.wait() for p in procs] == [0] * len(wave)
        for p in procs:
            p.stdout.close()
        done.update(wave)
        waves.append([doc["names"][j] for j in wave])
    return waves


def test_cmd_list_in_batches_run_by_bash(tmp_path):
    from test_soma_workflow import write_iris_nested

    local = tmp_path / "local"
    write_iris_nested(local)
    run(local, backend="local", progress=False)
    workdir = tmp_path / "my run's dir"
    write_iris_nested(workdir)  # 4 maps, 2 refits, gather
    export(workdir, "cmd-list", tmp_path / "cmds.json", batch_size=3)
    doc = json.loads((tmp_path / "cmds.json").read_text())
    assert doc["names"] == ["map-batch0", "map-batch1", "refit-batch0", "gather"]
    assert doc["tasks"] == [["map-o0-i0-c0", "map-o0-i1-c0"], ["map-o1-i0-c0", "map-o1-i1-c0"],
                            ["refit-o0", "refit-o1"], ["gather"]]
    assert sorted(doc["dependencies"]) == [[0, 2], [1, 2], [2, 3]]
    workflow = load_workflow(workdir)
    first = plan_batches(workflow.tasks, batch_size=3)[0].file
    assert doc["commands"][0] == shell_line([workflow.python, "-P", "-m", "mempamal", "task", "batch", ".", "--file", first],
                                            workdir)
    assert doc["commands"][3] == workflow.by_name["gather"].shell_command(workdir)
    assert run_in_waves(doc, tmp_path / "elsewhere") == [["map-batch0", "map-batch1"], ["refit-batch0"], ["gather"]]
    assert_same_results(workdir, local)
