"""The Dask back-end: the workflow's tasks as futures on a Dask cluster.

Each task becomes one future that takes its predecessors' futures as
arguments, so Dask's scheduler orders them; the task runs in-process on a
worker (:func:`mempamal.tasks.run_task`, the same code as its command) and
reads and writes the workdir's files, which every worker must therefore see
(a shared filesystem, as on HPC clusters). Only the task's arguments (a few
strings) travel through Dask, never arrays.

The cluster is a ``LocalCluster`` of worker processes that ``execute`` starts
and closes, an existing scheduler (``scheduler_address``), or any cluster
behind a ``distributed.Client`` the caller passes in and keeps (dask-jobqueue,
dask-kubernetes, dask-gateway, ...).
"""
from __future__ import annotations

import os
import socket
import threading
import uuid
from pathlib import Path

from ..tasks import run_task
from ..workdir.layout import LOG_DIR, WORKFLOW, TaskId
from ..workdir.workflow import Task, Workflow, is_complete, thread_limits
from .base import DONE, FAILED, NOT_RUN, Backend, Option, TaskOutcome, environ_kept
from .progress import Progress

_INSTALL_HINT = "the dask back-end needs Dask's distributed scheduler: pip install mempamal[dask]"

# A task redirects its process's stdout/stderr file descriptors to its log
# (tasks.run_task) and sets process-wide BLAS limits: two tasks at once in one
# worker process would write into each other's logs. The LocalCluster we start
# has one thread per worker; on a cluster whose workers have more threads, the
# extra threads wait here instead of mixing logs.
_ONE_TASK_PER_PROCESS = threading.Lock()


def _run_on_worker(workdir: str, task_id: dict, threads: int | None, *dependencies) -> None:
    """Run one task (``TaskId.to_json()``) on a Dask worker; ``dependencies`` (None each) only make Dask
    wait for them."""
    root = Path(workdir)
    task_id = TaskId.from_json(task_id)
    if not (root / WORKFLOW).exists():
        # Checked first: run_task would create logs/ in a local directory of that name.
        raise FileNotFoundError(
            f"{workdir}: no such workdir on the worker host {socket.gethostname()}; Dask workers must see "
            "the workdir at the same path (a shared filesystem)")
    if is_complete(root, task_id):
        # Dask recomputes a finished task whose (empty) result died with its worker, e.g. at a SLURM
        # job's walltime. run() deleted the outputs of every task to do: complete means this task
        # already ran to the end in this run.
        return
    from threadpoolctl import threadpool_limits

    with _ONE_TASK_PER_PROCESS, threadpool_limits(limits=threads):
        run_task(workdir, task_id, task_id.log)


def _check_distributed() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError as e:
        raise ImportError(_INSTALL_HINT) from e


def _nanny_environ() -> set[str]:
    """What a LocalCluster's nannies write into this process's ``os.environ`` for good when they spawn
    workers (``OMP_NUM_THREADS=1``... from ``distributed.nanny.pre-spawn-environ``): every process
    started afterwards (another back-end's workers, a test SLURM counting its cores with nproc) would
    inherit it."""
    import dask

    return set(dask.config.get("distributed.nanny.pre-spawn-environ", None) or {}) | {"PYTHONHASHSEED"}


