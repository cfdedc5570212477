"""The workflow: a JSON list of map/reduce commands and their dependencies.

workflow.json is the contract with every back-end (and with anyone's own
scheduler): each task is an argv command run from the workdir, the files it
reads and writes (relative to the workdir, so a workdir can be moved or
mounted elsewhere), and the names of the tasks it waits for.
"""
from __future__ import annotations

import contextlib
import functools
import gc
import os
import shlex
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from .files import atomic_open, read_json

WORKFLOW_FILE = "workflow.json"
FORMAT = "mempamal/workflow-1"
LOG_DIR = "logs"


@dataclass(frozen=True)
class Task:
    """One command of the workflow."""

    name: str
    command: list[str]
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    dependencies: list[str] = field(default_factory=list)
    stage: str = ""      # "map", "refit" or "gather": back-ends may group tasks by it
    outer: int | None = None  # the outer fold a task belongs to (None: the final gather)

    @property
    def log(self) -> str:
        """The task's log file, relative to the workdir."""
        return f"{LOG_DIR}/{self.name}.log"

    @property
    def task_args(self) -> list[str]:
        """The arguments of ``mempamal task`` in the command (everything after the interpreter's options)."""
        return self.command[self.command.index("task") + 1:]

    def shell_command(self, workdir: str | os.PathLike | None = None) -> str:
        """The command as one shell-quoted line; with ``workdir``, runnable from any directory."""
        line = shlex.join(self.command)
        return f"cd {shlex.quote(str(workdir))} && {line}" if workdir is not None else line


@dataclass
class Workflow:
    """The tasks of a workdir, in an order that respects their dependencies."""

    tasks: list[Task]
    python: str

    def __post_init__(self) -> None:
        self.by_name = {t.name: t for t in self.tasks}

    def dependents(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {t.name: [] for t in self.tasks}
        for t in self.tasks:
            for d in t.dependencies:
                out[d].append(t.name)
        return out


def thread_limits(threads: int) -> dict[str, str]:
    """The environment that caps a task's threads (for nested parallelism).

    BLAS and OpenMP threads, and the cores joblib counts for an estimator's own
    ``n_jobs=-1`` (LOKY_MAX_CPU_COUNT).
    """
    return {name: str(threads) for name in (
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "LOKY_MAX_CPU_COUNT")}


def map_name(o: int, i: int, c: int) -> str:
    return f"map-o{o}-i{i}-c{c}"


def map_output(o: int, i: int, c: int) -> str:
    return f"maps/o{o}-i{i}-c{c}.npz"


def refit_output(o: int) -> str:
    return f"outer/o{o}.npz"


RESULTS_JSON = "results.json"
RESULTS_NPZ = "results.npz"


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector while building or reading many tasks (lists, no cycles):
    otherwise it walks the growing heap again and again (a third of the time at 100,000 tasks)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@_gc_paused()
def build_workflow(doc: dict, python: str) -> Workflow:
    """The tasks of an experiment document (see :mod:`mempamal.experiment`)."""
    base = [python, "-m", "mempamal", "task"]
    shared = ["experiment.json", doc["folds"]] + [f for f in doc["data"].values() if f]
    tasks = []
    refits = []
    for o in range(doc["n_outer"]):
        maps = []
        if doc["search"] is not None:
            for i in range(doc["n_inner"][o]):
                for c in range(doc["n_chunks"]):
                    maps.append(Task(
                        name=map_name(o, i, c),
                        command=base + ["map", ".", "--outer", str(o), "--inner", str(i), "--chunk", str(c)],
                        inputs=shared, outputs=[map_output(o, i, c)], stage="map", outer=o,
                    ))
        refit = Task(
            name=f"refit-o{o}",
            command=base + ["refit", ".", "--outer", str(o)],
            inputs=shared + [m.outputs[0] for m in maps], outputs=[refit_output(o)],
            dependencies=[m.name for m in maps], stage="refit", outer=o,
        )
        tasks.extend(maps)
        refits.append(refit)
    tasks.extend(refits)
    tasks.append(Task(
        name="gather", command=base + ["gather", "."],
        inputs=["experiment.json"] + [r.outputs[0] for r in refits], outputs=[RESULTS_JSON, RESULTS_NPZ],
        dependencies=[r.name for r in refits], stage="gather",
    ))
    return Workflow(tasks=tasks, python=python)


@_gc_paused()
def save_workflow(workdir: Path, workflow: Workflow) -> None:
    """Write workflow.json: one task per line, so that 100,000 tasks stay quick to write and to grep."""
    import json

    head = json.dumps({
        "format": FORMAT,
        "python": workflow.python,
        "cwd": "the workdir: every command runs from the directory holding this file",
    }, indent=1)
    # json's C encoder works only without indent, and dataclasses.asdict deep-copies every list:
    # both cost seconds at scale, hence compact lines of plain dicts.
    fields = [f.name for f in dataclasses.fields(Task)]
    dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
    lines = ",\n".join(dumps({k: getattr(t, k) for k in fields}) for t in workflow.tasks)
    with atomic_open(workdir / WORKFLOW_FILE, "w") as f:
        f.write(f'{head[:-2]},\n "tasks": [\n{lines}\n]\n}}\n')


@_gc_paused()
def load_workflow(workdir: str | os.PathLike) -> Workflow:
    path = Path(workdir) / WORKFLOW_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no workflow here; write the experiment first (Experiment.write or `mempamal generate`)"
        )
    doc = read_json(path)
    return Workflow(tasks=[Task(**t) for t in doc["tasks"]], python=doc["python"])


def is_complete(workdir: Path, task: Task, fingerprint: str | None = None) -> bool:
    """Whether a task's outputs are all there and were written by this task of this experiment.

    Outputs are written atomically, and each records the fingerprint of the
    experiment (experiment.json, data, folds) and of the task's arguments: an
    output of another experiment, or a corrupt one, does not count.

    Parameters
    ----------
    workdir : path
    task : Task
    fingerprint : str, default=None
        The experiment's fingerprint; default: read from experiment.json.
    """
    from .files import read_meta
    from .tasks import expected_fingerprint

    workdir = Path(workdir)
    if not all((workdir / out).exists() for out in task.outputs):
        return False
    if fingerprint is None:
        fingerprint = _experiment_fingerprint(workdir / "experiment.json")
        if fingerprint is None:
            return False
    expected = expected_fingerprint(fingerprint, task.task_args)
    return all((read_meta(workdir / out) or {}).get("task_fingerprint") == expected for out in task.outputs)


def _experiment_fingerprint(path: Path) -> str | None:
    """experiment.json's fingerprint, read once per version of the file (callers ask for every task)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return _read_fingerprint(path, stat.st_mtime_ns, stat.st_ino, stat.st_size)


@functools.lru_cache(maxsize=8)
def _read_fingerprint(path: Path, mtime_ns: int, inode: int, size: int) -> str | None:
    from .files import read_meta

    return (read_meta(path) or {}).get("fingerprint")
