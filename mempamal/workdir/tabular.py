"""pandas DataFrames as Apache Arrow IPC files: what scikit-learn sees, kept, never pickled.

A DataFrame X is written by :meth:`Experiment.write` as ``data/X.arrow``, an
uncompressed Arrow IPC file (Feather v2): column names and order, and every
dtype pandas and Arrow agree on (float and int, with NaN; bool; category with
its categories and order; strings; datetimes, with their time zone; pandas'
nullable dtypes) are in the file's schema. Tasks map the file
(``pyarrow.memory_map``) and convert it with ``to_pandas(split_blocks=True)``:
numeric columns without nulls are then numpy views of the mapped pages, not
copies, so the workers share the page cache as they do with ``X.npy``. That
is why numeric columns are stored with NaN as NaN (not as Arrow nulls, which
would need a copy to fill them back).

Object columns must hold strings (and missing values): pandas 3 reads Arrow
strings back as its ``str`` dtype, so they are turned back into object
columns, with their missing-value marker (None or NaN) recorded in the
file's metadata.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .files import atomic_open

# Our own key in the Arrow schema's metadata, next to pyarrow's "pandas" key.
_META = b"mempamal"
EXTRA_HINT = "pip install 'mempamal[tabular]' (pandas and pyarrow)"


def is_frame(value: Any) -> bool:
    """Whether ``value`` is a pandas DataFrame (without importing pandas when it is not loaded)."""
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(value, pd.DataFrame)


def is_pandas(value: Any) -> bool:
    """Whether ``value`` is a pandas DataFrame or Series (they carry an index)."""
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(value, (pd.DataFrame, pd.Series))


def _pyarrow(what: str):
    try:
        import pyarrow as pa
        import pyarrow.ipc  # noqa: F401
    except ImportError:
        raise ImportError(f"{what} needs pyarrow: {EXTRA_HINT}") from None
    return pa


def check_frame(frame, name: str = "X"):
    """Validate a DataFrame and convert it to an Arrow table; return (frame with a fresh index, table).

    Raises ValueError naming the column and the fix: column names that are
    not unique strings, object columns that do not hold only strings.
    """
    pa = _pyarrow(f"{name} as a pandas DataFrame")
    import pandas as pd

    columns = list(frame.columns)
    bad = next((c for c in columns if not isinstance(c, str)), None)
    if bad is not None or isinstance(frame.columns, pd.MultiIndex):
        raise ValueError(
            f"{name}: column names must be strings (scikit-learn selects columns by name), got "
            f"{bad!r} ({type(bad).__name__}); rename them, e.g. {name}.columns = {name}.columns.astype(str)")
    duplicated = frame.columns[frame.columns.duplicated()].unique().tolist()
    if duplicated:
        raise ValueError(f"{name}: column names must be unique, {duplicated} appear more than once; rename "
                         f"or drop the duplicates, e.g. {name} = {name}.loc[:, ~{name}.columns.duplicated()]")
    frame = frame.reset_index(drop=True)
    missing_markers = {}
    for column in columns:
        values = frame[column]
        if values.dtype != object:
            continue
        kind = pd.api.types.infer_dtype(values, skipna=True)
        if kind not in ("string", "empty"):
            types = sorted({type(v).__name__ for v in values if not _is_missing(v)})
            raise ValueError(
                f"{name}[{column!r}]: an object column must hold strings (and missing values) to be stored "
                f"without pickle; it holds {', '.join(types)} ({kind}); convert it, e.g. "
                f"{name}[{column!r}] = {name}[{column!r}].astype(str) for labels, or .astype(float) for numbers")
        markers = {_marker(v) for v in values if _is_missing(v)}
        if len(markers) > 1:
            raise ValueError(
                f"{name}[{column!r}]: missing values are marked in several ways ({', '.join(sorted(markers))}), "
                "which a stored column cannot tell apart; use one, e.g. "
                f"{name}[{column!r}] = {name}[{column!r}].where({name}[{column!r}].notna(), None)")
        if markers:
            missing_markers[column] = markers.pop()
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
        raise ValueError(f"{name}: a column cannot be stored as Arrow ({e}); convert it to numbers, strings, "
                         "bool, category or datetime") from None
    # NaN stays NaN in numeric columns (from_pandas makes it a null): no validity bitmap, so that
    # reading back is zero-copy.
    arrays = [pa.array(frame[c].to_numpy(), from_pandas=False)
              if isinstance(frame[c].dtype, np.dtype) and frame[c].dtype.kind in "fiu" else table.column(c)
              for c in columns]
    metadata = dict(table.schema.metadata or {})
    metadata[_META] = json.dumps({"object_columns": {c: missing_markers.get(c) for c in columns
                                                     if frame[c].dtype == object}}).encode()
    table = pa.table(arrays, schema=table.schema.with_metadata(metadata))
    return frame, table


def _is_missing(value: Any) -> bool:
    import pandas as pd

    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _marker(value: Any) -> str:
    return "None" if value is None else "NA" if repr(value) == "<NA>" else "NaN"


def save_table(path: Path, table) -> None:
    """Write ``table`` as an uncompressed Arrow IPC file (memory-mappable)."""
    pa = _pyarrow("writing a DataFrame")
    with atomic_open(path) as f:
        with pa.ipc.new_file(f, table.schema) as writer:
            writer.write_table(table)


def load_table(path: Path):
    """The DataFrame of an Arrow IPC file written by :func:`save_table`, numeric columns zero-copy."""
    pa = _pyarrow(f"reading {path}")
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(f"reading {path} needs pandas: {EXTRA_HINT}") from None
    table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
    # split_blocks: one block per column, so that numeric columns stay views of the mapped file.
    frame = table.to_pandas(split_blocks=True)
    meta = json.loads((table.schema.metadata or {}).get(_META, b"{}"))
    missing = {"None": None, "NaN": np.nan, "NA": pd.NA}
    for column, marker in meta.get("object_columns", {}).items():
        if frame[column].dtype == object and marker is None:
            continue
        values = frame[column].to_numpy(dtype=object, copy=True)
        values[pd.isna(values)] = missing[marker] if marker else None
        frame[column] = pd.Series(values, dtype=object)
    return frame


def frame_digest(frame, digest) -> None:
    """Feed a deterministic description of ``frame`` (names, dtypes, values) to a hashlib object.

    Numeric columns by their bytes; others by pandas' own stable hash of their values (the
    dtype's text carries a category's categories and order).
    """
    import pandas as pd

    for name in frame.columns:
        column = frame[name]
        digest.update(f"{name!r}:{column.dtype!r}:{len(column)}:".encode())  # repr: a category's categories
        if isinstance(column.dtype, np.dtype) and column.dtype.kind in "fiub":
            values = np.ascontiguousarray(column.to_numpy())
        else:
            values = pd.util.hash_pandas_object(column, index=False).to_numpy()
            if column.dtype == object:  # None and NaN hash alike: tell them apart
                values = np.append(values, [hash_marker(v) for v in column if _is_missing(v)][:1])
        digest.update(values.view(np.uint8) if values.size else b"")


def hash_marker(value: Any) -> int:
    return {"None": 1, "NaN": 2, "NA": 3}[_marker(value)]
