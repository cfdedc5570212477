"""The Soma-Workflow back-end, on a real Soma-Workflow in isolated light mode.

Each light-mode run costs seconds (every job is a new Python process), so the
experiments are the smallest that still have the structure under test.
"""
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mempamal import Experiment, load_results, run
from mempamal.backends import WorkflowError, available_backends
from mempamal.backends.soma_workflow import SomaWorkflowBackend, _end_light_mode_scheduler, to_soma_workflow
from mempamal.workdir.batches import plan_batches
from mempamal.workdir.files import load_arrays, read_json
from mempamal.workdir.status import workflow_status
from mempamal.workdir.workflow import load_workflow, thread_limits

from conftest import assert_same_results

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def write_iris_nested(workdir):
    """Nested 2 x 2 over 3 values of C: 4 map tasks, 2 refits, a gather."""
    X, y = load_iris(return_X_y=True)
    pipe = Pipeline([("scaler", StandardScaler()), ("logit", LogisticRegression())])
    Experiment(pipe, cv=StratifiedKFold(2, shuffle=True, random_state=0), param_grid={"logit__C": [0.1, 1.0, 10.0]},
               inner_cv=StratifiedKFold(2), scoring="f1_weighted").write(X, y, workdir)


def soma_threads():
    """Threads of Soma-Workflow's light mode (its engine, its local scheduler) still alive."""
    return [t for t in threading.enumerate()
            if t.name in ("poll_thread", "scheduler_loop") or "WorkflowEngine" in type(t).__name__]


