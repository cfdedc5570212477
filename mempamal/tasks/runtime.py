"""How a task runs: in this process, as its command would (``python -m mempamal task ...``)
or inside a back-end's worker, its output and errors going to its log, while a running
record names this process; and batches of tasks run in turn in one process.

Every stage (map, refit, permute, columns, gather) runs through :func:`execute`.
"""
from __future__ import annotations

import contextlib
import os
import sys
import traceback
import warnings
from typing import Callable

from ..workdir.files import InputFileError, write_json
from ..workdir.layout import TaskId
from ..workdir.lock import Holder
from ..workdir.paths import Workdir
from ..workdir.trust import check_trusted
from ..workdir.workflow import is_complete
from .context import Context
from .gather import run_gather
from .stacked import run_columns
from .stages import run_map, run_permute, run_refit

# The function of each stage: what a task of that stage does.
STAGE_FUNCTIONS: dict[str, Callable[[Context, TaskId], None]] = {
    "map": run_map, "refit": run_refit, "permute": run_permute, "columns": run_columns, "gather": run_gather}


def execute(workdir: str | os.PathLike | Workdir, task_id: TaskId) -> None:
    """Run a task in this process (no log, no running record: see :func:`run_task`)."""
    try:
        STAGE_FUNCTIONS[task_id.stage](Context(Workdir.of(workdir)), task_id)
    except InputFileError as e:
        raise InputFileError(f"task {task_id} needs {e}") from e


def run_task(workdir: str | os.PathLike, task_id: TaskId, log: str | os.PathLike | None = None) -> None:
    """Run a task in this process, as its command would, its output and errors going to ``log``.

    While it runs, its running record names this host and process, so that ``status``
    can tell a task still running from one whose process died without a word.

    Parameters
    ----------
    workdir : path
    task_id : TaskId
    log : path, default=None
        Relative to the workdir; default: this process's stdout and stderr.
    """
    paths = Workdir.of(workdir)
    check_trusted(paths.root)  # before its log, its record, and anything of the workdir is decoded
    with _running_record(paths, task_id):
        if log is None:
            execute(paths, task_id)
            return
        log_path = paths.path(log)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as f, _redirected_output(f):
            try:
                execute(paths, task_id)
            except BaseException:
                traceback.print_exc()
                raise


def run_batch(workdir: str | os.PathLike, task_ids: list[TaskId]) -> list[TaskId]:
    """Run tasks in turn in this process, each as its own command with ``--if-incomplete --log``.

    A complete task is skipped; a failing task's traceback goes to its log and the
    next task runs. One line per task on stdout (``<task>: running``, then ``done``,
    or ``complete, skipped``) and one on stderr per failure, which tells a scheduler's
    back-end which tasks the batch reached.

    Returns
    -------
    failed : list of TaskId
    """
    paths = Workdir.of(workdir)
    failed = []
    for task_id in task_ids:
        if is_complete(paths.root, task_id):
            print(f"{task_id}: complete, skipped", flush=True)
            continue
        print(f"{task_id}: running", flush=True)
        try:
            run_task(paths, task_id, task_id.log)
        except Exception as e:  # the task's failure, in its log; an interruption stops the batch
            failed.append(task_id)
            message = str(e).strip().splitlines()
            print(f"{task_id}: failed: {type(e).__name__}: {message[-1] if message else ''} (see {task_id.log})",
                  file=sys.stderr, flush=True)
        else:
            print(f"{task_id}: done", flush=True)
    return failed


@contextlib.contextmanager
def _running_record(workdir: Workdir, task_id: TaskId):
    """Write the task's running record (host, pid, start) for its duration; a killed process leaves it.

    The record names its process as the run lock names its holder (:class:`mempamal.workdir.lock.Holder`),
    whose start tells this process from a later one given the same pid.
    """
    path = workdir.running_record(task_id)
    try:
        write_json(path, {"task": task_id.name, **Holder.me().to_json()})
    except OSError:  # a read-only or vanished workdir: the task itself will say what is wrong
        pass
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def _redirected_output(f):
    """Send this process's stdout and stderr (Python's and C's) to ``f`` for the duration."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(f.fileno(), 1)
    os.dup2(f.fileno(), 2)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
