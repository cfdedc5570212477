"""Back-ends, registered by name, and run(), the entry point that uses them.

A back-end module is imported only when asked for, so that an optional
scheduler (Dask) costs nothing to those who do not use it.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

from .base import DONE, FAILED, NOT_RUN, Backend, Option, RunReport, TaskOutcome, WorkflowError

_BACKENDS: dict[str, str] = {
    "local": "mempamal.backends.local:LocalBackend",
    "dask": "mempamal.backends.dask:DaskBackend",
    "soma-workflow": "mempamal.backends.soma_workflow:SomaWorkflowBackend",
}


def register_backend(name: str, path: str) -> None:
    """Register a back-end by name.

    Parameters
    ----------
    name : str
        The name that :func:`run` and ``mempamal run --backend`` take.
    path : str
        ``"module:Class"``, a :class:`Backend` subclass imported when first used;
        its ``options`` become flags of ``mempamal run``.
    """
    module, colon, cls = path.partition(":")
    if not colon or not module or not cls:
        raise ValueError(f"path: expected 'module:Class', got {path!r}")
    _BACKENDS[name] = path


def available_backends() -> list[str]:
    return sorted(_BACKENDS)


def get_backend(name: str) -> type[Backend]:
    """The back-end class registered as ``name`` (its module imported now)."""
    try:
        module, _, cls = _BACKENDS[name].partition(":")
    except KeyError:
        raise ValueError(f"backend: unknown back-end {name!r}; choose one of {available_backends()}") from None
    return getattr(importlib.import_module(module), cls)


def create_backend(name: str, **options) -> Backend:
    """The back-end ``name`` built with ``options``, each checked against its declaration first.

    Raises
    ------
    ValueError
        For an unknown back-end, or an option the back-end does not declare (named, with the
        ones it takes) before its constructor runs.
    """
    cls = get_backend(name)
    known = [o.name for o in cls.options]
    for option in options:
        if option not in known:
            raise ValueError(f"backend {name!r} has no option {option!r}; its options: "
                             f"{', '.join(known) or 'none'}")
    return cls(**options)


def run(workdir: str | os.PathLike, backend: str = "local", *, resume: bool = True, progress: bool = True,
        wait: bool = False, **options) -> RunReport:
    """Execute the workflow of ``workdir`` with a back-end.

    Parameters
    ----------
    workdir : path
        A directory written by :meth:`mempamal.Experiment.write`.
    backend : str, default="local"
        The name of a back-end (see :func:`available_backends`).
    resume : bool, default=True
        Skip tasks whose outputs are complete and record this experiment's and
        task's fingerprint (unless a task they depend on is redone);
        ``False`` recomputes everything.
    progress : bool, default=True
        Show a progress bar (done / failed / total) while the tasks run.
    wait : bool, default=False
        When another run holds the workdir's lock (``run.lock``), wait for it to end instead
        of raising :class:`~mempamal.lock.LockError`. A lock left by a dead run of this host
        is taken over (with a :class:`~mempamal.lock.StaleLockWarning`).
    **options
        The back-end's own options, as its class declares them in ``options``
        (e.g. ``n_jobs``, the tasks at once, for every built-in back-end).

    Returns
    -------
    report : RunReport

    Raises
    ------
    ValueError
        For an option the back-end does not declare, before anything runs.
    WorkflowError
        When a task failed; the message names each failed task, its command and log.
    LockError
        When another run holds the workdir (naming its host, pid and start), without ``wait``.
    DataChangedError
        When the data, folds or experiment.json changed since ``write()`` (by size or
        modification time, against manifest.json), naming each file and the fix.
    """
    from ..layout import EXPERIMENT
    from ..workflow import experiment_fingerprint, load_workflow, tasks_to_do

    workdir = Path(workdir).resolve()
    workflow = load_workflow(workdir)
    executor = create_backend(backend, **options)
    fingerprint = experiment_fingerprint(workdir)
    if fingerprint is None:
        raise FileNotFoundError(f"{workdir / EXPERIMENT}: missing or unreadable; write the "
                                "experiment again (Experiment.write)")
    from ..lock import print_to_stderr, run_lock
    from ..manifest import check_unchanged

    check_unchanged(workdir)  # before anything runs on inputs edited since write()
    with run_lock(workdir, wait=wait, on_wait=print_to_stderr):
        report = RunReport(workdir)
        todo, done = tasks_to_do(workdir, workflow, resume, fingerprint)
        report.skipped = [t.name for t in done]
        for task in todo:
            # Stale outputs must not pass for fresh ones if the task fails this time.
            for out in task.outputs:
                (workdir / out).unlink(missing_ok=True)
        _clear_dead_records(workdir, todo)
        if todo:
            from ..progress import Progress

            bar = Progress(len(todo), enabled=progress, desc=f"mempamal {backend}")
            try:
                report.outcomes = executor.execute(workdir, workflow, todo, bar)
            finally:
                bar.close()
    if report.names(FAILED) or report.names(NOT_RUN):
        raise WorkflowError(report, workflow)
    return report


def _clear_dead_records(workdir: Path, todo: list) -> None:
    """Remove the running records a killed run left for the tasks about to be redone.

    Otherwise ``status`` would call them lost until they start again (or forever, for a
    task never reached because another failed). Under the run lock, a record of this host
    whose process is dead is stale; another host's may be a live task run outside mempamal's
    run (an exported workflow): left alone.
    """
    from ..status import record_alive, running_records

    by_name = {t.name: t for t in todo}
    for name, record in running_records(workdir).items():
        if name in by_name and record_alive(record) is False:
            (workdir / by_name[name].id.running_record).unlink(missing_ok=True)
