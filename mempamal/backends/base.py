"""What every back-end implements, and what run() reports.

A back-end executes a list of tasks of a workflow; it knows nothing of
experiments, folds or scores. The tasks it is given are the ones still to do:
a dependency that is not among them is already complete.
"""
from __future__ import annotations

import abc
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..exceptions import WorkflowError
from ..workdir.status import DONE, FAILED, NOT_RUN, Status
from ..workdir.workflow import Task, Workflow
from .progress import Progress

__all__ = ["Backend", "Option", "RunReport", "TaskOutcome", "WorkflowError", "Status", "DONE", "FAILED", "NOT_RUN"]


@dataclass
class TaskOutcome:
    """How one task ended: DONE, FAILED (with its error) or NOT_RUN (a dependency failed).

    Parameters
    ----------
    status : Status
        :data:`DONE`, :data:`FAILED` or :data:`NOT_RUN` (a str: ``"done"``, ``"failed"``, ``"not run"``).
    error : str, default=""
        The error of a failed task (the end of its traceback).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mempamal import Experiment, run
    >>> X, y = load_iris(return_X_y=True)
    >>> workdir = Experiment(LogisticRegression(), cv=3).write(X, y, "runs/iris")
    >>> report = run(workdir, progress=False)
    >>> report.outcomes["gather"]
    TaskOutcome(status=<Status.DONE: 'done'>, error='')
    >>> report.outcomes["gather"].status == "done"
    True
    """

    status: Status
    error: str = ""


