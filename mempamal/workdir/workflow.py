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
import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from .document import ExperimentDoc
from .files import atomic_open, read_json, read_meta
from .layout import EXPERIMENT, PERMUTATIONS, WORKFLOW_FORMAT as FORMAT, TaskId, permuted_folds
from .paths import Workdir

# Among tasks ready at once, which a back-end starts first (lower first). A refit frees its fold's
# outputs and overlaps the other folds' maps instead of trailing after every map; permute tasks, the
# longest (whole analyses), go before the maps too: longest first keeps the tail of a run short.
_PRIORITY = {"refit": 0, "permute": 0, "columns": 0, "gather": 0, "map": 1}


@dataclass(frozen=True)
class Task:
    """One command of the workflow: a task identity, its command, inputs and dependencies."""

    id: TaskId
    command: list[str]
    inputs: list[str] = field(default_factory=list)
    dependencies: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.id.name

    @property
    def stage(self) -> str:
        """"map", "refit", "permute" or "gather": back-ends may group tasks by it."""
        return self.id.stage

    @property
    def priority(self) -> int:
        """Among tasks ready at once, those of lower priority start first (back-ends ask this, not the stage)."""
        return _PRIORITY[self.stage]

    @property
    def outer(self) -> int | None:
        """The outer fold a task belongs to (None: a task of every fold)."""
        return self.id.outer

    @property
    def outputs(self) -> list[str]:
        return self.id.outputs

    @property
    def log(self) -> str:
        """The task's log file, relative to the workdir."""
        return self.id.log

    def shell_command(self, workdir: str | os.PathLike | None = None) -> str:
        """The command as one shell-quoted line; with ``workdir``, runnable from any directory."""
        return shell_line(self.command, workdir)


def shell_line(argv: list[str], workdir: str | os.PathLike | None = None) -> str:
    """A command as one shell-quoted line; with ``workdir``, runnable from any directory."""
    line = shlex.join(argv)
    return f"cd {shlex.quote(str(workdir))} && {line}" if workdir is not None else line


# Commands run from the workdir, and `python -m` would put it first on sys.path: a numpy.py (or a
# mempamal/) that someone else wrote there would be imported before anything is checked. -P (Python
# 3.11+) leaves it off.
PYTHON_FLAGS = ("-P",)


def task_command(python: str, task_id: TaskId, *, if_incomplete: bool = False, log: bool = False) -> list[str]:
    """The argv that runs a task from the workdir.

    ``if_incomplete``: the task does nothing when already complete; ``log``: the task sends
    its own output to its log (for schedulers that do not redirect it themselves).
    """
    options = (["--if-incomplete"] if if_incomplete else []) + (["--log", task_id.log] if log else [])
    return [python, *PYTHON_FLAGS, "-m", "mempamal", "task", *options, *task_id.args]


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
def build_workflow(doc: ExperimentDoc | dict, python: str) -> Workflow:
    """The tasks of an experiment document (experiment.json, typed or as parsed)."""
    if isinstance(doc, dict):
        doc = ExperimentDoc.from_json(doc)
    shared = [EXPERIMENT, doc.folds] + [f for f in doc.data.values() if f]
    tasks = []
    refits = []

    def add(task_id: TaskId, inputs: list[str], dependencies: list[Task] = ()) -> Task:
        task = Task(task_id, task_command(python, task_id), inputs, [d.name for d in dependencies])
        tasks.append(task)
        return task

    if doc.stacking and doc.stacking.get("stacked"):
        # Every analysis (target, permutation) of a chunk of columns, fitted together on one outer fold.
        inputs = shared + ([PERMUTATIONS] if doc.n_permutations else [])
        columns = [add(TaskId("columns", outer=o, chunk=c), inputs)
                   for c in range(doc.stacking["n_column_chunks"]) for o in range(doc.n_outer)]
        add(TaskId("gather"), [EXPERIMENT] + [t.outputs[0] for t in columns], columns)
        return Workflow(tasks=tasks, python=python)
    for t in doc.targets:
        for o in range(doc.n_outer):
            maps = []
            if doc.with_search:
                for i in range(doc.n_inner[o]):
                    for c in range(doc.n_chunks):
                        maps.append(add(TaskId("map", target=t, outer=o, inner=i, chunk=c), shared))
            refit_id = TaskId("refit", target=t, outer=o)
            refits.append(Task(refit_id, task_command(python, refit_id), shared + [m.outputs[0] for m in maps],
                               [m.name for m in maps]))
    tasks.extend(refits)
    # Permutations need nothing of the unpermuted analysis: they run beside it, and only the gather waits.
    # Without a file of permuted folds (splitters that ignore y), a permutation uses y's folds.
    permutes = [add(TaskId("permute", target=t, perm=k, outer=o),
                    shared + [PERMUTATIONS] + ([permuted_folds(t, k)] if doc.permuted_folds else []))
                for t in doc.targets for k in range(doc.n_permutation_chunks) for o in range(doc.n_outer)]
    add(TaskId("gather"), [EXPERIMENT] + [r.outputs[0] for r in refits + permutes], refits + permutes)
    return Workflow(tasks=tasks, python=python)


