"""Batches of tasks: their planning, and ``mempamal task batch`` run as a real command."""
import json
import subprocess
import sys

import pytest

from mempamal import run
from mempamal.workdir.batches import BATCHES_PER_SLOT, default_batch_size, plan_batches, read_batch_file, write_batch_files
from mempamal.workdir.layout import TaskId
from mempamal.workdir.status import workflow_status
from mempamal.workdir.workflow import Task, is_complete, load_workflow

from test_soma_workflow import assert_same_results, write_iris_nested


def names(batches):
    return [(b.name, [t.name for t in b.tasks], b.dependencies) for b in batches]


def test_plan_groups_a_stage_in_nearly_equal_batches_with_their_dependencies(tmp_path):
    workdir = tmp_path / "run"
    write_iris_nested(workdir)  # 4 maps, 2 refits, gather
    tasks = load_workflow(workdir).tasks
    assert names(plan_batches(tasks, batch_size=3)) == [
        ("map-batch0", ["map-o0-i0-c0", "map-o0-i1-c0"], []),  # 4 tasks in ceil(4 / 3) = 2 batches: 2 + 2
        ("map-batch1", ["map-o1-i0-c0", "map-o1-i1-c0"], []),
        ("refit-batch0", ["refit-o0", "refit-o1"], ["map-batch0", "map-batch1"]),
        ("gather", ["gather"], ["refit-batch0"]),  # a batch of one task is the task
    ]
    # One per task: every batch is its task, with its task's command, dependencies and files.
    single = plan_batches(tasks, batch_size=1)
    assert names(single) == [(t.name, [t.name], t.dependencies) for t in tasks]
    assert [b.command("py", if_incomplete=True, log=True)[4:] for b in single[:1]] == [
        ["task", "--if-incomplete", "--log", "logs/map-o0-i0-c0.log", "map", ".", "--outer", "0", "--inner", "0",
         "--chunk", "0"]]
    assert (single[0].stdout, single[0].stderr) == ("logs/map-o0-i0-c0.out", "logs/map-o0-i0-c0.log")
    # Pending tasks only: a dependency left out is complete.
    assert names(plan_batches(tasks[1:3] + tasks[5:], batch_size=2)) == [
        ("map-batch0", ["map-o0-i1-c0", "map-o1-i0-c0"], []),
        ("refit-o1", ["refit-o1"], ["map-batch0"]),
        ("gather", ["gather"], ["refit-o1"]),
    ]
    # The default: BATCHES_PER_SLOT batches per job at once and stage.
    assert BATCHES_PER_SLOT == 1 and default_batch_size(25, 2) == 13 and default_batch_size(5, 2) == 3
    assert [len(b.tasks) for b in plan_batches(tasks, jobs_at_once=1)] == [4, 2, 1]
    assert [len(b.tasks) for b in plan_batches(tasks, jobs_at_once=3)] == [2, 2, 1, 1, 1]


def test_batch_files_say_their_tasks_by_name(tmp_path):
    workdir = tmp_path / "run"
    write_iris_nested(workdir)
    tasks = load_workflow(workdir).tasks
    batches = plan_batches(tasks, batch_size=2)
    write_batch_files(workdir, batches)
    files = sorted(p.relative_to(workdir).as_posix() for p in (workdir / "batches").iterdir())
    assert files == sorted(b.file for b in batches if len(b.tasks) > 1)  # none for a batch of one task
    assert batches[0].file.startswith("batches/map-0-") and batches[0].file.endswith(".json")
    assert read_batch_file(workdir / batches[0].file) == [t.id for t in batches[0].tasks]
    assert batches[0].command("/py") == ["/py", "-P", "-m", "mempamal", "task", "batch", ".", "--file", batches[0].file]
    # Other tasks as batch 0 of the map stage: another file; the first one is left as it was.
    other = plan_batches(tasks[2:], batch_size=2)
    assert other[0].name == "map-batch0" and other[0].file != batches[0].file
    write_batch_files(workdir, other)
    assert read_batch_file(workdir / batches[0].file) == [t.id for t in batches[0].tasks]


@pytest.mark.parametrize("options, match", [
    ({"batch_size": 0}, "batch_size: expected a positive int or None"),
    ({"batch_size": 2.0}, "batch_size: expected a positive int or None"),
    ({"jobs_at_once": True}, "jobs_at_once: expected a positive int or None"),
])
def test_bad_batch_options(options, match):
    with pytest.raises(ValueError, match=match):
        plan_batches([], **options)


