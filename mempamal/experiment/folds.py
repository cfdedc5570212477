"""Outer and inner cross-validation folds, computed once (at write) and frozen in folds.npz.

Inner folds split each outer training set exactly as GridSearchCV would split
the data it is given, and are stored relative to that training set. Freezing
them at write() means randomized splitters give every task the same split.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Any

import numpy as np

from ..workdir.folds import Folds, save_folds
from ..workdir.layout import permutation_prefix, target_prefix
from ..workdir.tabular import is_pandas

# Written and read by the workdir's own module; named here too, where write() takes them.
__all__ = ["compute_folds", "count_folds", "same_folds", "prefixed", "subset", "Folds", "save_folds",
           "target_prefix", "permutation_prefix"]


def compute_folds(estimator, cv, inner_cv, X, y, groups, where: str = "") -> dict[str, np.ndarray]:
    """Split the data; return the arrays stored in folds.npz.

    ``inner_cv=None`` means no model selection: outer folds only. ``where`` says which y
    is split in error messages (a target, a permutation).
    """
    from sklearn.base import is_classifier
    from sklearn.model_selection import check_cv
    from sklearn.utils import _safe_indexing

    classifier = is_classifier(estimator)
    arrays = {}
    with _splitting("cv", cv, where):
        outer_splits = list(check_cv(cv, y, classifier=classifier).split(X, y, groups))
    for o, (train, test) in enumerate(outer_splits):
        arrays[f"outer_train_{o}"] = np.asarray(train, dtype=np.intp)
        arrays[f"outer_test_{o}"] = np.asarray(test, dtype=np.intp)
        if inner_cv is None:
            continue
        y_train = _safe_indexing(y, train)
        with _splitting("inner_cv", inner_cv, f"{where} (splitting the training set of outer fold {o})"):
            inner = check_cv(inner_cv, y_train, classifier=classifier)
            inner_splits = list(inner.split(
                _safe_indexing(X, train), y_train, None if groups is None else _safe_indexing(groups, train)
            ))
        for i, (inner_train, inner_test) in enumerate(inner_splits):
            arrays[f"inner_train_{o}_{i}"] = np.asarray(inner_train, dtype=np.intp)
            arrays[f"inner_test_{o}_{i}"] = np.asarray(inner_test, dtype=np.intp)
    return arrays


# scikit-learn's words in a splitter's error -> what to do about it.
_SPLIT_FIXES = (
    ("'groups' parameter should not be None", "pass groups=... to write() (one group label per sample)"),
    ("number of groups", "use fewer splits (n_splits at most the number of groups) or more groups"),
    ("target types", "a stratified splitter needs class labels: for a continuous y use KFold or ShuffleSplit"),
    ("members", "use fewer splits (n_splits at most the number of members of the smallest class)"),
    ("n_samples", "use fewer splits (n_splits at most the number of samples)"),
)


@contextlib.contextmanager
def _splitting(name: str, cv: Any, where: str = ""):
    """Report a splitter's failure (and its class-size warning, a fold without a class) as
    a ValueError naming ``cv``/``inner_cv`` and the fix."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="The least populated class", category=UserWarning)
        try:
            yield
        except (ValueError, UserWarning) as e:
            fix = next((f for words, f in _SPLIT_FIXES if words in str(e)), "check the splitter against the data")
            raise ValueError(f"{name}={cv!r} cannot split the data{where}: {e} Fix: {fix}.") from None


def count_folds(arrays: dict[str, np.ndarray]) -> tuple[int, list[int]]:
    """(number of outer folds, number of inner folds of each outer fold)."""
    n_outer = sum(1 for k in arrays if k.startswith("outer_train_"))
    n_inner = [sum(1 for k in arrays if k.startswith(f"inner_train_{o}_")) for o in range(n_outer)]
    return n_outer, n_inner


def same_folds(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    """Whether two splits of the data are the same (the same arrays under the same keys)."""
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def prefixed(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}{k}": v for k, v in arrays.items()}


def subset(array: Any, indices: np.ndarray) -> Any:
    """Rows ``indices`` of a (memory-mapped, sparse or dense) array, as an in-memory array.

    A DataFrame's rows are taken as scikit-learn's ``_safe_indexing`` takes them
    (``DataFrame.take``: the index follows the rows).
    """
    if array is None:
        return None
    if is_pandas(array):
        return array.take(indices)
    rows = array[indices]
    return np.asarray(rows) if isinstance(rows, np.memmap) else rows
