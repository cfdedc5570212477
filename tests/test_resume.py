"""Resume after any interruption, and never mix experiments.

The fault test kills a real ``mempamal run`` (and its worker processes) mid-run with SIGKILL,
then runs again: the results equal an uninterrupted run's and no finished task is recomputed.
"""
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_regression
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold

from mempamal import Experiment, load_results, run
from mempamal.workdir.lock import StaleLockWarning
from mempamal.backends import WorkflowError
from mempamal.workdir.files import InputFileError
from mempamal.workdir.layout import TaskId
from mempamal.tasks import run_task
from mempamal.workdir.workflow import load_workflow

from conftest import assert_same_as_sklearn, sklearn_nested
from reliab_helpers import HeldRidge, KillOnce, kill_run_once_held



def small_data():
    return make_regression(40, 4, noise=1.0, random_state=0)


def small_experiment(alphas=(0.1, 1.0)):
    return Experiment(Ridge(), cv=KFold(2), param_grid={"alpha": list(alphas)}, inner_cv=2, grid_chunk_size=1)


def stamps(workdir, names):
    """(mtime_ns, inode) of the given outputs: a recomputed output gets new ones (atomic rename)."""
    return {n: ((workdir / n).stat().st_mtime_ns, (workdir / n).stat().st_ino) for n in names}


def test_kill_run_and_workers_then_resume(tmp_path):
    X, y = small_data()
    gate = tmp_path / "gate"
    # chunk 0 of each inner fold fits quickly, chunk 1 waits at the gate: the run can only
    # get stuck with every worker held, some maps done and others not, whatever the timing.
    grid = [{"alpha": [0.1, 1.0], "hold": [False]}, {"alpha": [0.1, 1.0], "hold": [True]}]
    exp = Experiment(HeldRidge(gate=str(gate)), cv=KFold(3), param_grid=grid, inner_cv=KFold(2),
                     grid_chunk_size=2)
    killed, reference = exp.write(X, y, tmp_path / "killed"), exp.write(X, y, tmp_path / "reference")
    maps = [t.outputs[0] for t in load_workflow(killed).tasks if t.stage == "map"]

    gate.touch()
    held_pids = kill_run_once_held(killed, gate)
    for pid in held_pids:  # the workers went with it
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), f"worker {pid} survived the kill"

    done = [m for m in maps if (killed / m).exists()]
    assert 0 < len(done) < len(maps)
    before = stamps(killed, done)
    gate.unlink()
    with pytest.warns(StaleLockWarning, match="took over the lock of a run that is no longer alive"):  # the killed run's lock
        report = run(killed, n_jobs=2, progress=False)
    assert set(report.skipped) == {f"map-{Path(m).stem}" for m in done}
    assert f"{len(done)} skipped" in report.summary()
    assert stamps(killed, done) == before  # finished before the kill: not recomputed

    run(reference, n_jobs=2, progress=False)
    a, b = load_results(killed), load_results(reference)
    np.testing.assert_array_equal(a.test_scores["score"], b.test_scores["score"])
    np.testing.assert_array_equal(a.inner_scores["score"], b.inner_scores["score"])
    assert a.best_index == b.best_index
    for o in range(3):
        np.testing.assert_array_equal(a.test_predictions[o], b.test_predictions[o])


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, just not reaped
    except FileNotFoundError:
        return False


def test_killed_worker_is_reported_failed_and_rerun_finishes(tmp_path):
    X, y = small_data()
    workdir = tmp_path / "run"
    grid = {"alpha": [0.1, 1.0]}
    Experiment(KillOnce(marker=str(tmp_path / "killed-once")), cv=KFold(2), param_grid=grid,
               inner_cv=2).write(X, y, workdir)
    n_tasks = len(load_workflow(workdir).tasks)
    with pytest.raises(WorkflowError) as info:
        run(workdir, n_jobs=2, progress=False)
    report = info.value.report
    failed = report.names("failed")
    assert failed and all(name.startswith("map-") for name in failed)
    assert len(report.outcomes) + len(report.skipped) == n_tasks  # every task accounted for, none lost
    assert f"task {failed[0]} failed" in str(info.value)
    # Loky fails every task in flight when a worker dies, even one that had just written its output.
    workflow = load_workflow(workdir)
    lost = {name for name in failed if not (workdir / workflow.by_name[name].outputs[0]).exists()}
    assert lost  # at least the task whose worker was killed
    again = run(workdir, n_jobs=2, progress=False)
    assert not again.names("failed") and lost <= set(again.names("done"))
    assert set(failed) <= set(again.names("done")) | set(again.skipped)
    oracle = sklearn_nested(Ridge(), grid, X, y, cv=KFold(2), inner_cv=2, scoring=None)
    assert_same_as_sklearn(load_results(workdir), oracle, ["score"])