def test_tasks_of_a_stage_depending_on_each_other_are_not_batched():
    a, b = TaskId("map", outer=0, inner=0, chunk=0), TaskId("map", outer=0, inner=1, chunk=0)
    tasks = [Task(a, []), Task(b, [], dependencies=[a.name])]
    with pytest.raises(ValueError, match="task map-o0-i1-c0 depends on map-o0-i0-c0, of its own batch or of a later"):
        plan_batches(tasks, batch_size=2)
    # One task per batch: the dependency is between batches, as between tasks.
    assert names(plan_batches(tasks, batch_size=1)) == [(a.name, [a.name], []), (b.name, [b.name], [a.name])]
    # A dependency on a stage batched later (refit before map) would be lost: refused.
    refit = TaskId("refit", outer=0)
    with pytest.raises(ValueError, match="task map-o0-i0-c0 depends on refit-o0"):
        plan_batches([Task(refit, []), Task(a, [], dependencies=[refit.name])], batch_size=1)


def batch_command(workdir, *args):
    return subprocess.run([sys.executable, "-m", "mempamal", "task", "batch", ".", *args], cwd=workdir,
                          capture_output=True, text=True, timeout=300)


def test_a_failing_task_does_not_fail_the_others_of_its_batch(tmp_path):
    workdir = tmp_path / "run"
    write_iris_nested(workdir)
    maps = [t for t in load_workflow(workdir).tasks if t.stage == "map"]
    [batch] = plan_batches(maps, batch_size=4)
    write_batch_files(workdir, [batch])
    # A real failure of the second map: its output path is a directory, so its atomic rename fails.
    (workdir / "maps" / "o0-i1-c0.npz").mkdir(parents=True)
    out = batch_command(workdir, "--file", batch.file)
    assert out.returncode == 1
    assert out.stdout.splitlines() == ["map-o0-i0-c0: running", "map-o0-i0-c0: done",
                                       "map-o0-i1-c0: running",
                                       "map-o1-i0-c0: running", "map-o1-i0-c0: done",
                                       "map-o1-i1-c0: running", "map-o1-i1-c0: done"]
    failed = out.stderr.splitlines()
    assert failed[0].startswith("map-o0-i1-c0: failed: IsADirectoryError: ")
    assert failed[0].endswith("(see logs/map-o0-i1-c0.log)")
    assert failed[-1] == (f"mempamal: 1 of the 4 tasks of {batch.file} failed: map-o0-i1-c0; see their logs")
    assert [is_complete(workdir, t.id) for t in maps] == [True, False, True, True]
    log = (workdir / "logs" / "map-o0-i1-c0.log").read_text()
    assert "Traceback (most recent call last)" in log and "IsADirectoryError" in log
    assert "Traceback" not in (workdir / "logs" / "map-o0-i0-c0.log").read_text()
    assert not list((workdir / "logs" / "running").iterdir())  # no task left looking as running
    status = workflow_status(workdir)  # still per task
    assert status.names("failed") == ["map-o0-i1-c0"] and len(status.names("done")) == 3
    assert status.errors["map-o0-i1-c0"].startswith("IsADirectoryError")

    # Again, once the cause is gone: complete tasks are skipped, their logs left alone; the failed one runs.
    (workdir / "maps" / "o0-i1-c0.npz").rmdir()
    done_log = (workdir / "logs" / "map-o0-i0-c0.log").stat().st_mtime_ns
    out = batch_command(workdir, "--file", batch.file)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["map-o0-i0-c0: complete, skipped", "map-o0-i1-c0: running",
                                       "map-o0-i1-c0: done", "map-o1-i0-c0: complete, skipped",
                                       "map-o1-i1-c0: complete, skipped"]
    assert (workdir / "logs" / "map-o0-i0-c0.log").stat().st_mtime_ns == done_log
    assert all(is_complete(workdir, t.id) for t in maps)

    # The rest of the workflow, and the results are the local back-end's.
    run(workdir, backend="local", progress=False)
    local = tmp_path / "local"
    write_iris_nested(local)
    run(local, backend="local", progress=False)
    assert_same_results(workdir, local)


def test_batch_command_errors(tmp_path):
    workdir = tmp_path / "run"
    write_iris_nested(workdir)
    out = batch_command(workdir, "--file", "batches/nope.json")
    assert out.returncode == 1 and out.stderr.startswith("mempamal: ") and "batches/nope.json: missing" in out.stderr
    (workdir / "batches").mkdir()
    (workdir / "batches" / "x.json").write_text(json.dumps({"format": "other"}))
    out = batch_command(workdir, "--file", "batches/x.json")
    assert out.returncode == 1 and "not a batch file of this version of mempamal" in out.stderr
    out = subprocess.run([sys.executable, "-m", "mempamal", "task", "--log", "x.log", "batch", ".", "--file",
                          "batches/x.json"], cwd=workdir, capture_output=True, text=True)
    assert out.returncode == 1 and "no --log: each task writes its own log" in out.stderr
