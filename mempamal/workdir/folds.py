"""folds.npz and the files of permuted folds: written once by write(), read lazily by the tasks.

Each file holds the train/test indices of the outer folds (``outer_train_<o>``,
``outer_test_<o>``) and of the inner folds of each outer training set
(``inner_train_<o>_<i>``, relative to that training set), under a prefix per
split it holds (a target's, a permutation's: see :mod:`mempamal.workdir.layout`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .files import WRITTEN_BY_WRITE, atomic_open, reading
from .layout import FOLDS as FOLDS_FILE


def save_folds(workdir: Path, arrays: dict[str, np.ndarray], path: str = FOLDS_FILE) -> str:
    """Write ``arrays`` as the file ``path`` of ``workdir`` (folds.npz by default), atomically; return ``path``."""
    with atomic_open(Path(workdir) / path) as f:
        np.savez(f, **arrays)
    return path


class Folds:
    """Lazy access to folds.npz (or a file of permuted folds): only the arrays a task asks for are read.

    ``prefix`` selects one split among several in the file (a target's, a permutation's).
    """

    def __init__(self, workdir: Path, path: str = FOLDS_FILE, prefix: str = "") -> None:
        self._path = Path(workdir) / path
        self._prefix = prefix
        with reading(self._path, WRITTEN_BY_WRITE):
            self._npz = np.load(self._path, allow_pickle=False)

    def with_prefix(self, prefix: str) -> "Folds":
        """The same file, another split in it."""
        other = object.__new__(Folds)
        other._path, other._npz, other._prefix = self._path, self._npz, prefix
        return other

    def has_split(self) -> bool:
        """Whether the file holds this split (a permutation's folds are stored only when they differ)."""
        return f"{self._prefix}outer_train_0" in self._npz.files

    def _get(self, key: str) -> np.ndarray:
        with reading(self._path, WRITTEN_BY_WRITE):  # members are read (and may fail) only now
            return self._npz[self._prefix + key]

    def outer(self, o: int) -> tuple[np.ndarray, np.ndarray]:
        return self._get(f"outer_train_{o}"), self._get(f"outer_test_{o}")

    def inner(self, o: int, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Inner train/test indices of outer fold ``o``, relative to the whole data."""
        outer_train = self._get(f"outer_train_{o}")
        return outer_train[self._get(f"inner_train_{o}_{i}")], outer_train[self._get(f"inner_test_{o}_{i}")]

    def close(self) -> None:
        self._npz.close()
