"""submit() / attach() / Submission with back-ends detached as a background process of this machine.

A real ``python -m mempamal run --detached-process`` child in its own session: found again by
attach() from the workdir alone (as after a kernel restart), waited for, cancelled mid-run
(its workers held at a gate file, never a timer), resumed; the results equal run()'s.
"""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sklearn.datasets import make_regression
from sklearn.model_selection import KFold

import mempamal
from mempamal import Experiment, attach, run, submit
from mempamal.backends import WorkflowError
from mempamal.workdir.layout import LOCK
from mempamal.workdir.lock import LockError

from conftest import assert_same_results
from reliab_helpers import HeldRidge

TESTS = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def tests_importable(monkeypatch):
    """The detached process imports the tests' estimators (reliab_helpers) by module path."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS.parent), str(TESTS)]))


def held_experiment(gate):
    # Chunk 0 of each inner fold fits at once; chunk 1 waits while the gate exists.
    grid = [{"alpha": [0.1, 1.0], "hold": [False]}, {"alpha": [0.1, 1.0], "hold": [True]}]
    return Experiment(HeldRidge(gate=str(gate)), cv=KFold(3), param_grid=grid, inner_cv=KFold(2),
                      grid_chunk_size=2)


def wait_for(condition, what, timeout=120):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def test_submit_attach_wait_equals_run(tmp_path):
    X, y = make_regression(40, 4, noise=1.0, random_state=0)
    exp = held_experiment(tmp_path / "no-gate")
    detached, reference = exp.write(X, y, tmp_path / "detached"), exp.write(X, y, tmp_path / "reference")
    submission = submit(detached, n_jobs=2)
    assert submission.backend == "local" and submission.record["process"]["pid"] != os.getpid()
    again = attach(detached)  # a new process would do just this: the workdir alone
    report = again.wait(progress=False)
    assert report.summary().startswith(f"{len(report.outcomes)} tasks: {len(report.outcomes)} done")
    assert again.running() is False and "ended" in again.describe()
    counts = again.status().counts()
    assert counts["done"] == counts["total"]
    run(reference, n_jobs=2, progress=False)
    assert_same_results(again.results(), reference)
    assert mempamal.attach is attach and mempamal.submit is submit


def test_cancel_mid_run_then_resume(tmp_path, capsys):
    X, y = make_regression(40, 4, noise=1.0, random_state=0)
    gate = tmp_path / "gate"
    exp = held_experiment(gate)
    detached, reference = exp.write(X, y, tmp_path / "detached"), exp.write(X, y, tmp_path / "reference")
    gate.touch()
    submission = submit(detached, n_jobs=2)
    held = lambda: [int(p.name.rpartition("-")[2]) for p in tmp_path.glob("gate.held-*")]  # noqa: E731
    wait_for(lambda: len(held()) == 2, "both workers held at the gate")
    assert attach(detached).running() is True
    with pytest.raises(LockError, match="a submitted run is in progress"):
        submit(detached)
    shown = subprocess.run([sys.executable, "-m", "mempamal", "status", str(detached)], capture_output=True,
                           text=True).stdout
    assert "submitted to local: process host" in shown and "; running" in shown
    partial = attach(detached).results(partial=True)
    assert partial.partial and partial.outer_folds == []  # maps done, no refit yet

    attach(detached).cancel()  # another Submission object than the one that started it
    for pid in held() + [submission.record["process"]["pid"]]:
        wait_for(lambda: not _alive(pid), f"process {pid} ended")
    assert not (detached / LOCK).exists()  # released by the interrupted run
    status = attach(detached).status()
    assert status.counts()["lost"] == 0 and status.counts()["done"] > 0
    with pytest.raises(RuntimeError, match="cancelled"):
        attach(detached).wait(progress=False)

    gate.unlink()
    resumed = submit(detached, n_jobs=2)
    assert 0 < len(resumed.record["skipped"])
    resumed.wait(progress=False)
    run(reference, n_jobs=2, progress=False)
    assert_same_results(detached, reference)


def test_detached_failures_raise_as_run_does(tmp_path):
    X, y = make_regression(40, 4, noise=1.0, random_state=0)
    workdir = Experiment(HeldRidge(), cv=KFold(2), param_grid={"alpha": [0.1, -1e300]}, inner_cv=KFold(2),
                         error_score="raise").write(X, y, tmp_path / "run")
    with pytest.raises(ValueError, match="has no option 'bogus'"):
        submit(workdir, bogus=1)
    with pytest.raises(FileNotFoundError, match="no run was submitted"):
        attach(workdir)
    submission = submit(workdir)
    with pytest.raises(WorkflowError, match=r"failed.*\n- task map-o0-i0-c0 failed: .*alpha") as e:
        submission.wait(progress=False)
    assert e.value.report.names("failed")


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_soma_workflow_light_mode_detached(tmp_path, monkeypatch):
    from test_soma_workflow import write_iris_nested

    monkeypatch.delenv("SOMA_WORKFLOW_CONFIG", raising=False)
    soma_dir, local_dir = tmp_path / "soma", tmp_path / "local"
    write_iris_nested(soma_dir)
    write_iris_nested(local_dir)
    submission = submit(soma_dir, backend="soma-workflow", isolated_light_mode=tmp_path / "swf", n_jobs=2,
                        batch_size=1)
    assert submission.record["options"]["isolated_light_mode"] == str(tmp_path / "swf")
    report = attach(soma_dir).wait(progress=False)
    assert len(report.names("done")) == 7
    run(local_dir, n_jobs=2, progress=False)
    assert_same_results(soma_dir, local_dir)
