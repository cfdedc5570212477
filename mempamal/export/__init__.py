"""Export a workdir's workflow for other tools, in formats registered by name.

- "soma-workflow": Soma-Workflow's own JSON file (``Helper.serialize``), which
  ``soma_submit_workflow`` and ``soma_workflow_gui`` load on a cluster's login
  node;
- "cmd-list": a JSON document with each command as one shell-quoted line that
  runs as is from any current directory, and the dependency pairs;
- "slurm": a bash script of ``sbatch`` calls, one job array per stage
  (:mod:`mempamal.slurm`), for clusters with nothing but SLURM.

Each format runs tasks in batches (:mod:`mempamal.batches`): one command runs
several tasks of a stage in one process, each with its own outputs and log.
Options of every format: ``batch_size`` (most tasks per command; 1: one command
per task, as without batches) and ``jobs_at_once`` (the jobs that will run at
once, from which the default batch size is derived; default: this machine's cores).

A format is a function ``(workdir, workflow, output, **options)``; add one
with :func:`register_exporter` or an entry in :data:`EXPORTERS`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ..workdir.batches import plan_batches, write_batch_files
from ..workdir.files import write_json
from ..workdir.layout import CMD_LIST_FORMAT
from ..workdir.trust import check_trusted
from ..workdir.workflow import Workflow, load_workflow, shell_line
from .slurm import write_submit_script
from .soma_workflow import export_soma_workflow

__all__ = ["export", "register_exporter"]


def export_cmd_list(workdir: Path, workflow: Workflow, output: Path, *, batch_size: int | None = None,
                    jobs_at_once: int | None = None) -> None:
    """JSON: ``commands`` (shell lines runnable from anywhere), one per batch of tasks, their
    ``names`` and the ``tasks`` each runs, and ``dependencies``, pairs ``[i, j]`` of indices in
    ``commands`` meaning that command j waits for command i.

    ``batch_size=1``: one command per task, each the task's own (``names`` are the task names).
    """
    batches = plan_batches(workflow.tasks, batch_size, jobs_at_once)
    write_batch_files(workdir, batches)
    index = {b.name: i for i, b in enumerate(batches)}
    write_json(output, {
        "format": CMD_LIST_FORMAT,
        "workdir": str(workdir),
        "names": [b.name for b in batches],
        "commands": [shell_line(b.command(workflow.python), workdir) for b in batches],
        "tasks": [[t.name for t in b.tasks] for b in batches],
        "dependencies": [[index[d], index[b.name]] for b in batches for d in b.dependencies],
    })


def export_slurm(workdir: Path, workflow: Workflow, output: Path, **options) -> None:
    """A bash script submitting one SLURM job array per stage, chained by ``afterok``; its task lists
    and job scripts go to ``WORKDIR/slurm/``. Options: see :func:`mempamal.slurm.write_submit_script`."""
    write_submit_script(workdir, workflow, output, **options)


EXPORTERS: dict[str, Callable[..., None]] = {
    "soma-workflow": export_soma_workflow,
    "cmd-list": export_cmd_list,
    "slurm": export_slurm,
}


def register_exporter(name: str, exporter: Callable[..., None]) -> None:
    """Register an export format, which :func:`export` and ``mempamal export --format`` then take.

    Parameters
    ----------
    name : str
        The format's name.
    exporter : callable
        ``exporter(workdir, workflow, output, **options)``: writes ``output`` from the workdir's
        :class:`~mempamal.workdir.workflow.Workflow`.

    Examples
    --------
    >>> from pathlib import Path
    >>> from mempamal.export import register_exporter
    >>> def export_task_names(workdir, workflow, output, **options):
    ...     Path(output).write_text(" ".join(task.name for task in workflow.tasks))
    >>> register_exporter("task-names", export_task_names)
    """
    EXPORTERS[name] = exporter


def export(workdir: str | os.PathLike, format: str, output: str | os.PathLike, **options) -> Path:
    """Write the workflow of ``workdir`` to ``output`` in ``format``.

    Parameters
    ----------
    workdir : path
        A directory written by :meth:`mempamal.Experiment.write`; the export
        names it by its absolute path, so it must be at that path (a shared
        filesystem) wherever the commands run.
    format : str
        One of :data:`EXPORTERS`: "soma-workflow", "cmd-list", "slurm".
    output : path
        The file to write.
    **options
        The format's own options (e.g. ``threads_per_task`` for "soma-workflow"), and every
        format's ``batch_size`` and ``jobs_at_once`` (see :func:`mempamal.batches.plan_batches`).

    Returns
    -------
    output : Path
        The file written.

    Raises
    ------
    ValueError
        For an unknown format, naming the registered ones.
    UntrustedWorkdirError
        When the workdir is not signed by this user's key (``mempamal trust``).

    See Also
    --------
    register_exporter : Add a format.
    mempamal.run : Run the workflow here instead.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mempamal import Experiment
    >>> from mempamal.export import export
    >>> X, y = load_iris(return_X_y=True)
    >>> workdir = Experiment(LogisticRegression(), cv=3).write(X, y, "runs/export")
    >>> export(workdir, "slurm", "submit.sh", cpus=1)
    PosixPath('submit.sh')
    """
    if format not in EXPORTERS:
        raise ValueError(f"format: unknown export format {format!r}; choose one of {sorted(EXPORTERS)}")
    workdir = Path(workdir).resolve()
    # The export writes workflow.json's interpreter and commands into what a scheduler runs: ours only.
    check_trusted(workdir)
    output = Path(output)
    EXPORTERS[format](workdir, load_workflow(workdir), output, **options)
    return output
