"""The "soma-workflow" export: a workflow as Soma-Workflow's own objects and file.

:func:`to_soma_workflow` is the translation (one Job per batch of tasks, grouped by
outer fold), used by the export and by the Soma-Workflow back-end alike.
"""
from __future__ import annotations

import os
import posixpath
from pathlib import Path

from ..workdir.batches import Batch, plan_batches, write_batch_files
from ..workdir.layout import STAGES
from ..workdir.workflow import Task, Workflow, thread_limits


def to_soma_workflow(workdir: str | os.PathLike, workflow: Workflow, tasks: list[Task] | None = None, *,
                     threads_per_task: int | None = None, name: str | None = None,
                     native_specification: list[str] | None = None, batch_size: int | None = None,
                     jobs_at_once: int | None = None, batches: list[Batch] | None = None,
                     python: str | None = None, workdir_transfer=None,
                     shared_path: tuple[str, str, str] | None = None):
    """A ``soma_workflow.client.Workflow`` running ``tasks`` (default: all) of a workdir.

    One Job per batch of tasks of a stage (:func:`mempamal.batches.plan_batches`; a batch of
    one task is that task's own command), writing the batch files into the workdir.

    Parameters
    ----------
    workdir : path
        The workdir, made absolute: it is the jobs' working directory.
    workflow : Workflow
        The workdir's workflow (:func:`mempamal.workflow.load_workflow`).
    tasks : list of Task, default=None
        The tasks to run; dependencies on other tasks are taken as complete.
    threads_per_task : int, default=None
        Cap on each job's BLAS/OpenMP threads (``OMP_NUM_THREADS``...) and on
        the cores joblib counts for ``n_jobs=-1`` (``LOKY_MAX_CPU_COUNT``);
        None leaves the jobs' environment alone.
    name : str, default=None
        The workflow's name in Soma-Workflow (default: the workdir's name).
    native_specification : list of str, default=None
        Each job's options for the cluster's scheduler (SLURM: sbatch options).
    batch_size : int, default=None
        Most tasks per job; 1: one job per task. Default: from each stage's task count
        and ``jobs_at_once`` (:func:`mempamal.batches.default_batch_size`).
    jobs_at_once : int, default=None
        The jobs that run at once, for the default batch size (default: this machine's cores).
    batches : list of Batch, default=None
        The batches to submit, already planned from ``tasks`` (then ``batch_size`` and
        ``jobs_at_once`` are not used).
    python : str, default=None
        The interpreter that runs the tasks on the resource, in place of the
        one recorded in the workdir (None: the recorded one).
    workdir_transfer : soma_workflow.client.FileTransfer, default=None
        The workdir as an input FileTransfer (a directory): the jobs run in its
        copy on the resource and wait for it to be transferred.
    shared_path : (local_root, namespace, uuid), default=None
        The workdir lies under ``local_root``, which the resource knows as
        ``namespace``/``uuid`` in its path translation files.

    Returns
    -------
    soma_workflow.client.Workflow
    """
    from soma_workflow.client import Job
    from soma_workflow.client import Workflow as SomaWorkflow

    workdir = Path(workdir).resolve()
    tasks = workflow.tasks if tasks is None else tasks
    if batches is None:
        batches = plan_batches(tasks, batch_size, jobs_at_once)
    write_batch_files(workdir, batches)  # before a transfer of the workdir, which takes them along
    env = thread_limits(threads_per_task) if threads_per_task else None
    if workdir_transfer is not None and shared_path is not None:
        raise ValueError("workdir_transfer and shared_path: the workdir is either transferred or shared, not both")
    # The engine creates the stdout/stderr files at submission: their directories must exist.
    for directory in {(workdir / f).parent for b in batches for f in (b.stdout, b.stderr)}:
        directory.mkdir(parents=True, exist_ok=True)
    place, inputs = _placement(workdir, workdir_transfer, shared_path)
    # Soma-Workflow 6 opens the first job's stdout file as given, before translating paths:
    # a workdir seen through a FileTransfer or a translation leaves stdout and stderr to the
    # engine (its own files), retrieved into logs/ when the job ends (retrieve_job_stdouterr).
    plain = workdir_transfer is None and shared_path is None

    def command(b: Batch) -> list[str]:  # the resource's interpreter in place of the recorded one
        argv = b.command(python or workflow.python)
        return [python, *argv[1:]] if python else argv

    jobs = {b.name: Job(command=command(b), name=b.name, working_directory=place("."),
                        stdout_file=str(workdir / b.stdout) if plain else None,
                        stderr_file=str(workdir / b.stderr) if plain else None,
                        env=env, native_specification=native_specification, referenced_input_files=inputs)
            for b in batches}
    dependencies = [(jobs[d], jobs[b.name]) for b in batches for d in b.dependencies]
    return SomaWorkflow(jobs=list(jobs.values()), dependencies=dependencies, root_group=_groups(batches, jobs),
                        name=name or f"mempamal {workdir.name}")


def _placement(workdir: Path, workdir_transfer, shared_path: tuple[str, str, str] | None):
    """(place, inputs): the function giving the path a job sees for a path relative to the workdir
    (in its transferred copy, under a translated root, or as is), and the jobs' input transfers."""
    from soma_workflow.client import SharedResourcePath

    if workdir_transfer is not None:
        def place(relative):  # the path in the workdir's copy on the resource
            return (workdir_transfer, relative) if relative != "." else workdir_transfer
        return place, [workdir_transfer]
    if shared_path is not None:
        root, namespace, uuid = shared_path
        under = workdir.relative_to(Path(root).resolve()).as_posix()

        def place(relative):  # the path the resource translates
            return SharedResourcePath(posixpath.normpath(posixpath.join(under, relative)), namespace, uuid)
        return place, []

    def place(relative):
        return str(workdir / relative) if relative != "." else str(workdir)
    return place, []


def _groups(batches: list[Batch], jobs: dict) -> list:
    """The jobs grouped by outer fold when a batch's tasks share one (so the GUI shows the structure),
    else by stage."""
    from soma_workflow.client import Group

    groups: dict[tuple, list] = {}
    for b in batches:
        outers = {t.outer for t in b.tasks}
        outer = outers.pop() if len(outers) == 1 else None
        key = (0, outer, "") if outer is not None else (1, STAGES.index(b.stage), b.stage)
        groups.setdefault(key, []).append(jobs[b.name])
    return [Group(elements=members, name=f"outer fold {key[1]}" if key[0] == 0 else key[2])
            for key, members in sorted(groups.items())]


def export_soma_workflow(workdir: Path, workflow: Workflow, output: Path, *,
                         threads_per_task: int | None = None, name: str | None = None,
                         batch_size: int | None = None, jobs_at_once: int | None = None) -> None:
    """Soma-Workflow's serialized workflow: one job per batch of tasks, grouped by outer fold.

    ``threads_per_task`` caps each job's BLAS/OpenMP threads; ``name`` names the workflow;
    ``batch_size``, ``jobs_at_once``: see :func:`mempamal.batches.plan_batches`.
    """
    from soma_workflow.client import Helper

    soma_workflow = to_soma_workflow(workdir, workflow, threads_per_task=threads_per_task, name=name,
                                     batch_size=batch_size, jobs_at_once=jobs_at_once)
    # Helper.serialize writes in place: write beside the output and rename, as every output here.
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    try:
        Helper.serialize(str(tmp), soma_workflow)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
