"""A workdir as a value: the path of each of its files, and the readers of what a task needs.

:class:`Workdir` is to a workdir what :class:`~mempamal.workdir.layout.TaskId` is to
a task (in the manner of submitit's ``JobPaths``): functions ask it for "the
experiment document", "the output of this task", "the log of that one" instead of
joining file names onto a bare path. The names themselves stay in
:mod:`mempamal.workdir.layout`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import data as _data
from .document import ExperimentDoc
from .files import WRITTEN_BY_WRITE, load_arrays, reading, save_arrays
from .folds import Folds
from .layout import (EXPERIMENT, FOLDS, LOCK, MANIFEST, PERMUTATIONS, RESULTS_JSON, RESULTS_NPZ, RUNNING_DIR,
                     WORKFLOW, TaskId, permuted_folds, target_prefix)


@dataclass(frozen=True)
class Workdir:
    """The files of one workdir.

    Parameters
    ----------
    root : pathlib.Path
        The directory (relative paths stay relative: a task runs from its workdir as ".").
    """

    root: Path

    @classmethod
    def of(cls, workdir: "str | os.PathLike | Workdir") -> "Workdir":
        """``workdir`` as a Workdir (public functions take a path; they call this once)."""
        return workdir if isinstance(workdir, Workdir) else cls(Path(workdir))

    def __fspath__(self) -> str:
        return os.fspath(self.root)

    def __str__(self) -> str:
        return str(self.root)

    def path(self, relative: str | os.PathLike) -> Path:
        """A file named relative to the workdir (in a document: data files, batch files, a ``--log``)."""
        return self.root / relative

    # -- the files write() writes ------------------------------------------------------

    @property
    def experiment_json(self) -> Path:
        return self.root / EXPERIMENT

    @property
    def workflow_json(self) -> Path:
        return self.root / WORKFLOW

    @property
    def manifest_json(self) -> Path:
        return self.root / MANIFEST

    @property
    def folds_npz(self) -> Path:
        return self.root / FOLDS

    @property
    def permutations_npy(self) -> Path:
        return self.root / PERMUTATIONS

    def permuted_folds_npz(self, target: int | None, chunk: int) -> Path:
        return self.root / permuted_folds(target, chunk)

    # -- the files a run writes ---------------------------------------------------------

    def outputs(self, task_id: TaskId) -> list[Path]:
        return [self.root / out for out in task_id.outputs]

    def output(self, task_id: TaskId) -> Path:
        """The (first) output of a task: its .npz (results.npz comes second for the gather)."""
        return self.root / task_id.outputs[0]

    def log(self, task_id: TaskId) -> Path:
        return self.root / task_id.log

    def running_record(self, task_id: TaskId) -> Path:
        return self.root / task_id.running_record

    @property
    def running_dir(self) -> Path:
        return self.root / RUNNING_DIR

    @property
    def results_json(self) -> Path:
        return self.root / RESULTS_JSON

    @property
    def results_npz(self) -> Path:
        return self.root / RESULTS_NPZ

    @property
    def lock(self) -> Path:
        return self.root / LOCK

    # -- readers ---------------------------------------------------------------------

    def read_experiment(self) -> ExperimentDoc:
        """experiment.json, typed (an InputFileError naming the file when it cannot be read)."""
        return ExperimentDoc.read(self.root)

    def load_data(self, doc: ExperimentDoc, target: int | None = None) -> tuple[Any, Any, Any]:
        """X, the y of ``target`` (a column of y when targets are analysed apart), groups."""
        X, y, groups = _data.load_data(self.root, doc.data)  # raises InputFileError naming the file
        return X, (y if target is None else y[:, target]), groups

    def load_params(self, doc: ExperimentDoc) -> dict[str, Any]:
        """The per-sample parameters by name (memory-mapped), {} without any."""
        return _data.load_params(self.root, doc.data) if doc.params else {}

    def load_permutations(self) -> np.ndarray:
        """(n_permutations, n_samples) indices: ``y[indices[p]]`` is permutation p."""
        with reading(self.permutations_npy, WRITTEN_BY_WRITE):
            return np.load(self.permutations_npy, mmap_mode="r", allow_pickle=False)

    def open_folds(self, target: int | None = None) -> Folds:
        """The folds of ``target`` (y as a whole for None) in folds.npz."""
        return Folds(self.root, FOLDS, prefix=target_prefix(target))

    def open_permuted_folds(self, target: int | None, chunk: int) -> Folds:
        """The file of permuted folds of ``target`` and chunk of permutations ``chunk``."""
        return Folds(self.root, permuted_folds(target, chunk))

    def load_output(self, task_id: TaskId) -> tuple[dict, dict[str, np.ndarray]]:
        """(meta, arrays) of a task's output (an InputFileError naming it, and its log, when missing)."""
        path = self.output(task_id)
        with reading(path, f"it is the output of task {task_id}: did it fail? see {task_id.log}"):
            return load_arrays(path)

    def save_output(self, task_id: TaskId, meta: dict, **arrays: Any) -> None:
        """Write a task's (first) output, atomically."""
        save_arrays(self.output(task_id), meta=meta, **arrays)