class DaskBackend(Backend):
    """Run tasks as Dask futures on a local or existing Dask cluster.

    Parameters
    ----------
    scheduler_address : str, default=None
        The address of a running Dask scheduler, e.g. ``"tcp://10.0.0.5:8786"``.
    client : distributed.Client, default=None
        A client of any Dask cluster (e.g. a dask-jobqueue ``SLURMCluster``); it is left open.
    n_jobs : int, default=None
        Without ``scheduler_address`` or ``client``: the worker processes of the ``LocalCluster``
        that is started (and closed when the run ends); None or -1 mean all cores.
        Each worker has one thread: a task redirects its process's output to its log.
    threads_per_task : int, default=None
        BLAS/OpenMP threads each task may use; default: the cores divided by ``n_jobs`` on the
        LocalCluster, the workers' own setting (Dask's default: 1) on other clusters.
    slurm : dict, default=None
        Workers as SLURM jobs: the keyword arguments of dask-jobqueue's ``SLURMCluster``
        (``queue``, ``cores``, ``memory``, ``walltime``, ``interface``, ``job_extra_directives``...)
        and ``jobs``, the SLURM jobs to start (default 1). The cluster starts with the run and
        is closed (its jobs cancelled) when it ends; the jobs' output goes to ``logs/dask-slurm/``
        of the workdir (``log_directory``). Default ``processes=1``: one worker per job,
        whose ``cores`` are also each task's BLAS/OpenMP threads (``threads_per_task`` overrides).
        Needs ``pip install mempamal[slurm]``.

    Notes
    -----
    A task whose worker dies while running it (killed, out of memory) is run again on another
    worker, up to Dask's ``distributed.scheduler.allowed-failures`` times (default 3); then it
    fails with ``KilledWorker``. Tasks only write their outputs atomically, so a rerun is safe.
    """

    name = "dask"
    options = (
        Option("scheduler_address", str, "the scheduler of a running Dask cluster, e.g. tcp://10.0.0.5:8786"),
        Option("client", object, "a distributed.Client of any Dask cluster, left open", cli=False),
        Option("n_jobs", int, "the worker processes of the LocalCluster it starts (default: all cores)"),
        Option("threads_per_task", int, "BLAS/OpenMP threads of each task (default: the cores divided by the "
                                        "LocalCluster's workers; the workers' own on other clusters)"),
        Option("slurm", dict, "SLURMCluster keyword arguments and 'jobs': workers as SLURM jobs", cli=False),
    )

    def __init__(self, scheduler_address: str | None = None, client=None, n_jobs: int | None = None,
                 threads_per_task: int | None = None, slurm: dict | None = None) -> None:
        _check_distributed()
        if slurm is not None:
            if scheduler_address is not None or client is not None or n_jobs is not None:
                raise ValueError("slurm: starts the run's own SLURMCluster; not with scheduler_address, client "
                                 "or n_jobs (set slurm['jobs'] for the number of SLURM jobs)")
            if not isinstance(slurm, dict):
                raise ValueError(f"slurm: expected a dict of SLURMCluster arguments, got {type(slurm).__name__}")
            jobs = slurm.get("jobs", 1)
            if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
                raise ValueError(f"slurm['jobs']: expected a positive int, got {jobs!r}")
            try:
                import dask_jobqueue  # noqa: F401
            except ImportError as e:
                raise ImportError("slurm: needs dask-jobqueue: pip install mempamal[slurm]") from e
        self.slurm = slurm
        if scheduler_address is not None and client is not None:
            raise ValueError("scheduler_address, client: give one or the other, not both")
        if scheduler_address is not None and not isinstance(scheduler_address, str):
            raise ValueError(f"scheduler_address: expected a str such as 'tcp://host:8786', "
                             f"got {scheduler_address!r}")
        if client is not None:
            from distributed import Client

            if not isinstance(client, Client):
                raise ValueError(f"client: expected a distributed.Client, got {type(client).__name__}")
        if n_jobs is not None:
            if scheduler_address is not None or client is not None:
                raise ValueError("n_jobs: sets the workers of the LocalCluster the dask back-end starts; "
                                 "with scheduler_address or client, size that cluster instead")
            if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs == 0:
                raise ValueError(f"n_jobs: expected a non-zero int or None, got {n_jobs!r}")
        if threads_per_task is not None and (not isinstance(threads_per_task, int)
                                             or isinstance(threads_per_task, bool) or threads_per_task < 1):
            raise ValueError(f"threads_per_task: expected a positive int or None, got {threads_per_task!r}")
        self.scheduler_address = scheduler_address
        self.client = client
        self.n_jobs = n_jobs
        self.threads_per_task = threads_per_task

    def _local_cluster(self):
        from distributed import LocalCluster
        from joblib import cpu_count

        n_jobs = self.n_jobs or -1
        workers = n_jobs if n_jobs > 0 else max(cpu_count() + 1 + n_jobs, 1)
        threads = self.threads_per_task or max(cpu_count() // workers, 1)
        try:
            # On loopback only, without a dashboard (the scheduler's health page on any free port):
            # a private cluster for this run.
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                                   env=thread_limits(threads))
        except Exception as e:
            raise RuntimeError(
                f"backend 'dask': could not start a LocalCluster of {workers} worker processes ({e}). "
                "Its workers are new processes that import your main module: in a script, call run() under "
                "`if __name__ == \"__main__\":`") from e
        return cluster, threads

    def _slurm_cluster(self, workdir: Path):
        from dask_jobqueue import SLURMCluster

        options = dict(self.slurm)
        # The workers' SLURM output goes with the run's logs, not to the current directory.
        options.setdefault("log_directory", os.fspath(workdir / LOG_DIR / "dask-slurm"))
        jobs = options.pop("jobs", 1)
        options.setdefault("processes", 1)  # one task per worker process at a time: see _ONE_TASK_PER_PROCESS
        cores = options.get("cores") or 1
        threads = self.threads_per_task or max(cores // options["processes"], 1)
        # Nested parallelism: the cores SLURM gives a job are its worker's BLAS/OpenMP threads.
        options["job_script_prologue"] = [f"export {k}={v}" for k, v in thread_limits(threads).items()] + list(
            options.get("job_script_prologue") or [])
        try:
            cluster = SLURMCluster(**options)
        except Exception as e:
            raise ValueError(f"slurm: could not make a SLURMCluster of {options}: {type(e).__name__}: {e}") from e
        try:
            cluster.scale(jobs=jobs)
        except BaseException:
            cluster.close()
            raise
        return cluster, threads

    def execute(self, workdir: Path, workflow: Workflow, tasks: list[Task],
                progress: Progress) -> dict[str, TaskOutcome]:
        from distributed import Client

        if self.slurm is not None:
            return self._execute_on_own_cluster(*self._slurm_cluster(workdir), workdir, tasks, progress)
        if self.scheduler_address is None and self.client is None:
            with environ_kept(_nanny_environ()):
                return self._execute_on_own_cluster(*self._local_cluster(), workdir, tasks, progress)
        client = self.client
        if client is None:
            try:
                client = Client(self.scheduler_address, set_as_default=False)
            except OSError as e:
                raise ConnectionError(f"scheduler_address: cannot reach a Dask scheduler at "
                                      f"{self.scheduler_address}: {e}") from e
        return self._execute_with(client, None, workdir, tasks, progress, self.threads_per_task)

    def _execute_on_own_cluster(self, cluster, threads: int, workdir: Path, tasks: list[Task], progress: Progress):
        """On a cluster this run started (a LocalCluster, a SLURMCluster): it ends with the run."""
        from distributed import Client

        try:
            client = Client(cluster, set_as_default=False)
        except BaseException:
            cluster.close()  # a SLURMCluster's close cancels its jobs
            raise
        return self._execute_with(client, cluster, workdir, tasks, progress, threads)

    def _execute_with(self, client, cluster, workdir: Path, tasks: list[Task], progress: Progress,
                      threads: int | None) -> dict[str, TaskOutcome]:
        try:
            return self._submit_and_wait(client, workdir, tasks, progress, threads)
        finally:
            if client is not self.client:
                client.close()
            if cluster is not None:  # the cluster this run started ends with it (SLURM: jobs cancelled)
                cluster.close()

    # -- detached: fire-and-forget futures on an external scheduler ---------------------------
    def detach(self, workdir: Path, workflow: Workflow, tasks: list[Task]) -> dict:
        """Submit ``tasks`` as fire-and-forget futures: the scheduler runs them after this client is gone."""
        if self.scheduler_address is None and self.client is None:
            raise ValueError("backend 'dask': a detached run needs an external scheduler (scheduler_address, or a "
                             "client of a cluster that outlives this process): the "
                             + ("SLURMCluster of slurm=" if self.slurm is not None else "LocalCluster")
                             + " this back-end would start ends with this process; use run() for it")
        from distributed import fire_and_forget

        client = self.client or self._connect(self.scheduler_address)
        try:
            token = uuid.uuid4().hex[:12]
            futures = {}
            for task in tasks:
                deps = [futures[d] for d in task.dependencies if d in futures]
                futures[task.name] = client.submit(
                    _run_on_worker, os.fspath(workdir), task.id.to_json(), self.threads_per_task, *deps,
                    key=f"{task.name}-{token}", pure=False)
            fire_and_forget(list(futures.values()))
            return {"scheduler": client.scheduler.address, "keys": [f.key for f in futures.values()]}
        finally:
            if client is not self.client:
                client.close()  # flushes the submissions first

    @staticmethod
    def _connect(address: str):
        from distributed import Client

        try:
            return Client(address, set_as_default=False, timeout=30)
        except OSError as e:
            raise ConnectionError(f"scheduler_address: cannot reach a Dask scheduler at {address}: {e}") from e

    @classmethod
    def describe_detached(cls, detached: dict) -> str:
        return f"{len(detached['keys'])} fire-and-forget futures on the Dask scheduler {detached['scheduler']}"

    @classmethod
    def detached_alive(cls, detached: dict) -> bool:
        """Whether the scheduler still holds tasks of the submission not yet finished or failed
        (a scheduler that cannot be reached runs nothing more)."""
        try:
            client = cls._connect(detached["scheduler"])
        except ConnectionError:
            return False
        keys = detached["keys"]

        def unfinished(dask_scheduler=None):  # runs on the scheduler (sent by value: a closure)
            tasks = dask_scheduler.tasks
            return sum(1 for k in keys if k in tasks and tasks[k].state not in ("memory", "erred", "forgotten"))

        try:
            return client.run_on_scheduler(unfinished) > 0
        finally:
            client.close()

    @classmethod
    def detached_cancel(cls, detached: dict) -> None:
        from distributed import Future

        client = cls._connect(detached["scheduler"])
        try:
            client.cancel([Future(k, client) for k in detached["keys"]], force=True)
        finally:
            client.close()

    @staticmethod
    def _submit_and_wait(client, workdir: Path, tasks: list[Task], progress: Progress,
                         threads: int | None) -> dict[str, TaskOutcome]:
        from distributed import as_completed

        # Keys unique to this run: a shared scheduler may hold another run of the same workflow.
        token = uuid.uuid4().hex[:12]
        futures = {}
        for task in tasks:  # dependency order: every predecessor's future exists already
            deps = [futures[d] for d in task.dependencies if d in futures]  # others are complete
            futures[task.name] = client.submit(
                _run_on_worker, os.fspath(workdir), task.id.to_json(), threads, *deps,
                key=f"{task.name}-{token}", pure=False)
        names = {f.key: name for name, f in futures.items()}
        by_name = {t.name: t for t in tasks}
        outcomes: dict[str, TaskOutcome] = {}
        try:
            for future in as_completed(list(futures.values()), loop=client.loop):
                name = names[future.key]
                if future.status == "finished":
                    outcome = TaskOutcome(DONE)
                else:
                    failed_deps = [d for d in by_name[name].dependencies
                                   if d in futures and futures[d].status != "finished"]
                    if failed_deps:
                        # Dask errs the dependents of a failed task with its error, without running them.
                        outcome = TaskOutcome(NOT_RUN, f"{failed_deps[0]} did not complete")
                    elif future.status == "error":
                        error = future.exception()
                        outcome = TaskOutcome(FAILED, f"{type(error).__name__}: {error}")
                    else:  # cancelled: the client or the cluster went away
                        outcome = TaskOutcome(FAILED, f"the Dask future was {future.status} "
                                                      "(the scheduler or client closed?)")
                outcomes[name] = outcome
                progress.update(outcome.status)
        finally:
            # Releases finished futures; on an interruption, stops the rest on the cluster.
            client.cancel(list(futures.values()))
        return outcomes