def test_registered_and_options_validated():
    assert "soma-workflow" in available_backends()
    for bad in (dict(n_jobs=0), dict(n_jobs=1.5), dict(threads_per_task=-1), dict(poll_interval=0),
                dict(batch_size=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SomaWorkflowBackend(**bad)


def test_n_jobs_sets_the_light_mode_scheduler_and_threads(tmp_path, monkeypatch):
    from soma_workflow.configuration import cpu_count

    monkeypatch.delenv("SOMA_WORKFLOW_CONFIG", raising=False)
    backend = SomaWorkflowBackend(isolated_light_mode=tmp_path / "soma-workflow", n_jobs=1)
    controller = backend._connect()
    try:
        assert backend._configure(controller, tmp_path) == cpu_count()  # one job: every core's threads
        assert controller.scheduler_config.get_proc_nb() == controller.scheduler_config.get_max_proc_nb() == 1
        assert controller._engine_proxy.engine_loop._scheduler._proc_nb == 1
        assert (tmp_path / "soma-workflow-scheduler.cfg").exists()  # the setting's file: this run's, not ~'s
    finally:
        _end_light_mode_scheduler(controller)
        controller.stop_engine()
    assert not soma_threads()
    assert "SOMA_WORKFLOW_CONFIG" not in os.environ


def test_conversion_jobs_groups_dependencies(tmp_path):
    workdir = tmp_path / "run"
    write_iris_nested(workdir)
    workflow = load_workflow(workdir)
    soma = to_soma_workflow(workdir, workflow, threads_per_task=3, batch_size=1)
    by_name = {j.name: j for j in soma.jobs}
    assert sorted(by_name) == sorted(t.name for t in workflow.tasks)
    for t in workflow.tasks:
        job = by_name[t.name]
        assert job.command == t.command
        assert job.working_directory == str(workdir.resolve())
        assert job.stdout_file == str(workdir.resolve() / "logs" / f"{t.name}.out")
        assert job.stderr_file == str(workdir.resolve() / t.log)
        assert job.env == thread_limits(3)
    assert sorted((a.name, b.name) for a, b in soma.dependencies) == sorted(
        (d, t.name) for t in workflow.tasks for d in t.dependencies)
    groups = {g.name: sorted(j.name for j in g.elements) for g in soma.root_group}
    assert groups == {
        "outer fold 0": ["map-o0-i0-c0", "map-o0-i1-c0", "refit-o0"],
        "outer fold 1": ["map-o1-i0-c0", "map-o1-i1-c0", "refit-o1"],
        "gather": ["gather"],
    }
    # Pending tasks only: a dependency on a task left out is complete, not a job.
    rest = [t for t in workflow.tasks if t.name in ("refit-o1", "gather")]
    soma = to_soma_workflow(workdir, workflow, rest)
    assert [(a.name, b.name) for a, b in soma.dependencies] == [("refit-o1", "gather")]
    assert all(j.env is None for j in soma.jobs)
    assert not (workdir / "batches").exists()  # batches of one task: the tasks' own commands


def test_conversion_in_batches(tmp_path):
    workdir = tmp_path / "run"
    write_iris_nested(workdir)
    workflow = load_workflow(workdir)
    soma = to_soma_workflow(workdir, workflow, batch_size=2)
    root = str(workdir.resolve())
    batch_files = sorted(f"batches/{p.name}" for p in (workdir / "batches").iterdir())
    assert [(j.name, j.command[3:5], j.command[-1:]) for j in soma.jobs] == [
        ("map-batch0", ["task", "batch"], [batch_files[0]]), ("map-batch1", ["task", "batch"], [batch_files[1]]),
        ("refit-batch0", ["task", "batch"], [batch_files[2]]), ("gather", ["task", "gather"], ["."])]
    assert [(j.stdout_file, j.stderr_file) for j in soma.jobs[:1]] == [
        (f"{root}/logs/batches/map-batch0.out", f"{root}/logs/batches/map-batch0.err")]
    assert sorted((a.name, b.name) for a, b in soma.dependencies) == [
        ("map-batch0", "refit-batch0"), ("map-batch1", "refit-batch0"), ("refit-batch0", "gather")]
    groups = {g.name: [j.name for j in g.elements] for g in soma.root_group}
    assert groups == {"outer fold 0": ["map-batch0"], "outer fold 1": ["map-batch1"], "refit": ["refit-batch0"],
                      "gather": ["gather"]}


def test_nested_iris_equals_local_backend_and_resumes(tmp_path, monkeypatch):
    monkeypatch.delenv("SOMA_WORKFLOW_CONFIG", raising=False)  # isolated light mode sets it for good
    soma_dir, local_dir, isolated = tmp_path / "soma", tmp_path / "local", tmp_path / "soma-workflow"
    write_iris_nested(soma_dir)
    write_iris_nested(local_dir)
    run(local_dir, backend="local", n_jobs=2, progress=False)

    report = run(soma_dir, backend="soma-workflow", isolated_light_mode=isolated, n_jobs=2, batch_size=1,
                 progress=False)
    assert len(report.names("done")) == 7
    assert_same_results(soma_dir, local_dir)
    assert (soma_dir / "logs" / "gather.out").exists() and (soma_dir / "logs" / "gather.log").exists()

    # A second run, from the command line, submits only what is missing: one outer fold's
    # refit, then the gather. HOME is a temporary directory: light mode keeps its database there.
    (soma_dir / "outer" / "o1.npz").unlink()
    home = tmp_path / "home"
    home.mkdir()
    out = subprocess.run([sys.executable, "-m", "mempamal", "run", str(soma_dir), "--backend", "soma-workflow",
                          "-j", "1", "-q"], capture_output=True, text=True, env=dict(os.environ, HOME=str(home)))
    assert out.returncode == 0, out.stderr
    assert out.stdout == "mempamal: 7 tasks: 2 done, 0 failed, 0 not run, 5 skipped (already complete)\n"
    assert_same_results(soma_dir, local_dir)
    # n_jobs changed the scheduler of this run only, not the user's configuration.
    assert not (home / ".soma-workflow-scheduler.cfg").exists()

    # Nothing left behind: no engine thread, no job process, no workflow in Soma-Workflow's database.
    assert not soma_threads()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert str(soma_dir) not in ps
    from soma_workflow.client import WorkflowController

    controller = WorkflowController(isolated_light_mode=str(isolated))
    try:
        assert controller.workflows() == {}
    finally:
        _end_light_mode_scheduler(controller)
        controller.stop_engine()


def test_batches_equal_local_backend_and_resume_per_task(tmp_path, monkeypatch):
    monkeypatch.delenv("SOMA_WORKFLOW_CONFIG", raising=False)
    soma_dir, local_dir, isolated = tmp_path / "soma", tmp_path / "local", tmp_path / "soma-workflow"
    write_iris_nested(soma_dir)
    write_iris_nested(local_dir)
    run(local_dir, backend="local", n_jobs=2, progress=False)
    report = run(soma_dir, backend="soma-workflow", isolated_light_mode=isolated, n_jobs=2, batch_size=2,
                 progress=False)
    assert len(report.names("done")) == 7
    assert_same_results(soma_dir, local_dir)
    assert (soma_dir / "logs" / "batches" / "map-batch1.out").read_text().splitlines() == [
        "map-o1-i0-c0: running", "map-o1-i0-c0: done", "map-o1-i1-c0: running", "map-o1-i1-c0: done"]
    assert all((soma_dir / t.log).exists() for t in load_workflow(soma_dir).tasks)  # each task its own log

    # Resumed per task: the two maps missing in one batch, then both refits (downstream), the gather.
    for out in ("maps/o0-i1-c0.npz", "maps/o1-i0-c0.npz"):
        (soma_dir / out).unlink()
    report = run(soma_dir, backend="soma-workflow", isolated_light_mode=isolated, n_jobs=2, batch_size=2,
                 progress=False)
    assert sorted(report.names("done")) == ["gather", "map-o0-i1-c0", "map-o1-i0-c0", "refit-o0", "refit-o1"]
    assert sorted(report.skipped) == ["map-o0-i0-c0", "map-o1-i1-c0"]
    assert (soma_dir / "logs" / "batches" / "map-batch0.out").read_text().splitlines() == [
        "map-o0-i1-c0: running", "map-o0-i1-c0: done", "map-o1-i0-c0: running", "map-o1-i0-c0: done"]
    assert_same_results(soma_dir, local_dir)
    assert not soma_threads()


def test_failed_tasks_of_a_batch_are_its_only_failures(tmp_path, monkeypatch):
    monkeypatch.delenv("SOMA_WORKFLOW_CONFIG", raising=False)
    workdir = tmp_path / "run"
    X, y = load_iris(return_X_y=True)
    # One grid point per map; C=-1 makes its fits raise, error_score="raise" lets it fail its task.
    Experiment(LogisticRegression(), cv=StratifiedKFold(2, shuffle=True, random_state=0),
               param_grid={"C": [1.0, -1.0]}, inner_cv=StratifiedKFold(2), grid_chunk_size=1,
               error_score="raise").write(X, y, workdir)
    with pytest.raises(WorkflowError) as info:
        run(workdir, backend="soma-workflow", isolated_light_mode=tmp_path / "soma-workflow", n_jobs=2,
            batch_size=4, progress=False)
    report = info.value.report
    assert sorted(report.names("done")) == ["map-o0-i0-c0", "map-o0-i1-c0", "map-o1-i0-c0", "map-o1-i1-c0"]
    assert sorted(report.names("failed")) == ["map-o0-i0-c1", "map-o0-i1-c1", "map-o1-i0-c1", "map-o1-i1-c1"]
    assert sorted(report.names("not run")) == ["gather", "refit-o0", "refit-o1"]  # their batch waits for the maps'
    error = report.outcomes["map-o1-i0-c1"].error
    assert "job map-batch1 ended with finished_regularly, exit value 1" in error
    assert "task map . --outer 1 --inner 0 --chunk 1" in error and "'C' parameter" in error  # the task's log
    assert (workdir / "logs" / "batches" / "map-batch1.err").read_text().splitlines()[-1] == (
        f"mempamal: 2 of the 4 tasks of {plan_batches(load_workflow(workdir).tasks, 4)[1].file} failed: "
        "map-o1-i0-c1, map-o1-i1-c1; see their logs")
    status = workflow_status(workdir)  # per task
    assert sorted(status.names("failed")) == sorted(report.names("failed")) and len(status.names("done")) == 4
    assert "task map-o1-i0-c1 failed" in str(info.value)
    assert not soma_threads()


def test_batch_outcomes_of_a_batch_killed_midway(tmp_path):
    """A batch whose process died: its complete tasks are done, the one it ran failed, the rest not run."""
    from soma_workflow import constants

    from mempamal.backends.soma_workflow import _batch_outcomes

    workdir = tmp_path / "run"
    write_iris_nested(workdir)
    tasks = [t for t in load_workflow(workdir).tasks if t.stage == "map"]
    run(workdir, backend="local", progress=False)
    (workdir / tasks[1].outputs[0]).unlink()
    [batch] = plan_batches(tasks, batch_size=4)
    (workdir / batch.stdout).parent.mkdir(parents=True)
    (workdir / batch.stdout).write_text("map-o0-i0-c0: running\nmap-o0-i0-c0: done\nmap-o0-i1-c0: running\n")
    (workdir / tasks[3].outputs[0]).unlink()
    outcomes = _batch_outcomes(workdir, batch, constants.FAILED, constants.FINISHED_TERM_SIG, 9)
    assert {n: o.status for n, o in outcomes.items()} == {
        "map-o0-i0-c0": "done", "map-o0-i1-c0": "failed", "map-o1-i0-c0": "done", "map-o1-i1-c0": "not run"}
    assert outcomes["map-o1-i1-c0"].error == (f"its batch, job map-batch0, ended with {constants.FINISHED_TERM_SIG}, "
                                              "exit value 9, before running it")
    assert "job map-batch0 ended with" in outcomes["map-o0-i1-c0"].error
    assert {o.status for o in _batch_outcomes(workdir, batch, constants.DONE, constants.EXIT_NOTRUN, None)
            .values()} == {"not run"}


def test_failed_task_reported_with_its_stderr(tmp_path):
    workdir = tmp_path / "run"
    X, y = load_iris(return_X_y=True)
    # C=-1 makes every fit raise; error_score="raise" lets it fail the task.
    Experiment(LogisticRegression(C=-1.0), cv=KFold(2, shuffle=True, random_state=0),
               error_score="raise").write(X, y, workdir)
    with pytest.raises(WorkflowError) as info:
        run(workdir, backend="soma-workflow", isolated_light_mode=tmp_path / "soma-workflow", progress=False)
    report = info.value.report
    assert sorted(report.names("failed")) == ["refit-o0", "refit-o1"]
    assert report.names("not run") == ["gather"]
    error = report.outcomes["refit-o0"].error
    assert "refit-o0" in error and "task refit . --outer 0" in error
    assert "InvalidParameterError" in error and "'C' parameter" in error  # the tail of its stderr
    message = str(info.value)
    assert "task refit-o0 failed" in message and "InvalidParameterError" in message
    assert not (workdir / "results.json").exists()


def test_fourth_example_small(tmp_path):
    # HOME is a temporary directory: the example's light mode keeps its database there.
    env = dict(os.environ, HOME=str(tmp_path))
    out = subprocess.run([sys.executable, str(EXAMPLES / "fourth_example.py"), str(tmp_path / "run"), "--small"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "r2" in out.stdout
    res = load_results(tmp_path / "run")
    assert res.test_scores["r2"].shape == (2,) and np.all(res.test_scores["r2"] > 0.5)