@_gc_paused()
def save_workflow(workdir: str | os.PathLike, workflow: Workflow) -> None:
    """Write workflow.json: one task per line, so that 100,000 tasks stay quick to write and to grep.

    Each task says everything another scheduler needs (name, command, inputs, outputs,
    dependencies) and its identity (``id``), from which mempamal derives the rest.
    """
    head = json.dumps({
        "format": FORMAT,
        "python": workflow.python,
        "cwd": "the workdir: every command runs from the directory holding this file",
    }, indent=1)
    # json's C encoder works only without indent: compact lines of plain dicts.
    dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
    lines = ",\n".join(dumps({"name": t.name, "id": t.id.to_json(), "command": t.command, "inputs": t.inputs,
                               "outputs": t.outputs, "dependencies": t.dependencies, "stage": t.stage})
                       for t in workflow.tasks)
    with atomic_open(Workdir.of(workdir).workflow_json, "w") as f:
        f.write(f'{head[:-2]},\n "tasks": [\n{lines}\n]\n}}\n')


@_gc_paused()
def load_workflow(workdir: str | os.PathLike) -> Workflow:
    path = Workdir.of(workdir).workflow_json
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no workflow here; write the experiment first (Experiment.write or `mempamal generate`)"
        )
    doc = read_json(path)
    if doc.get("format") != FORMAT:
        raise ValueError(f"{path}: written by another version of mempamal ({doc.get('format')!r}, this one reads "
                         f"{FORMAT!r}); write the experiment again (Experiment.write or `mempamal generate`)")
    return Workflow(tasks=[Task(TaskId(**t["id"]), t["command"], t["inputs"], t["dependencies"])
                           for t in doc["tasks"]], python=doc["python"])


def is_complete(workdir: str | os.PathLike, task_id: TaskId, fingerprint: str | None = None) -> bool:
    """Whether a task's outputs are all there and were written by this task of this experiment.

    The one rule of completeness, for run, status, every back-end and export. Outputs
    are written atomically, and each records the fingerprint of the experiment
    (experiment.json, data, folds) and of the task's identity: an output of another
    experiment or task, or a corrupt one, does not count.

    Parameters
    ----------
    workdir : path
    task_id : TaskId
    fingerprint : str, default=None
        The experiment's fingerprint; default: read from experiment.json.
    """
    outputs = Workdir.of(workdir).outputs(task_id)
    if not all(out.exists() for out in outputs):
        return False
    if fingerprint is None:
        fingerprint = experiment_fingerprint(workdir)
        if fingerprint is None:
            return False
    expected = task_id.fingerprint(fingerprint)
    return all((read_meta(out) or {}).get("task_fingerprint") == expected for out in outputs)


def tasks_to_do(workdir: Path, workflow: Workflow, resume: bool = True,
                fingerprint: str | None = None) -> tuple[list[Task], list[Task]]:
    """(tasks to run, tasks complete): a task is redone when incomplete or downstream of a task redone."""
    todo, done, redo = [], [], set()
    for task in workflow.tasks:
        if resume and redo.isdisjoint(task.dependencies) and is_complete(workdir, task.id, fingerprint):
            done.append(task)
        else:
            todo.append(task)
            redo.add(task.name)
    return todo, done


def experiment_fingerprint(workdir: str | os.PathLike) -> str | None:
    """experiment.json's fingerprint, read once per version of the file (callers ask for every task)."""
    path = Workdir.of(workdir).experiment_json
    try:
        stat = path.stat()
    except OSError:
        return None
    return _read_fingerprint(path, stat.st_mtime_ns, stat.st_ino, stat.st_size)


@functools.lru_cache(maxsize=8)
def _read_fingerprint(path: Path, mtime_ns: int, inode: int, size: int) -> str | None:
    return (read_meta(path) or {}).get("fingerprint")
