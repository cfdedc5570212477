"""Soma-Workflow's engine and how its jobs end: the engine loop's pace, the light-mode
scheduler's threads, and each task's outcome from its job's end status.

Used by :class:`mempamal.backends.soma_workflow.SomaWorkflowBackend`.
"""
from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

from ..workdir.batches import Batch
from ..workdir.workflow import Task, is_complete
from .base import DONE, FAILED, NOT_RUN, TaskOutcome

STDERR_TAIL = 20  # lines of a failed job's stderr in its error report
ENGINE_LOOP_INTERVAL = 0.1  # seconds


@contextlib.contextmanager
def brisk_engine_loop():
    """A light-mode engine, started in this process, that looks for work every 0.1 s, not every second.

    Soma-Workflow's engine loop takes up a submitted workflow, and the engine stops, only at its
    next turn (``soma_workflow.engine.refreshment_interval``, read when the engine is made): a
    second of latency at the start and at the end of every run (iris nested on 2 cores: 5.9 s
    against 3.3 s). A remote engine runs in its own process, with its own setting.
    """
    from soma_workflow import engine

    saved = engine.refreshment_interval
    engine.refreshment_interval = min(saved, ENGINE_LOOP_INTERVAL)
    try:
        yield
    finally:
        engine.refreshment_interval = saved


def end_light_mode_scheduler(controller) -> None:
    """Stop the threads of a light-mode scheduler.

    ``stop_engine()`` stops the engine but leaves its local scheduler's threads
    polling (every 10 ms) until the interpreter exits: in a long session each
    run would add two.
    """
    from soma_workflow.configuration import LIGHT_MODE

    if controller.config.get_mode() != LIGHT_MODE:  # the engine is a remote proxy: not ours to stop
        return
    engine_loop = getattr(controller._engine_proxy, "engine_loop", None)
    end = getattr(getattr(engine_loop, "_scheduler", None), "end_scheduler_thread", None)
    if end is not None:
        end()


def batch_outcomes(workdir: Path, batch: Batch, job_status, exit_status, exit_value,
                    python: str | None = None) -> dict[str, TaskOutcome]:
    """Each task's outcome from how its batch's job ended.

    A job that exited 0 ran (or skipped, complete) every task. Otherwise, in a batch of
    several tasks: a complete task is DONE, one the batch started is FAILED (its log says
    why), one it never reached (killed before) NOT_RUN; the batch's output says which it started.
    """
    from soma_workflow import constants

    if exit_status == constants.EXIT_NOTRUN:
        return {t.name: TaskOutcome(NOT_RUN, "a task it depends on failed") for t in batch.tasks}
    if job_status == constants.DONE and exit_status == constants.FINISHED_REGULARLY and exit_value == 0:
        return {t.name: TaskOutcome(DONE) for t in batch.tasks}
    # A non-zero exit may come as ("finished_signal", 1): anything but a regular 0 failed.
    if len(batch.tasks) == 1:
        return {batch.name: TaskOutcome(FAILED, failure_report(workdir, batch.tasks[0], exit_status, exit_value,
                                                                python=python))}
    try:
        with open(workdir / batch.stdout, errors="replace") as f:
            started = {line.split(": ", 1)[0] for line in f}
    except OSError:
        started = set()
    outcomes = {}
    for task in batch.tasks:
        if is_complete(workdir, task.id):
            outcomes[task.name] = TaskOutcome(DONE)
        elif task.name in started:
            outcomes[task.name] = TaskOutcome(FAILED, failure_report(workdir, task, exit_status, exit_value,
                                                                      job=batch.name, python=python))
        else:
            outcomes[task.name] = TaskOutcome(NOT_RUN, f"its batch, job {batch.name}, ended with {exit_status}, "
                                                       f"exit value {exit_value}, before running it")
    return outcomes


def failure_report(workdir: Path, task: Task, exit_status, exit_value, job: str | None = None,
                    python: str | None = None) -> str:
    """A failed task: how its job ended (``job``: the batch's name, when it ran in a batch), its command
    (with the resource's ``python``), and the end of its log (last, for WorkflowError)."""
    path = workdir / task.log  # where a task's traceback goes, whoever ran it
    ended = f"job {job or task.name} ended with {exit_status}, exit value {exit_value}"
    try:
        with open(path, errors="replace") as f:
            tail = "".join(f.readlines()[-STDERR_TAIL:]).rstrip()
    except OSError as e:
        tail = f"(cannot read it: {e})"
    if python:
        task = replace(task, command=[python, *task.command[1:]])
    # Without a traceback, how the job ended is the message that matters: put it last.
    return (f"{ended}\ncommand: {task.shell_command(workdir)}\n"
            + (f"stderr ({path}), last lines:\n{tail}" if tail else f"its stderr ({path}) is empty; {ended}"))
