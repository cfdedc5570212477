"""The local back-end: the workflow's tasks in warm worker processes on this machine.

Workers are loky processes owned by this back-end: they import scikit-learn
once and stay alive between tasks (and between runs), and each task is handed
to them as a few strings, never as arrays.
"""
from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, wait
from pathlib import Path

from ..tasks import run_task
from ..workdir.layout import TaskId
from ..workdir.workflow import Task, Workflow, thread_limits
from .base import DONE, FAILED, NOT_RUN, Backend, Option, TaskOutcome
from .progress import Progress


def _warm_up() -> None:
    """Import what every task needs once per worker, before the first task arrives (mempamal's own
    task code comes with this module, which the worker imports to call it)."""
    import sklearn.base  # noqa: F401  (the bulk of a task's start-up)


# The workers of this process, by (n_jobs, threads per task): kept warm between runs. Not loky's
# global reusable executor: joblib (GridSearchCV(n_jobs=...), an estimator's own n_jobs) replaces that
# one whenever its options differ from ours, which would kill our warm workers and theirs in turn.
_EXECUTORS: dict = {}
IDLE_TIMEOUT = 300  # seconds before idle workers exit (they start again on demand)


def _executor(n_jobs: int, threads: int, renew: bool = False):
    from joblib.externals.loky import ProcessPoolExecutor

    key = (n_jobs, threads)
    executor = _EXECUTORS.get(key)
    if renew or executor is None or getattr(executor, "_flags", None) is not None and executor._flags.broken:
        if executor is not None:
            executor.shutdown(wait=False)
        executor = _EXECUTORS[key] = ProcessPoolExecutor(
            max_workers=n_jobs, timeout=IDLE_TIMEOUT, initializer=_warm_up,
            # Workers start as `python -m loky...` in this process's directory, which may be a workdir
            # that others can write (`cd runs/x && mempamal run .`): its numpy.py must not be imported.
            env={**thread_limits(threads), "PYTHONSAFEPATH": "1"})
    return executor


def _run_in_worker(workdir: str, task_id: TaskId, log: str, threads: int) -> None:
    from threadpoolctl import threadpool_limits

    # The executor's env only reaches workers it starts; reused workers need the limit set here.
    with threadpool_limits(limits=threads):
        run_task(workdir, task_id, log)


class LocalBackend(Backend):
    """Run tasks ``n_jobs`` at a time in worker processes on this machine.

    Parameters
    ----------
    n_jobs : int, default=1
        Tasks at once; -1 means all cores (-2 all but one, as joblib counts).
    threads_per_task : int, default=None
        BLAS/OpenMP threads each task may use; default: the cores divided by ``n_jobs``.
    """

    name = "local"
    options = (
        Option("n_jobs", int, "tasks at once; -1 all cores, -2 all but one (default: 1)", default=1),
        Option("threads_per_task", int, "BLAS/OpenMP threads of each task (default: the cores divided by "
                                        "the tasks at once)"),
    )

    def __init__(self, n_jobs: int = 1, threads_per_task: int | None = None) -> None:
        from joblib import cpu_count

        if n_jobs == 0 or not isinstance(n_jobs, int):
            raise ValueError(f"n_jobs: expected a non-zero int, got {n_jobs!r}")
        self.n_jobs = n_jobs if n_jobs > 0 else max(cpu_count() + 1 + n_jobs, 1)
        # BLAS and OpenMP threads of n_jobs tasks must not oversubscribe the cores.
        self.threads_per_task = threads_per_task or max(cpu_count() // self.n_jobs, 1)

    def execute(self, workdir: Path, workflow: Workflow, tasks: list[Task],
                progress: Progress) -> dict[str, TaskOutcome]:
        todo = {t.name for t in tasks}
        waiting = {t.name: {d for d in t.dependencies if d in todo} for t in tasks}
        dependents = workflow.dependents()
        outcomes: dict[str, TaskOutcome] = {}
        ready = [t.name for t in tasks if not waiting[t.name]]
        running = {}

        def settle(name: str, outcome: TaskOutcome) -> None:
            outcomes[name] = outcome
            progress.update(outcome.status)
            for child in dependents[name]:
                if child not in waiting or child in outcomes:
                    continue
                if outcome.status != DONE:
                    settle(child, TaskOutcome(NOT_RUN, f"{name} did not complete"))
                else:
                    waiting[child].discard(name)
                    if not waiting[child]:
                        ready.append(child)

        def next_task() -> str:
            # The first ready task of the lowest priority (the workflow's rule: refits before maps...).
            return ready.pop(min(range(len(ready)), key=lambda k: workflow.by_name[ready[k]].priority))

        executor = _executor(self.n_jobs, self.threads_per_task)
        while ready or running:
            if getattr(executor, "_flags", None) is not None and executor._flags.broken:
                # a worker died: its tasks failed, the others go on
                executor = _executor(self.n_jobs, self.threads_per_task, renew=True)
            while ready and len(running) < self.n_jobs:
                task = workflow.by_name[next_task()]
                future = executor.submit(_run_in_worker, str(workdir), task.id, task.log,
                                         self.threads_per_task)
                running[future] = task.name
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                error = future.exception()
                if error is None:
                    settle(name, TaskOutcome(DONE))
                else:
                    settle(name, TaskOutcome(FAILED, f"{type(error).__name__}: {error}"))
        return outcomes
