"""Export a workdir's workflow for other tools, in formats registered by name.

- "soma-workflow": Soma-Workflow's own JSON file (``Helper.serialize``), which
  ``soma_submit_workflow`` and ``soma_workflow_gui`` load on a cluster's login
  node;
- "cmd-list": a JSON document with each command as one shell-quoted line that
  runs as is from any current directory, and the dependency pairs;
- "slurm": a bash script of ``sbatch`` calls, one job array per stage
  (:mod:`mempamal.slurm`), for clusters with nothing but SLURM.

A format is a function ``(workdir, workflow, output, **options)``; add one
with :func:`register_exporter` or an entry in :data:`EXPORTERS`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .files import write_json
from .workflow import Workflow, load_workflow

CMD_LIST_FORMAT = "mempamal/cmd-list-1"


def export_soma_workflow(workdir: Path, workflow: Workflow, output: Path, *,
                         threads_per_task: int | None = None, name: str | None = None) -> None:
    """Soma-Workflow's serialized workflow: one job per task, grouped by outer fold.

    ``threads_per_task`` caps each job's BLAS/OpenMP threads; ``name`` names the workflow.
    """
    from soma_workflow.client import Helper

    from .backends.soma_workflow import to_soma_workflow

    soma_workflow = to_soma_workflow(workdir, workflow, threads_per_task=threads_per_task, name=name)
    # Helper.serialize writes in place: write beside the output and rename, as every output here.
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    try:
        Helper.serialize(str(tmp), soma_workflow)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)


def export_cmd_list(workdir: Path, workflow: Workflow, output: Path) -> None:
    """JSON: ``commands`` (shell lines runnable from anywhere), ``names``, and ``dependencies``,
    pairs ``[i, j]`` of indices in ``commands`` meaning that command j waits for command i."""
    index = {t.name: i for i, t in enumerate(workflow.tasks)}
    write_json(output, {
        "format": CMD_LIST_FORMAT,
        "workdir": str(workdir),
        "names": [t.name for t in workflow.tasks],
        "commands": [t.shell_command(workdir) for t in workflow.tasks],
        "dependencies": [[index[d], index[t.name]] for t in workflow.tasks for d in t.dependencies],
    })


def export_slurm(workdir: Path, workflow: Workflow, output: Path, **options) -> None:
    """A bash script submitting one SLURM job array per stage, chained by ``afterok``; its task lists
    and job scripts go to ``WORKDIR/slurm/``. Options: see :func:`mempamal.slurm.write_submit_script`."""
    from .slurm import write_submit_script

    write_submit_script(workdir, workflow, output, **options)


EXPORTERS: dict[str, Callable[..., None]] = {
    "soma-workflow": export_soma_workflow,
    "cmd-list": export_cmd_list,
    "slurm": export_slurm,
}


def register_exporter(name: str, exporter: Callable[..., None]) -> None:
    """Register an export format: ``exporter(workdir, workflow, output, **options)``."""
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
        The format's own options (e.g. ``threads_per_task`` for "soma-workflow").

    Returns
    -------
    output : Path
    """
    if format not in EXPORTERS:
        raise ValueError(f"format: unknown export format {format!r}; choose one of {sorted(EXPORTERS)}")
    workdir = Path(workdir).resolve()
    output = Path(output)
    EXPORTERS[format](workdir, load_workflow(workdir), output, **options)
    return output
