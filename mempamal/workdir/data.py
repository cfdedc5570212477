"""The experiment's data as numpy files: X, y and groups.

Dense arrays are stored as .npy (memory-mapped when read, so worker processes
share the page cache instead of each holding a copy); a scipy.sparse X is
stored with ``scipy.sparse.save_npz``; a pandas DataFrame X as an Arrow IPC
file (see :mod:`mempamal.tabular`). Per-sample fit parameters (``params``)
are stored like the data, one file each, under the keys ``params.<name>``.
Nothing is ever pickled.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .files import WRITTEN_BY_WRITE, atomic_open, reading
from .layout import DATA_DIR
from .tabular import check_frame, is_frame, load_table, save_table


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


PARAMS_PREFIX = "params."


def save_data(workdir: Path, X: Any, y: Any, groups: Any = None, params: dict | None = None) -> dict:
    """Write X, y (and groups, params) under ``workdir/data``; return their description."""
    import scipy.sparse as sp

    files = {}
    if is_frame(X):
        files["X"] = f"{DATA_DIR}/X.arrow"
        save_table(workdir / files["X"], check_frame(X)[1])
    elif sp.issparse(X):
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
    for name, value in (params or {}).items():
        key = f"{PARAMS_PREFIX}{name}"
        if is_frame(value):
            files[key] = f"{DATA_DIR}/params/{name}.arrow"
            save_table(workdir / files[key], check_frame(value, f"params[{name!r}]")[1])
        else:
            files[key] = f"{DATA_DIR}/params/{name}.npy"
            _save_npy(workdir / files[key], as_array(value, f"params[{name!r}]"))
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


def load_params(workdir: Path, files: dict) -> dict[str, Any]:
    """The per-sample parameters stored by :func:`save_data` (memory-mapped), by name."""
    return {key[len(PARAMS_PREFIX):]: _load(workdir / path) for key, path in files.items()
            if key.startswith(PARAMS_PREFIX)}


def _load(path: Path) -> Any:
    with reading(path, WRITTEN_BY_WRITE):
        if path.suffix == ".arrow":
            return load_table(path)
        if path.suffix == ".npz":
            import scipy.sparse as sp

            return sp.load_npz(path)
        return np.load(path, mmap_mode="r", allow_pickle=False)
