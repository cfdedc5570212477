"""The slurm back-end on the loopback SLURM the tests start (``-m slurm``): submit() returns once the
arrays are queued, attach() follows them from the workdir alone, a job cancelled mid-run is
reported with its log and a second submission runs only what is missing; results equal the
local back-end's (and scikit-learn's)."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sklearn.datasets import make_regression
from sklearn.model_selection import KFold

from mempamal import Experiment, attach, run, submit
from mempamal.backends import WorkflowError

from conftest import assert_same_results
from reliab_helpers import HeldRidge
from test_slurm import assert_same_as_local_and_sklearn, iris_experiment, local_reference  # noqa: F401

TESTS = Path(__file__).resolve().parent
RESOURCES = dict(mem="500M", time="00:10:00", partition="debug")


def wait_for(condition, what, timeout=240):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.2)


def sacct(element):
    job = element.partition("_")[0]
    return subprocess.run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", job], capture_output=True,
                          text=True).stdout


@pytest.mark.slurm
def test_submit_attach_partial_wait(slurm, tmp_path, local_reference):  # noqa: F811
    X, y, *_, exp = iris_experiment()
    workdir = exp.write(X, y, tmp_path / "run")
    submission = submit(workdir, backend="slurm", batch_size=1, max_array_size=3, **RESOURCES)
    assert [j["stage"] for j in submission.record["detached"]["jobs"]] == ["map", "map", "refit", "gather"]
    assert len(submission.record["detached"]["elements"]) == 7
    shown = subprocess.run([sys.executable, "-m", "mempamal", "status", str(workdir)], capture_output=True,
                           text=True).stdout
    assert "submitted to slurm: SLURM jobs " in shown, shown
    # As after a kernel restart: the workdir alone.
    wait_for(lambda: attach(workdir).results(partial=True).outer_folds, "an outer fold done")
    partial = attach(workdir).results(partial=True)
    assert partial.partial or partial.outer_folds == [0, 1]
    report = attach(workdir).wait(progress=False)
    assert len(report.names("done")) == 7
    assert_same_as_local_and_sklearn(workdir, local_reference)

    # run() with the slurm back-end blocks until the jobs end: same results, nothing left to do.
    again = exp.write(X, y, tmp_path / "blocking")
    report = run(again, backend="slurm", batch_size=2, poll_interval=0.5, progress=False, **RESOURCES)
    assert len(report.names("done")) == 7
    assert_same_results(again, workdir)


@pytest.mark.slurm
def test_cancelled_mid_run_reported_then_resubmitted(slurm, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS.parent), str(TESTS)]))  # jobs import HeldRidge
    X, y = make_regression(40, 4, noise=1.0, random_state=0)
    first, second = tmp_path / "first", tmp_path / "second"  # the gates of chunks 0 and 1
    grid = [{"alpha": [0.1, 1.0], "hold": [True], "gate": [str(first)]},
            {"alpha": [0.1, 1.0], "hold": [True], "gate": [str(second)]}]
    exp = Experiment(HeldRidge(), cv=KFold(2), param_grid=grid, inner_cv=KFold(2), grid_chunk_size=2)
    workdir, reference = exp.write(X, y, tmp_path / "slurm"), exp.write(X, y, tmp_path / "reference")
    first.touch()
    second.touch()
    # All the node's CPUs per element: one element at a time. The second starts while slurmdbd is paused:
    # sacct then lists it only within its array's elements never started (N_[1-7]) until slurmdbd catches
    # up, as when slurmdbd lags on a busy cluster.
    cpus = int(subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True, check=True).stdout)
    submission = submit(workdir, backend="slurm", batch_size=1, cpus=cpus, **RESOURCES)
    element = submission.record["detached"]["elements"]["map-o0-i0-c0"]
    wait_for(lambda: list(tmp_path.glob("first.held-*")), "the first task held at its gate")
    wait_for(lambda: f"{element}|RUNNING" in sacct(element), f"sacct recording {element} running")
    slurmdbd = int((slurm / "slurmdbd.pid").read_text())
    os.kill(slurmdbd, signal.SIGSTOP)
    try:
        first.unlink()
        wait_for(lambda: list(tmp_path.glob("second.held-*")), "the second task held at its gate")
        subprocess.run([sys.executable, "-m", "mempamal", "cancel", str(workdir)], check=True)
        wait_for(lambda: attach(workdir).running() is False, "the jobs gone")
    finally:
        # After wait() has asked sacct (its first call waits for slurmdbd), and in any case.
        threading.Timer(1.0, os.kill, (slurmdbd, signal.SIGCONT)).start()
    with pytest.raises(WorkflowError, match=r"map-o0-i0-c1 failed: its SLURM job \d+_1 ended CANCELLED.*"
                                            r"the job's log: .*map-\d+_1\.out"):
        attach(workdir).wait(progress=False)
    done = [n for n, s in attach(workdir).status().states.items() if s == "done"]
    assert 0 < len(done) < len(submission.record["todo"])

    second.unlink()
    resubmitted = submit(workdir, backend="slurm", batch_size=1, **RESOURCES)
    assert set(resubmitted.record["skipped"]) == set(done)  # only what is missing
    resubmitted.wait(progress=False)
    run(reference, n_jobs=2, progress=False)
    assert_same_results(workdir, reference)
