"""What a task reads: the experiment document, decoded on demand, its data, folds and inputs.

A :class:`Context` is built once per task (map, refit, permute or gather) from the
workdir's :class:`~mempamal.workdir.document.ExperimentDoc`; each file is read when
first asked for, and the per-sample params once per task, not once per split.
"""
from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from ..experiment.encoding import decode
from ..experiment.routing import apply_config, fold_params
from ..experiment.scoring import build_scorers
from ..workdir.document import ExperimentDoc
from ..workdir.files import InputFileError
from ..workdir.folds import Folds
from ..workdir.layout import TaskId
from ..workdir.paths import Workdir

# A file a task needs is missing, unreadable or from another experiment (the name tasks raise it by).
TaskInputError = InputFileError


class Context:
    """What every task of a workdir reads: the experiment, its data and folds.

    Parameters
    ----------
    workdir : Workdir
    """

    def __init__(self, workdir: Workdir) -> None:
        self.workdir = workdir
        self.doc: ExperimentDoc = workdir.read_experiment()
        apply_config(self.doc)  # before decoding: estimators' metadata requests need it

    def decode(self, encoded: Any) -> Any:
        return decode(encoded, self.doc.packages)

    def estimator(self):
        return self.decode(self.doc.estimator)

    def candidates(self, indices: range | None = None) -> list[dict]:
        """The decoded parameter settings ``indices`` (all of them by default)."""
        encoded = self.doc.candidates if indices is None else self.doc.candidates[indices.start:indices.stop]
        return [{k: self.decode(v) for k, v in params.items()} for params in encoded]

    def scorers(self) -> dict:
        return build_scorers(self.doc.scoring, self.doc.packages)

    @property
    def error_score(self):
        return self.decode(self.doc.error_score)

    def data(self, target: int | None = None):
        """X, the y of ``target`` (a column of y when targets are analysed apart), groups."""
        return self.workdir.load_data(self.doc, target)

    def folds(self, target: int | None = None) -> Folds:
        return self.workdir.open_folds(target)

    def permutations(self) -> np.ndarray:
        """(n_permutations, n_samples) indices: ``y[indices[p]]`` is permutation p."""
        return self.workdir.load_permutations()

    @cached_property
    def _params(self) -> dict[str, Any]:
        return self.workdir.load_params(self.doc)

    def fold_params(self, stage: str, train, test):
        """(fit keywords, {metric: score keywords}): the per-sample params of these rows, routed.

        The params files are opened once per task (memory-mapped), whatever its number of splits.
        """
        return fold_params(self.doc.params, self._params, stage, train, test)

    def read_output(self, task_id: TaskId) -> tuple[dict, dict]:
        """The (meta, arrays) of the output of a task this one depends on, checked to be this experiment's."""
        meta, arrays = self.workdir.load_output(task_id)
        if meta.get("task_fingerprint") != task_id.fingerprint(self.doc.fingerprint):
            raise InputFileError(
                f"{self.workdir.output(task_id)}: this output of task {task_id} belongs to another experiment "
                "(its fingerprint does not match experiment.json's); outputs cannot be copied between "
                "workdirs: run the workflow again (`mempamal run` recomputes that task)")
        return meta, arrays

    def fingerprints(self, task_id: TaskId) -> dict[str, str]:
        """What every output records: the experiment's fingerprint and this task's."""
        return {"fingerprint": self.doc.fingerprint, "task_fingerprint": task_id.fingerprint(self.doc.fingerprint)}