def test_outputs_of_another_experiment_are_recomputed_and_refused_by_reduces(tmp_path):
    X, y = small_data()
    mine, other = tmp_path / "mine", tmp_path / "other"
    small_experiment().write(X, y, mine)
    small_experiment(alphas=(0.1, 2.0)).write(X, y, other)  # same tasks, another experiment
    run(mine, progress=False)
    run(other, progress=False)
    shutil.copy(other / "maps/o0-i0-c1.npz", mine / "maps/o0-i0-c1.npz")
    with pytest.raises(InputFileError, match=r"task refit-o0 needs .*maps/o0-i0-c1\.npz: this output of task "
                                             r"map-o0-i0-c1 belongs to another experiment"):
        run_task(mine, TaskId("refit", outer=0))
    shutil.copy(other / "outer/o1.npz", mine / "outer/o1.npz")
    with pytest.raises(InputFileError, match=r"task gather needs .*outer/o1\.npz: this output of task refit-o1 "
                                             r"belongs to another experiment"):
        run_task(mine, TaskId("gather"))
    # The same file under another task's name is not that task's output either.
    shutil.copy(mine / "maps/o0-i1-c0.npz", mine / "maps/o0-i0-c0.npz")
    report = run(mine, progress=False)
    assert sorted(report.names("done")) == ["gather", "map-o0-i0-c0", "map-o0-i0-c1", "refit-o0", "refit-o1"]
    assert len(report.skipped) == len(load_workflow(mine).tasks) - 5
    oracle = sklearn_nested(Ridge(), {"alpha": [0.1, 1.0]}, X, y, cv=KFold(2), inner_cv=2, scoring=None)
    assert_same_as_sklearn(load_results(mine), oracle, ["score"])


def test_corrupt_output_is_recomputed_and_resume_false_recomputes_all(workdir):
    X, y = small_data()
    small_experiment().write(X, y, workdir)
    first = run(workdir, progress=False)
    n_tasks = len(first.outcomes)
    (workdir / "maps/o1-i1-c0.npz").write_bytes(b"PK\x03\x04 truncated")
    report = run(workdir, progress=False)
    assert sorted(report.names("done")) == ["gather", "map-o1-i1-c0", "refit-o1"]
    assert f"{n_tasks} tasks: 3 done, 0 failed, 0 not run, {n_tasks - 3} skipped" in report.summary()
    report = run(workdir, resume=False, progress=False)
    assert not report.skipped and len(report.names("done")) == n_tasks


def test_writing_the_same_experiment_keeps_outputs_a_different_one_needs_overwrite(workdir):
    X, y = small_data()
    small_experiment().write(X, y, workdir)
    run(workdir, progress=False)
    outputs = [o for t in load_workflow(workdir).tasks for o in t.outputs]
    before = stamps(workdir, outputs + ["experiment.json", "data/X.npy", "folds.npz"])
    small_experiment().write(X, y, workdir)  # a no-op
    assert stamps(workdir, before) == before
    assert len(run(workdir, progress=False).skipped) == len(outputs) - 1  # gather has two outputs
    with pytest.raises(FileExistsError, match=r"holds a different experiment.*overwrite=True \(--overwrite\)"):
        small_experiment().write(X, y + 1, workdir)  # other data: another experiment
    with pytest.raises(FileExistsError):
        small_experiment(alphas=(0.5, 1.0)).write(X, y, workdir)
    small_experiment(alphas=(0.5, 1.0)).write(X, y, workdir, overwrite=True)
    assert not (workdir / "results.json").exists() and not (workdir / "maps").exists()


@pytest.mark.parametrize("victim, corrupt", [
    ("data/y.npy", False), ("data/X.npy", True), ("folds.npz", False), ("folds.npz", True),
    ("experiment.json", True),
])
def test_missing_or_corrupt_input_names_file_and_task(workdir, victim, corrupt):
    X, y = small_data()
    small_experiment().write(X, y, workdir)
    if corrupt:
        (workdir / victim).write_bytes((workdir / victim).read_bytes()[:40])
    else:
        (workdir / victim).unlink()
    state = "unreadable" if corrupt else "missing"
    with pytest.raises(InputFileError, match=rf"task map-o1-i0-c1 needs .*{victim}: {state}.*write the experiment"):
        run_task(workdir, TaskId("map", outer=1, inner=0, chunk=1))


def test_missing_output_names_the_task_that_failed_through_the_command(workdir):
    X, y = small_data()
    small_experiment().write(X, y, workdir)
    proc = subprocess.run([sys.executable, "-m", "mempamal", "task", "refit", ".", "--outer", "1"], cwd=workdir,
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert proc.stderr.startswith("mempamal: task refit-o1 needs maps/o1-i0-c0.npz: missing;")
    assert ("task refit-o1 needs maps/o1-i0-c0.npz: missing; it is the output of task map-o1-i0-c0: "
            "did it fail? see logs/map-o1-i0-c0.log") in proc.stderr
