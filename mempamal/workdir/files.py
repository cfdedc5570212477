"""Atomic, pickle-free reading and writing of the workdir's files.

Every output is written to a temporary file beside its final path and then
renamed, so an interrupted writer never leaves a file that looks complete.
Arrays are read with ``allow_pickle=False``: nothing in a workdir is ever
unpickled.
"""
from __future__ import annotations

import contextlib
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..exceptions import InputFileError

WRITTEN_BY_WRITE = "it is written by Experiment.write: write the experiment again (same workdir)"
# What reading a missing, truncated or garbled .npy/.npz/.json raises.
READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


@contextlib.contextmanager
def reading(path: str | os.PathLike, what: str = "") -> Iterator[None]:
    """Turn any failure to read ``path`` into an :class:`InputFileError` naming it (``what``: the fix)."""
    try:
        yield
    except InputFileError:
        raise
    except READ_ERRORS as e:
        state = "missing" if not Path(path).exists() else "unreadable (corrupt or truncated?)"
        raise InputFileError(f"{path}: {state}{'; ' + what if what else ''} ({type(e).__name__}: {e})") from e


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file that replaces ``path`` only once it is closed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as JSON (NaN and infinities refused: encode them first)."""
    text = json.dumps(obj, indent=1, allow_nan=False)
    with atomic_open(path, "w") as f:
        f.write(text + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_meta(path: str | os.PathLike) -> dict | None:
    """The meta document of a .npz of :func:`save_arrays`, or a .json document; None if unreadable.

    Cheap: only the small "meta" member of a .npz is read.
    """
    path = Path(path)
    try:
        if path.suffix == ".json":
            doc = read_json(path)
        else:  # zipfile directly: three times faster than np.load for one small member
            with zipfile.ZipFile(path) as z, z.open("meta.npy") as f:
                doc = json.loads(str(np.lib.format.read_array(f, allow_pickle=False)))
    except READ_ERRORS:
        return None
    return doc if isinstance(doc, dict) else None


def save_arrays(path: str | os.PathLike, meta: dict | None = None, **arrays: Any) -> None:
    """Save arrays to a .npz, with an optional JSON ``meta`` document inside it.

    One file per task output keeps "complete or absent" a single rename.
    """
    if meta is not None:
        arrays["meta"] = np.array(json.dumps(meta, allow_nan=False))
    for name, value in arrays.items():
        value = np.asarray(value)
        if value.dtype == object:
            raise TypeError(f"{name}: object arrays cannot be stored without pickle")
        arrays[name] = value
    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)


def load_arrays(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """Load a .npz written by :func:`save_arrays`: (meta, arrays)."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays.pop("meta"))) if "meta" in arrays else {}
    return meta, arrays
