"""run(): execute a written workdir's workflow with a back-end.

The lock, the manifest check, resume (which tasks to redo) and the cleanup of a
killed run's leftovers live here, once for every back-end; a back-end only runs
the tasks it is given.
"""
from __future__ import annotations

import os
from pathlib import Path

from .backends import create_backend
from .backends.base import FAILED, NOT_RUN, RunReport, WorkflowError
from .backends.progress import Progress
from .experiment.encoding import DecodingError, decode
from .experiment.scoring import build_scorers
from .workdir.document import ExperimentDoc
from .workdir.layout import EXPERIMENT
from .workdir.lock import print_to_stderr, run_lock
from .workdir.manifest import check_unchanged
from .workdir.status import record_alive, running_records
from .workdir.trust import check_trusted
from .workdir.workflow import Workflow, experiment_fingerprint, load_workflow, tasks_to_do


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
        Each task's outcome, and the tasks skipped because they were complete.

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
    UntrustedWorkdirError
        When the workdir is not signed by this user's key (``mempamal trust``), or changed
        since it was signed; before the lock is taken and anything is decoded or runs.

    See Also
    --------
    mempamal.Experiment.write : Write the workdir.
    mempamal.load_results : Read the results of the finished run.
    mempamal.export.export : The workflow for another tool (SLURM, Soma-Workflow, a command list).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mempamal import Experiment, run
    >>> X, y = load_iris(return_X_y=True)
    >>> workdir = Experiment(LogisticRegression(), cv=3).write(X, y, "runs/run")
    >>> print(run(workdir, backend="local", n_jobs=2, progress=False).summary())
    4 tasks: 4 done, 0 failed, 0 not run, 0 skipped (already complete)
    >>> print(run(workdir, progress=False).summary())  # again: resumes, nothing left to do
    4 tasks: 0 done, 0 failed, 0 not run, 4 skipped (already complete)
    """
    workdir = Path(workdir).resolve()
    executor = create_backend(backend, **options)
    workflow, fingerprint = prepare(workdir)
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
            bar = Progress(len(todo), enabled=progress, desc=f"mempamal {backend}")
            try:
                report.outcomes = executor.execute(workdir, workflow, todo, bar)
            finally:
                bar.close()
    if report.names(FAILED) or report.names(NOT_RUN):
        raise WorkflowError(report, workflow)
    return report


def prepare(workdir: Path) -> tuple[Workflow, str]:
    """The checks before anything runs, once for the whole run (not once per task): (workflow, fingerprint).

    Raises
    ------
    FileNotFoundError
        For a missing workflow.json or experiment.json.
    DataChangedError
        When the data, folds or experiment.json changed since ``write()``.
    UntrustedWorkdirError
        When the workdir is not signed by this user's key (``mempamal trust``), or changed since it
        was signed: checked first, before anything of the workdir is read, decoded or imported.
    """
    check_trusted(workdir)
    workflow = load_workflow(workdir)
    fingerprint = experiment_fingerprint(workdir)
    if fingerprint is None:
        raise FileNotFoundError(f"{workdir / EXPERIMENT}: missing or unreadable; write the "
                                "experiment again (Experiment.write)")
    check_unchanged(workdir)  # before anything runs on inputs edited since write()
    check_decodes(workdir)
    return workflow, fingerprint


def check_decodes(workdir: Path) -> None:
    """Decode experiment.json's estimator, candidates and scorers once, as every task would.

    An error every task would hit (a class outside the trusted packages, a module that is not
    installed) is then one error before anything is launched, not one per task (nor a queue
    slot per task on a cluster).

    Raises
    ------
    DecodingError
        Naming experiment.json and what may not (or cannot) be loaded.
    """
    import sklearn

    doc = ExperimentDoc.read(workdir)
    packages = doc.packages
    routing = doc.params or {}
    try:
        # The routing of write() (tasks set it too), without changing this process's configuration.
        with sklearn.config_context(enable_metadata_routing=routing.get("metadata_routing", False)):
            decode(doc.estimator, packages)
            for candidate in doc.candidates or []:
                for value in candidate.values():
                    decode(value, packages)
            build_scorers(doc.scoring, packages)
            decode(doc.error_score, packages)
    except DecodingError as e:
        raise DecodingError(f"{workdir / EXPERIMENT}: {e}; nothing was run") from e


def _clear_dead_records(workdir: Path, todo: list) -> None:
    """Remove the running records a killed run left for the tasks about to be redone.

    Otherwise ``status`` would call them lost until they start again (or forever, for a
    task never reached because another failed). Under the run lock, a record of this host
    whose process is dead is stale; another host's may be a live task run outside mempamal's
    run (an exported workflow): left alone.
    """
    by_name = {t.name: t for t in todo}
    for name, record in running_records(workdir).items():
        if name in by_name and record_alive(record) is False:
            (workdir / by_name[name].id.running_record).unlink(missing_ok=True)
