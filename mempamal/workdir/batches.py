"""Batches: several tasks of one stage run by one command, in one warm process.

Every task command starts an interpreter and imports scikit-learn (1 to 3 s)
before its first fit; a batch command (``mempamal task batch . --file
batches/<stage>-<k>-<digest>.json``) pays that once for all the tasks it lists.
Each task keeps its own outputs, log, fingerprint and failure: the command runs
them in turn with :func:`mempamal.tasks.run_task`, skips those complete, goes
on after a failure and exits non-zero if any failed.

The command-based back-end and exports (Soma-Workflow, cmd-list, SLURM arrays)
group the tasks to run with :func:`plan_batches`: tasks of the same stage, in
workflow order, in batches of nearly equal size; a batch waits for the batches
holding its tasks' dependencies. A batch of one task is that task's own command.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .files import read_json, write_json
from .layout import BATCH_FORMAT, STAGES, TaskId, batch_file, batch_log, batch_name, chunk_count
from .paths import Workdir
from .workflow import PYTHON_FLAGS, Task, task_command

# Batches per job slot and stage by default. One: each slot pays one interpreter start-up per
# stage, and consecutive tasks (every inner fold and grid chunk in turn) make batches of even cost.
# Two halved the idle time a slow batch leaves at the end of a stage, but measured on the iris
# nested case (2 slots, 31 tasks) cost 15-19 s against 10-13 s: a start-up round per stage more.
# Where tasks' costs or nodes vary much, a smaller batch_size balances better.
BATCHES_PER_SLOT = 1


@dataclass(frozen=True)
class Batch:
    """Tasks of one stage run by one command, and the batches it waits for.

    Attributes
    ----------
    stage : str
    index : int
        Its rank among the batches of its stage.
    tasks : list of Task
    dependencies : list of str
        The names of the batches holding the tasks its tasks depend on.
    """

    stage: str
    index: int
    tasks: list[Task]
    dependencies: list[str]

    @property
    def name(self) -> str:
        """The task's name for a batch of one task, else e.g. ``map-batch0``."""
        return self.tasks[0].name if len(self.tasks) == 1 else batch_name(self.stage, self.index)

    @property
    def file(self) -> str:
        """The file listing its tasks, relative to the workdir (see :func:`mempamal.layout.batch_file`)."""
        return batch_file(self.stage, self.index, [t.id for t in self.tasks])

    @property
    def stdout(self) -> str:
        """Where a scheduler sends its process's standard output: the task's own for a batch of one
        task (``logs/<task>.out``), else ``logs/batches/<name>.out``."""
        return f"{self.tasks[0].log[:-len('.log')]}.out" if len(self.tasks) == 1 else batch_log(self.stage, self.index)

    @property
    def stderr(self) -> str:
        """Where a scheduler sends its standard error: the task's log for a batch of one task
        (where its traceback goes), else ``logs/batches/<name>.err``."""
        return self.tasks[0].log if len(self.tasks) == 1 else batch_log(self.stage, self.index, ".err")

    def command(self, python: str, *, if_incomplete: bool = False, log: bool = False) -> list[str]:
        """The argv that runs it from the workdir (see :func:`mempamal.workflow.task_command`).

        A batch of one task runs the task's own command (workflow.json's, when neither option is
        asked for). A batch of several tasks always skips complete tasks and sends each task's
        output to its log, whatever ``if_incomplete`` and ``log``.
        """
        if len(self.tasks) == 1:
            if not (if_incomplete or log):
                return list(self.tasks[0].command)
            return task_command(python, self.tasks[0].id, if_incomplete=if_incomplete, log=log)
        return [python, *PYTHON_FLAGS, "-m", "mempamal", "task", "batch", ".", "--file", self.file]


def default_batch_size(n_tasks: int, jobs_at_once: int) -> int:
    """Tasks per batch for a stage of ``n_tasks``: ``BATCHES_PER_SLOT`` batches per job slot."""
    return max(chunk_count(n_tasks, BATCHES_PER_SLOT * jobs_at_once), 1)


def check_batch_options(batch_size: int | None, jobs_at_once: int | None) -> None:
    """Refuse a batch size or a count of jobs at once that is not a positive int (None: automatic)."""
    for option, value in (("batch_size", batch_size), ("jobs_at_once", jobs_at_once)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"{option}: expected a positive int or None (automatic), got {value!r}")


def plan_batches(tasks: list[Task], batch_size: int | None = None, jobs_at_once: int | None = None) -> list[Batch]:
    """Group ``tasks`` (in dependency order) into batches of their stage.

    Parameters
    ----------
    tasks : list of Task
        The tasks to run; a dependency on a task not among them is taken as complete.
    batch_size : int, default=None
        Most tasks per batch; 1: one command per task (no batch command). Default: per stage,
        ``ceil(n_tasks_of_stage / (BATCHES_PER_SLOT * jobs_at_once))``.
    jobs_at_once : int, default=None
        The jobs that run at once, for the default batch size; default: this machine's cores.

    Returns
    -------
    batches : list of Batch
        Stage by stage (map, refit, permute, gather), each stage's tasks in workflow order split
        into ``ceil(n / batch_size)`` batches of nearly equal size.
    """
    check_batch_options(batch_size, jobs_at_once)
    jobs_at_once = jobs_at_once or os.cpu_count() or 1
    by_stage: dict[str, list[Task]] = {}
    for task in tasks:
        by_stage.setdefault(task.stage, []).append(task)
    batches: list[Batch] = []
    batch_of: dict[str, str] = {}  # task name -> the name of its batch, for the batches made so far
    given = {t.name for t in tasks}
    for stage in sorted(by_stage, key=STAGES.index):
        members = by_stage[stage]
        size = batch_size or default_batch_size(len(members), jobs_at_once)
        n_batches = chunk_count(len(members), size)
        bounds = [round(k * len(members) / n_batches) for k in range(n_batches + 1)]
        for k in range(n_batches):
            chunk, dependencies = members[bounds[k]:bounds[k + 1]], []
            for task in chunk:
                for d in task.dependencies:
                    name = batch_of.get(d)
                    if name is None and d in given:
                        # A batch runs its tasks in turn, whatever they wait for: a dependency must be
                        # in an earlier batch (a task of a batch of one may wait for one of its stage).
                        raise ValueError(f"task {task.name} depends on {d}, of its own batch or of a later "
                                         "one: tasks of a stage must not depend on each other to be run in "
                                         "batches (batch_size=1 runs them one by one)")
                    if name is not None and name not in dependencies:
                        dependencies.append(name)
            batch = Batch(stage, k, chunk, dependencies)
            batch_of.update((t.name, batch.name) for t in batch.tasks)
            batches.append(batch)
    return batches


def write_batch_files(workdir: Path, batches: list[Batch]) -> None:
    """Write the task list of each batch of several tasks (a file's name says its content: kept if there)."""
    for batch in batches:
        path = Workdir.of(workdir).path(batch.file)
        if len(batch.tasks) > 1 and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path, {"format": BATCH_FORMAT, "stage": batch.stage, "index": batch.index,
                              "tasks": [t.id.to_json() for t in batch.tasks]})


def read_batch_file(path: str | os.PathLike) -> list[TaskId]:
    """The task identities a batch file lists."""
    doc = read_json(Path(path))
    if not isinstance(doc, dict) or doc.get("format") != BATCH_FORMAT:
        raise ValueError(f"{path}: not a batch file of this version of mempamal (format "
                         f"{doc.get('format') if isinstance(doc, dict) else None!r}, expected {BATCH_FORMAT!r})")
    return [TaskId.from_json(t) for t in doc["tasks"]]
