"""The Soma-Workflow back-end: the workflow as Soma-Workflow jobs, on this
machine (light mode) or on a configured resource (a cluster through PBS,
SLURM, SGE, DRMAA...).

Each batch of tasks of a stage becomes one Job (:mod:`mempamal.batches`; a batch
of one task is the task's own command; its argv command runs from the workdir,
its stdout and stderr in the workdir's logs/), with the dependencies between
batches, grouped by outer fold so that Soma-Workflow's GUI shows the structure.

On a remote resource (Soma-Workflow's client-server mode, reached over ssh),
the jobs find the workdir in one of three ways:

- the same path on both sides (a shared filesystem): the default;
- a declared translation (``shared_path``): the workdir lies under a local
  root that the server knows by a namespace and a uuid in its
  ``PATH_TRANSLATION_FILES`` (Soma-Workflow's SharedResourcePath);
- no shared filesystem (``transfer=True``): the workdir goes to the server as
  one input FileTransfer (a directory) before the jobs start, and each task's
  logs, and its outputs when it succeeds, come back as soon as it ends, so that
  the local workdir ends up as after a local run.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import time
from pathlib import Path

from ..export.slurm import needs_sacct_wrapper, write_sacct_wrapper
from ..export.soma_workflow import to_soma_workflow
from ..workdir.batches import Batch, check_batch_options, plan_batches
from ..workdir.workflow import Task, Workflow
from ._soma_engine import batch_outcomes, brisk_engine_loop, end_light_mode_scheduler
from ._soma_remote import fetch_logs, send_workdir, tunnel_on_loopback
from .base import NOT_RUN, Backend, Option, TaskOutcome, environ_kept
from .progress import Progress

__all__ = ["SomaWorkflowBackend", "to_soma_workflow"]

# Former names, which the tests use.
_end_light_mode_scheduler, _batch_outcomes = end_light_mode_scheduler, batch_outcomes


class SomaWorkflowBackend(Backend):
    """Submit the tasks to Soma-Workflow and wait for them.

    Parameters
    ----------
    resource_id : str, default=None
        A computing resource configured in ``~/.soma-workflow.cfg``; None runs
        Soma-Workflow's light mode on this machine (no server).
    login, password, config, rsa_key_pass :
        Passed to ``soma_workflow.client.WorkflowController`` (login and
        password of a remote resource, a ``configuration.Configuration``).
    isolated_light_mode : str or True, default=None
        Light mode with its database in this directory instead of
        ``~/.soma-workflow`` (True: a temporary one), as in WorkflowController.
    n_jobs : int, default=None
        Jobs running at once, in light mode (the local scheduler's processor
        count); -1 all cores, -2 all but one (as joblib counts); default:
        Soma-Workflow's (the cores of this machine).
    max_jobs : int, default=None
        Deprecated alias of ``n_jobs`` (the name of every back-end), with a FutureWarning.
    threads_per_task : int, default=None
        BLAS/OpenMP threads each job may use (``OMP_NUM_THREADS``,
        ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``... in its environment,
        and the cores joblib's ``n_jobs=-1`` counts in it, ``LOKY_MAX_CPU_COUNT``;
        on SLURM also the job's ``--cpus-per-task``);
        default in light mode: the cores divided by the jobs at once; on a
        remote resource: not set.
    queue : str, default=None
        The resource's queue to submit to.
    scheduler : str, default=None
        Light mode driving this machine's batch scheduler instead of running jobs
        itself: ``"slurm"`` (each task an sbatch job), ``"pbspro"``... (a login node;
        its database is a temporary file of the run).
    sacct_wrapper : bool, default=None
        With SLURM: put first on PATH, for the run, a ``sacct`` that asks for the
        field ``workdir`` where Soma-Workflow 6 asks for ``stdout``, which Slurm < 23.02
        lacks (the engine would wait forever). None: when this machine's sacct is older
        than 23.02. It reaches an engine in this process (light mode) or one the
        connection starts; a Soma-Workflow server already running, or on another
        machine, needs it on its own PATH (:func:`mempamal.slurm.write_sacct_wrapper`).
    python : str, default=None
        The Python interpreter that runs the tasks on a remote resource (with
        mempamal installed), in place of the one recorded in the workdir
        (``Experiment.write(python=...)``). Default on a remote resource: its
        ``PYTHON_COMMAND`` in the Soma-Workflow configuration, the interpreter
        that runs Soma-Workflow's server there; elsewhere: the recorded one.
    transfer : bool, default=False
        The remote resource does not see the workdir: send it (the whole
        directory, one Soma-Workflow FileTransfer) before the jobs start, and
        bring back each task's logs, and its outputs when it succeeds, as soon
        as it ends. The copy on the resource is deleted with the workflow.
    shared_path : (local_root, namespace, uuid), default=None
        The resource sees the workdir under another path: the workdir lies under
        ``local_root``, which the resource's ``PATH_TRANSLATION_FILES`` give for
        ``namespace`` and ``uuid`` (Soma-Workflow's SharedResourcePath).
    poll_interval : float, default=0.2
        Seconds between two status requests.
    batch_size : int, default=None
        Most tasks per job: each job runs a batch of tasks of one stage in one process
        (``mempamal task batch``), paying the interpreter's start-up once; each task keeps its
        own outputs, log and outcome. 1: one job per task. Default: per stage, the tasks
        split into one batch per job slot (light mode: the jobs at once; elsewhere: this
        machine's cores), see :func:`mempamal.batches.plan_batches`.
    """

    name = "soma-workflow"
    options = (
        Option("resource_id", str, "a resource of ~/.soma-workflow.cfg (default: light mode on this machine)"),
        Option("login", str, "the login on a remote resource"),
        Option("password", str, "the password of a remote resource", cli=False),  # not in shell history
        Option("config", object, "a soma_workflow.configuration.Configuration", cli=False),
        Option("rsa_key_pass", str, "the passphrase of the RSA key of a remote resource", cli=False),
        Option("isolated_light_mode", str, "light mode with its database in this directory"),
        Option("n_jobs", int, "jobs at once in light mode; -1 all cores (default: the cores)"),
        Option("max_jobs", int, "deprecated alias of n_jobs", cli=False),
        Option("threads_per_task", int, "BLAS/OpenMP threads of each job (default in light mode: the cores "
                                        "divided by the jobs at once)"),
        Option("queue", str, "the resource's queue to submit to"),
        Option("scheduler", str, "light mode submitting to this machine's batch scheduler, e.g. slurm "
                                 "(each task an sbatch job)"),
        Option("sacct_wrapper", bool, "with SLURM, a sacct asking for workdir instead of stdout "
                                      "(default: when sacct is older than 23.02)"),
        Option("python", str, "the interpreter running the tasks on a remote resource (default: its "
                              "PYTHON_COMMAND)"),
        Option("transfer", bool, "the remote resource does not see the workdir: send it, bring the results back",
               default=False),
        Option("shared_path", tuple, "the resource sees the workdir under another path: (local_root, "
                                     "namespace, uuid) of its PATH_TRANSLATION_FILES", cli=False),
        Option("poll_interval", float, "seconds between two status requests", default=0.2),
        Option("batch_size", int, "most tasks per job, run in one process (1: a job per task; default: "
                                  "one batch per job slot and stage)"),
    )

    def __init__(self, resource_id: str | None = None, *, login: str | None = None, password: str | None = None,
                 config=None, rsa_key_pass: str | None = None, isolated_light_mode: str | os.PathLike | bool | None = None,
                 n_jobs: int | None = None, max_jobs: int | None = None, threads_per_task: int | None = None,
                 queue: str | None = None, scheduler: str | None = None, sacct_wrapper: bool | None = None,
                 python: str | None = None, transfer: bool = False,
                 shared_path: tuple[str, str, str] | None = None, poll_interval: float = 0.2,
                 batch_size: int | None = None) -> None:
        check_batch_options(batch_size, None)
        if max_jobs is not None:
            import warnings

            if n_jobs is not None:
                raise ValueError("max_jobs: the former name of n_jobs; give n_jobs only")
            warnings.warn("max_jobs: renamed n_jobs, the name of every back-end for the tasks at once; "
                          "max_jobs will be removed", FutureWarning, stacklevel=2)
            n_jobs = max_jobs
        if n_jobs is not None:
            if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs == 0:
                raise ValueError(f"n_jobs: expected a non-zero int or None, got {n_jobs!r}")
            if n_jobs < 0:
                from joblib import cpu_count

                n_jobs = max(cpu_count() + 1 + n_jobs, 1)
        if threads_per_task is not None and (not isinstance(threads_per_task, int)
                                             or isinstance(threads_per_task, bool) or threads_per_task < 1):
            raise ValueError(f"threads_per_task: expected a positive int or None, got {threads_per_task!r}")
        if not poll_interval > 0:
            raise ValueError(f"poll_interval: expected a positive number of seconds, got {poll_interval!r}")
        if isinstance(isolated_light_mode, os.PathLike):
            isolated_light_mode = os.fspath(isolated_light_mode)
        if scheduler is not None:
            import importlib.util

            # Soma-Workflow finds a scheduler by its module soma_workflow.schedulers.<name>_scheduler.
            if not isinstance(scheduler, str) or not scheduler.isidentifier() or importlib.util.find_spec(
                    f"soma_workflow.schedulers.{scheduler}_scheduler") is None:
                raise ValueError(f"scheduler: expected a scheduler of Soma-Workflow such as 'slurm' or "
                                 f"'pbspro', got {scheduler!r}")
            if resource_id is not None or config is not None or isolated_light_mode is not None:
                raise ValueError("scheduler: light mode on this machine's batch scheduler; "
                                 "not with resource_id, config or isolated_light_mode (configure that resource)")
        if sacct_wrapper not in (None, True, False):
            raise ValueError(f"sacct_wrapper: expected True, False or None (automatic), got {sacct_wrapper!r}")
        if transfer not in (True, False):
            raise ValueError(f"transfer: expected True or False, got {transfer!r}")
        if shared_path is not None:
            if (not isinstance(shared_path, (tuple, list)) or len(shared_path) != 3
                    or not all(isinstance(p, (str, os.PathLike)) for p in shared_path)):
                raise ValueError(f"shared_path: expected (local_root, namespace, uuid), got {shared_path!r}")
            if transfer:
                raise ValueError("shared_path and transfer: the workdir is either shared or transferred, not both")
            shared_path = tuple(os.fspath(p) for p in shared_path)
        if python is not None and (not isinstance(python, str) or not python):
            raise ValueError(f"python: expected the path of the interpreter on the resource, got {python!r}")
        if (transfer or shared_path is not None) and resource_id is None and config is None:
            raise ValueError("transfer and shared_path: for a remote resource (resource_id), not light mode")
        self.python = python
        self._task_python = None  # the interpreter of the tasks of the run under way
        self.transfer = transfer
        self.shared_path = shared_path
        self.scheduler = scheduler
        self.sacct_wrapper = sacct_wrapper
        self.controller_options = dict(resource_id=resource_id, login=login, password=password, config=config,
                                       rsa_key_pass=rsa_key_pass, isolated_light_mode=isolated_light_mode)
        self.n_jobs = n_jobs
        self.threads_per_task = threads_per_task
        self.queue = queue
        self.poll_interval = poll_interval
        self.batch_size = batch_size

    def execute(self, workdir: Path, workflow: Workflow, tasks: list[Task],
                progress: Progress) -> dict[str, TaskOutcome]:
        scratch = Path(tempfile.mkdtemp(prefix="mempamal-soma-"))
        controller = None
        saved_path = os.environ.get("PATH")
        try:
            self._put_sacct_wrapper_on_path(scratch)  # before connecting: an engine it starts inherits PATH
            controller = self._connect(scratch)
            threads = self._configure(controller, scratch)
            # On SLURM, one setting for nested parallelism: the threads of a job are the CPUs it asks for.
            native = ([f"--cpus-per-task={threads}"] if threads and controller.get_scheduler_type() == "slurm"
                      else None)
            workdir_transfer = None
            if self.transfer:
                from soma_workflow.client import FileTransfer

                workdir_transfer = FileTransfer(is_input=True, client_path=str(Path(workdir).resolve()),
                                                name=f"workdir {Path(workdir).name}")
            self._task_python = self._python(controller)
            batches = plan_batches(tasks, self.batch_size, self._jobs_at_once(controller))
            soma_workflow = to_soma_workflow(workdir, workflow, tasks, threads_per_task=threads,
                                             native_specification=native, batches=batches,
                                             python=self._task_python, workdir_transfer=workdir_transfer,
                                             shared_path=self.shared_path)
            workflow_id = controller.submit_workflow(soma_workflow, name=soma_workflow.name, queue=self.queue)
            try:
                if self.transfer:
                    fetch = send_workdir(controller, workflow_id, workdir)
                elif self.shared_path is not None:
                    def fetch(batch, job_id, done):
                        fetch_logs(controller, Path(workdir).resolve(), batch, job_id)
                else:
                    fetch = None
                return self._wait(controller, workflow_id, workdir, workflow, tasks, progress, batches, fetch)
            finally:
                # Leave nothing behind in Soma-Workflow's database (and kill jobs still running
                # when interrupted): the outputs in the workdir are the record of the run.
                controller.delete_workflow(workflow_id, force=True)
        finally:
            if controller is not None:
                end_light_mode_scheduler(controller)
                with contextlib.redirect_stdout(io.StringIO()):
                    controller.stop_engine()
                    del controller
            if saved_path is not None:
                os.environ["PATH"] = saved_path
            shutil.rmtree(scratch, ignore_errors=True)

    def _python(self, controller) -> str | None:
        """The interpreter of the tasks on the resource: the option, or a remote resource's PYTHON_COMMAND."""
        from soma_workflow.configuration import REMOTE_MODE

        if self.python is not None or controller.config.get_mode() != REMOTE_MODE:
            return self.python
        parser = controller.config.get_config_parser()
        resource = controller.config._resource_id
        if parser is None or not parser.has_option(resource, "PYTHON_COMMAND"):
            return None
        command = parser.get(resource, "PYTHON_COMMAND").strip()
        if command.startswith("["):  # Soma-Workflow also takes a list (a wrapper and its arguments)
            raise ValueError(f"resource {resource!r}: PYTHON_COMMAND {command} is a list; give the "
                             f"interpreter of the tasks with python=...")
        return os.path.expandvars(command)

    def _connect(self, scratch: Path | None = None):
        from soma_workflow.client import WorkflowController

        options = self.controller_options
        if self.scheduler is not None:
            from soma_workflow.configuration import LIGHT_MODE, Configuration

            # Light mode on a batch scheduler is reached through a Configuration, not the config file.
            scratch = scratch or Path(tempfile.mkdtemp(prefix="mempamal-soma-"))
            options = {**options, "config": Configuration(
                "localhost", LIGHT_MODE, self.scheduler, str(scratch / "soma-workflow.db"),
                str(scratch / "transfers"))}

        if options["resource_id"] is not None or options["config"] is not None:
            tunnel_on_loopback()
        chatter = io.StringIO()
        try:
            # Isolated light mode points SOMA_WORKFLOW_CONFIG at its directory for good: restored. Its
            # chatter would garble the progress bar; it explains a failed connection, though.
            with environ_kept(["SOMA_WORKFLOW_CONFIG"]), contextlib.redirect_stdout(chatter), \
                    contextlib.redirect_stderr(chatter), brisk_engine_loop():
                return WorkflowController(**options)
        except ConnectionError as e:
            raise ConnectionError(f"{e}\nSoma-Workflow's output while connecting:\n{chatter.getvalue()[-3000:]}") \
                from e

    def _put_sacct_wrapper_on_path(self, scratch: Path) -> None:
        """The sacct wrapper first on PATH for this run when asked, or when this machine's sacct is too old.

        Only Soma-Workflow's slurm scheduler calls sacct: harmless for the others.
        """
        if self.sacct_wrapper is False:
            return
        if self.sacct_wrapper or needs_sacct_wrapper():
            wrapper = write_sacct_wrapper(scratch / "bin")
            os.environ["PATH"] = os.pathsep.join([str(wrapper.parent), os.environ.get("PATH", "")])

    def _configure(self, controller, scratch: Path) -> int | None:
        """Apply n_jobs to a light-mode scheduler; return the threads per job."""
        from soma_workflow.configuration import LOCAL_SCHEDULER, LocalSchedulerCfg, cpu_count

        scheduler = controller.scheduler_config
        # Light mode may also drive a cluster's scheduler (SLURM...): only its local one runs jobs here.
        local = controller.get_scheduler_type() == LOCAL_SCHEDULER and isinstance(scheduler, LocalSchedulerCfg)
        if not local:
            if self.n_jobs is not None:
                raise ValueError(
                    f"n_jobs: only for Soma-Workflow's light mode on this machine, not for resource "
                    f"{self.controller_options['resource_id']!r}; limit running jobs in its configuration instead")
            return self.threads_per_task
        if self.n_jobs is not None:
            # The scheduler saves each change to its configuration file (by default the user's
            # ~/.soma-workflow-scheduler.cfg): make that a throw-away file of this run.
            scheduler._config_path = str(scratch / "soma-workflow-scheduler.cfg")
            scheduler.set_proc_nb(self.n_jobs)
            # max_proc_nb 0 would start extra jobs whenever the CPUs look idle.
            scheduler.set_max_proc_nb(self.n_jobs)
        if self.threads_per_task is not None:
            return self.threads_per_task
        jobs_at_once = self.n_jobs or scheduler.get_proc_nb() or cpu_count()
        return max(cpu_count() // jobs_at_once, 1)

    def _jobs_at_once(self, controller) -> int | None:
        """The jobs a light-mode local scheduler runs at once (after _configure); None elsewhere."""
        from soma_workflow.configuration import LOCAL_SCHEDULER, LocalSchedulerCfg

        scheduler = controller.scheduler_config
        if controller.get_scheduler_type() == LOCAL_SCHEDULER and isinstance(scheduler, LocalSchedulerCfg):
            return self.n_jobs or scheduler.get_proc_nb() or None
        return None

    def _wait(self, controller, workflow_id, workdir: Path, workflow: Workflow, tasks: list[Task],
              progress: Progress, batches: list[Batch] | None = None, fetch=None) -> dict[str, TaskOutcome]:
        from soma_workflow import constants

        by_job = {b.name: b for b in (plan_batches(tasks, 1) if batches is None else batches)}
        jobs_info = controller.workflow_elements_status(workflow_id)[0]
        names = {job_id: info[0] for job_id, info in controller.jobs([j[0] for j in jobs_info]).items()}
        # Batches in workflow order: files fetched back get increasing mtimes, inputs before outputs.
        order = {t.name: i for i, t in enumerate(workflow.tasks)}
        outcomes: dict[str, TaskOutcome] = {}
        ended: set[str] = set()
        while True:
            jobs_info, _, status, _, _ = controller.workflow_elements_status(workflow_id)
            for job_id, job_status, _, exit_info, *_ in sorted(
                    jobs_info, key=lambda j: order[by_job[names[j[0]]].tasks[0].name]):
                name = names[job_id]
                if name in ended or job_status not in (constants.DONE, constants.FAILED):
                    continue
                exit_status, exit_value = exit_info[0], exit_info[1]
                if exit_status is None and status != constants.WORKFLOW_DONE:
                    # The engine records a job's end status, then its exit status in a second
                    # write: between the two, a job that succeeded would look failed.
                    continue
                ended.add(name)
                succeeded = (job_status == constants.DONE and exit_status == constants.FINISHED_REGULARLY
                             and exit_value == 0)
                if fetch is not None and exit_status != constants.EXIT_NOTRUN:
                    fetch(by_job[name], job_id, succeeded)  # logs and outputs first: outcomes read them
                for task_name, outcome in batch_outcomes(workdir, by_job[name], job_status, exit_status,
                                                          exit_value, self._task_python).items():
                    outcomes[task_name] = outcome
                    progress.update(outcome.status)
            # Deleting a workflow the engine has not closed yet would wait for it to time out.
            if status == constants.WORKFLOW_DONE:
                break
            time.sleep(self.poll_interval)
        for task in tasks:  # jobs the engine gave up on without an end status
            if task.name not in outcomes:
                outcomes[task.name] = TaskOutcome(NOT_RUN, "Soma-Workflow did not run it")
                progress.update(NOT_RUN)
        return outcomes
