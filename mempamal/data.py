"""The experiment's data as numpy files: X, y and groups.

Dense arrays are stored as .npy (memory-mapped when read, so worker processes
share the page cache instead of each holding a copy); a scipy.sparse X is
stored with ``scipy.sparse.save_npz``. Nothing is ever pickled.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .files import WRITTEN_BY_WRITE, atomic_open, reading
from .layout import DATA_DIR


def as_array(value: Any, name: str) -> np.ndarray:
    """Convert y or groups (or a dense X) to a numpy array that .npy stores without pickle."""
    array = np.asarray(value)
    if array.dtype == object:
        try:
            array = array.astype(str) if all(isinstance(v, str) for v in array.ravel()) else array.astype(float)
        except (TypeError, ValueError):
            raise ValueError(
                f"{name} has dtype object, which cannot be stored without pickle; "
                f"convert it to numbers or strings first (e.g. np.asarray({name}, dtype=float))"
            ) from None
    return array


def save_data(workdir: Path, X: Any, y: Any, groups: Any = None) -> dict:
    """Write X, y (and groups) under ``workdir/data``; return their description."""
    import scipy.sparse as sp

    files = {}
    if sp.issparse(X):
        files["X"] = f"{DATA_DIR}/X.npz"
        with atomic_open(workdir / files["X"]) as f:
            sp.save_npz(f, sp.csr_matrix(X) if X.format not in ("csr", "csc") else X)
    else:
        files["X"] = f"{DATA_DIR}/X.npy"
        _save_npy(workdir / files["X"], as_array(X, "X"))
    files["y"] = f"{DATA_DIR}/y.npy"
    _save_npy(workdir / files["y"], as_array(y, "y"))
    files["groups"] = None
    if groups is not None:
        files["groups"] = f"{DATA_DIR}/groups.npy"
        _save_npy(workdir / files["groups"], as_array(groups, "groups"))
    return files


def save_array(path: Path, array: np.ndarray) -> None:
    """Write one array as .npy, atomically and without pickle."""
    _save_npy(path, array)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_open(path) as f:
        np.save(f, array, allow_pickle=False)


def load_data(workdir: Path, files: dict) -> tuple[Any, np.ndarray, np.ndarray | None]:
    """Read X, y, groups as described by :func:`save_data` (dense X memory-mapped)."""
    X = _load(workdir / files["X"])
    y = _load(workdir / files["y"])
    groups = _load(workdir / files["groups"]) if files.get("groups") else None
    return X, y, groups


def _load(path: Path) -> Any:
    with reading(path, WRITTEN_BY_WRITE):
        if path.suffix == ".npz":
            import scipy.sparse as sp

            return sp.load_npz(path)
        return np.load(path, mmap_mode="r", allow_pickle=False)