@dataclass
class RunReport:
    """What a run did, task by task: what :func:`mempamal.run` returns.

    Parameters
    ----------
    workdir : Path
        The workdir run.
    outcomes : dict of str to TaskOutcome
        Each task the run executed, by name, and how it ended.
    skipped : list of str
        The tasks complete before the run (resumed), not executed again.

    See Also
    --------
    mempamal.run : What returns it.
    WorkflowError : What is raised instead when a task failed (its ``report``).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mempamal import Experiment, run
    >>> X, y = load_iris(return_X_y=True)
    >>> workdir = Experiment(LogisticRegression(), cv=3).write(X, y, "runs/iris")
    >>> from mempamal.backends import DONE
    >>> report = run(workdir, progress=False)
    >>> print(report.summary())
    4 tasks: 4 done, 0 failed, 0 not run, 0 skipped (already complete)
    >>> sorted(report.names(DONE))
    ['gather', 'refit-o0', 'refit-o1', 'refit-o2']
    >>> report = run(workdir, progress=False)  # again: every task is complete
    >>> report.outcomes, report.skipped
    ({}, ['refit-o0', 'refit-o1', 'refit-o2', 'gather'])
    """

    workdir: Path
    outcomes: dict[str, TaskOutcome] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # complete before the run (resumed)

    def names(self, status: str) -> list[str]:
        """The names of the tasks that ended with ``status`` (:data:`DONE`, :data:`FAILED`, :data:`NOT_RUN`)."""
        return [name for name, o in self.outcomes.items() if o.status == status]

    def summary(self) -> str:
        """One line: tasks done, failed, not run and skipped, as ``mempamal run`` prints it."""
        return (f"{len(self.outcomes) + len(self.skipped)} tasks: {len(self.names(DONE))} done, "
                f"{len(self.names(FAILED))} failed, {len(self.names(NOT_RUN))} not run, "
                f"{len(self.skipped)} skipped (already complete)")

    def failure_message(self, workflow: Workflow) -> str:
        """The summary, then each failed task with its last error line, command and log (WorkflowError's)."""
        lines = [f"mempamal: {self.summary()} in {self.workdir}"]
        for name in self.names(FAILED):
            task = workflow.by_name[name]
            error = self.outcomes[name].error.strip().splitlines()
            lines.append(f"- task {name} failed: {error[-1] if error else 'no message'}")
            lines.append(f"  command: {task.shell_command(self.workdir)}")
            lines.append(f"  log: {self.workdir / task.log}")
        not_run = self.names(NOT_RUN)
        if not_run:
            lines.append(f"- not run because a task they need failed: {', '.join(not_run)}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Option:
    """One keyword argument of a back-end's constructor, declared once.

    :func:`mempamal.run` refuses an option its back-end does not declare, and
    ``mempamal run`` makes a flag of each option with ``cli=True``.

    Parameters
    ----------
    name : str
        The constructor's keyword, e.g. ``"n_jobs"``; its flag is ``--n-jobs``.
    type : callable
        What the flag's string becomes (``int``, ``float``, ``str``; ``bool``
        makes ``--name`` / ``--no-name``). The constructor checks values itself.
    help : str
        One line for ``mempamal run --help``.
    default : object, default=None
        The constructor's default.
    cli : bool, default=True
        False for a Python-only option (an object, a dict, a secret): no flag.

    Examples
    --------
    The options of the local back-end, which :func:`mempamal.run` takes as keywords and
    ``mempamal run`` as ``--n-jobs`` and ``--threads-per-task``:

    >>> from mempamal.backends import Option, get_backend
    >>> [option.name for option in get_backend("local").options]
    ['n_jobs', 'threads_per_task']

    A back-end of yours declares its own (see :class:`Backend`):

    >>> timeout = Option("timeout", float, "seconds a task may take (default: no limit)")
    >>> timeout.default, timeout.cli
    (None, True)
    """

    name: str
    type: Callable[[str], Any]
    help: str
    default: Any = None
    cli: bool = True


class Backend(abc.ABC):
    """Executes tasks of a workflow, dependencies first.

    Implementations must run a task only once its dependencies (among the
    given tasks) are DONE, must go on with independent tasks when one fails,
    must call ``progress.update(status)`` once per task as it ends, and must
    return an outcome for every task given. They declare their constructor's
    keyword arguments in ``options``; "how many tasks at once" is ``n_jobs``.

    See Also
    --------
    register_backend : Give a back-end a name that :func:`mempamal.run` takes.
    mempamal.export.register_exporter : Write the workflow for another tool instead.

    Examples
    --------
    A back-end that runs the tasks one after the other in this process, in a module of
    yours (written here on the spot), registered by name and run:

    >>> import sys
    >>> from pathlib import Path
    >>> _ = Path("my_backends.py").write_text('''
    ... from mempamal.backends import DONE, FAILED, NOT_RUN, Backend, Option, TaskOutcome
    ... from mempamal.tasks import run_task
    ...
    ... class OneByOne(Backend):
    ...     name = "one-by-one"
    ...     options = (Option("record", str, "a file listing the tasks as they start"),)
    ...
    ...     def __init__(self, record=None):
    ...         self.record = record
    ...
    ...     def execute(self, workdir, workflow, tasks, progress):
    ...         outcomes = {}
    ...         for task in tasks:  # dependencies first
    ...             if any(outcomes[d].status != DONE for d in task.dependencies if d in outcomes):
    ...                 outcomes[task.name] = TaskOutcome(NOT_RUN)
    ...             else:
    ...                 if self.record:
    ...                     with open(self.record, "a") as f:
    ...                         print(task.name, file=f)
    ...                 try:
    ...                     run_task(workdir, task.id, task.log)  # what the task's command runs
    ...                     outcomes[task.name] = TaskOutcome(DONE)
    ...                 except Exception as e:
    ...                     outcomes[task.name] = TaskOutcome(FAILED, f"{type(e).__name__}: {e}")
    ...             progress.update(outcomes[task.name].status)
    ...         return outcomes
    ... ''')
    >>> sys.path.insert(0, ".")
    >>> from mempamal.backends import register_backend
    >>> register_backend("one-by-one", "my_backends:OneByOne")
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mempamal import Experiment, run
    >>> X, y = load_iris(return_X_y=True)
    >>> workdir = Experiment(LogisticRegression(max_iter=1000), cv=3).write(X, y, "runs/iris")
    >>> print(run(workdir, "one-by-one", record="started.txt", progress=False).summary())
    4 tasks: 4 done, 0 failed, 0 not run, 0 skipped (already complete)
    >>> print(Path("started.txt").read_text())
    refit-o0
    refit-o1
    refit-o2
    gather
    <BLANKLINE>
    """

    name: str = ""
    options: tuple[Option, ...] = ()

    @abc.abstractmethod
    def execute(self, workdir: Path, workflow: Workflow, tasks: list[Task],
                progress: Progress) -> dict[str, TaskOutcome]:
        """Run ``tasks`` (in dependency order within the list) and report each one's outcome."""

    # -- detached runs (mempamal.submit) ------------------------------------------------
    def detach(self, workdir: Path, workflow: Workflow, tasks: list[Task]) -> dict | None:
        """Hand ``tasks`` to a scheduler that runs them without this process, for :func:`mempamal.submit`.

        Returns what finds them again (JSON-ready: job ids, a scheduler's address), passed to
        :meth:`detached_alive` and :meth:`detached_cancel` later, from any process; or None (the
        default): submit() then runs this back-end in a background process of this machine.
        Raises ValueError, with the reason, when the back-end cannot run detached.
        """
        return None

    @classmethod
    def detached_alive(cls, detached: dict) -> bool:
        """Whether the scheduler still runs (or queues) tasks of the submission ``detached`` describes."""
        raise NotImplementedError(f"back-end {cls.name!r} does not follow detached runs")

    @classmethod
    def detached_cancel(cls, detached: dict) -> None:
        """Cancel the tasks of the submission ``detached`` describes, with the scheduler's own cancel."""
        raise NotImplementedError(f"back-end {cls.name!r} does not cancel detached runs")

    @classmethod
    def describe_detached(cls, detached: dict) -> str:
        """Where the submission ``detached`` describes runs, for ``mempamal status`` (e.g. its job ids)."""
        return ", ".join(f"{k} {v}" for k, v in detached.items())

    @classmethod
    def detached_failures(cls, workdir: Path, detached: dict, names: list[str]) -> dict[str, str]:
        """Why tasks ``names`` (not done, the run over) did not complete, when the scheduler says
        (a job failed, timed out or was cancelled): task name to a message naming its log."""
        return {}


@contextmanager
def environ_kept(keys: Iterable[str]) -> Iterator[None]:
    """Give environment variables ``keys`` back their values (or their absence) on exit: for the
    libraries a back-end drives that write into this process's ``os.environ`` for good."""
    before = {key: os.environ.get(key) for key in keys}
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
