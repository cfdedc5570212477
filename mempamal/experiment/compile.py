"""Compile an experiment: from an Experiment and its data to experiment.json and the arrays it describes.

The middle step of :meth:`Experiment.write <mempamal.experiment.Experiment.write>`
(validate, compile, store). Nothing here touches a file: the data are checked, the
parameters routed, the folds and permutations computed, the document built and
fingerprinted, all in memory, so that what would be written is known (and refused
when wrong) before the workdir is touched; :mod:`mempamal.experiment.store` writes it.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .. import __version__
from ..workdir.data import as_array
from ..workdir.layout import EXPERIMENT_FORMAT as FORMAT, FOLDS, PERMUTATIONS, chunk_count
from ..workdir.tabular import check_frame, frame_digest, is_frame, is_pandas
from .encoding import encode, packages_of
from .folds import compute_target_folds, count_folds, fold_arrays_of
from .permutations import default_chunk_size, draw_permutations
from .routing import route
from .stacking import columns_per_chunk, decide, splitter_ignores_y


class Validated(NamedTuple):
    """What validating an Experiment's attributes yields, as experiment.json stores it."""

    estimator: dict
    scoring: dict
    refit: Any
    candidates: list[dict] | None  # a grid's, encoded; None without a grid (distributions sample at write)


@dataclass(frozen=True)
class Compiled:
    """What :func:`store` writes: experiment.json's document and the arrays it describes.

    Attributes
    ----------
    doc : dict
        experiment.json, fingerprint included, but for ``"data"`` (the data files' names,
        which storing them gives).
    X, y, groups, params
        The checked data (a DataFrame X kept as one).
    folds : dict of str to ndarray
        folds.npz: every target's outer and inner folds, each under its target's prefix.
    permutations : ndarray of shape (n_permutations, n_samples) or None
        ``y[permutations[p]]`` is permutation ``p`` of y.
    permuted_folds : dict of str to dict of str to ndarray
        Per file (a target and chunk of permutations), the folds of the permuted y's that differ
        from the unpermuted y's.
    """

    doc: dict
    X: Any
    y: np.ndarray
    groups: np.ndarray | None
    params: dict[str, Any] | None
    folds: dict[str, np.ndarray]
    permutations: np.ndarray | None
    permuted_folds: dict[str, dict[str, np.ndarray]]


def compile_experiment(exp, checked: Validated, X, y: np.ndarray, groups: np.ndarray | None = None,
                       params: dict[str, Any] | None = None) -> Compiled:
    """The document and arrays that write() stores, from an Experiment and data already checked.

    Parameters
    ----------
    exp : Experiment
        The experiment, its attributes validated into ``checked``.
    checked : Validated
        What ``exp._validate()`` returned.
    X, y, groups, params
        The data as :func:`check_data` returned them.

    Returns
    -------
    Compiled
        Nothing is written: a splitter or a routing that fails raises here.
    """
    from sklearn.base import is_classifier

    with_search = exp.param_grid is not None or exp.param_distributions is not None
    inner_cv = exp.inner_cv if with_search else None
    routing = None
    if params:
        routing = route(exp.estimator, scoring=exp.scoring, refit=exp.refit, error_score=exp.error_score,
                        cv=exp.cv, inner_cv=exp.inner_cv, with_search=with_search, names=sorted(params),
                        metrics=list(checked.scoring))
    # Sampled once (distributions now, as RandomizedSearchCV samples at fit): encoded and judged for stacking.
    candidates = search_candidates(exp.param_grid, exp.param_distributions, exp.n_iter, exp.random_state)
    if exp.param_distributions is not None:
        checked = checked._replace(candidates=encode_candidates(candidates))
    targets = list(range(y.shape[1])) if exp.per_target else [None]
    # Splitters that ignore y (and split alike every time) give every target and permutation y's folds:
    # split once, not once per y (4,020 splits of 200 permutations x 20 targets were 86% of write's time).
    classifier = bool(is_classifier(exp.estimator))
    ignore_y = splitter_ignores_y(exp.cv, classifier) is None and (
        inner_cv is None or splitter_ignores_y(inner_cv, classifier, "inner_cv") is None)
    folds = compute_target_folds(exp.estimator, exp.cv, inner_cv, X, y, groups, targets, with_search=with_search,
                                 ignore_y=ignore_y)
    perm_chunk = exp.permutation_chunk_size or default_chunk_size(exp.n_permutations)
    permutations, permuted = draw_permutations(
        exp.estimator, exp.cv, inner_cv, X, y, groups, targets, folds, n_permutations=exp.n_permutations,
        random_state=exp.permutation_random_state, chunk_size=perm_chunk, ignore_y=ignore_y)

    doc = _document(exp, checked, count_folds(fold_arrays_of(folds, targets[0])), n_samples=int(y.shape[0]),
                    n_targets=len(targets), permutation_chunk_size=perm_chunk)
    # False: the splitters ignore y, every permutation has y's folds and no permuted_folds/ file is written.
    doc["permuted_folds"] = bool(exp.n_permutations) and not ignore_y
    doc["stacking"] = _stacking(exp, candidates, checked.scoring, classifier, X, y, targets, inner_cv)
    if routing is not None:
        doc["params"] = routing  # where each per-sample parameter goes (see mempamal.experiment.routing)
    doc["packages"] = sorted(packages_of([doc["estimator"], doc["scoring"], doc["candidates"]]))
    doc["fingerprint"] = _fingerprint(doc, [X, y, groups, permutations] + [params[k] for k in sorted(params or {})],
                                      [folds] + [arrays for _, arrays in sorted(permuted.items())])
    return Compiled(doc, X, y, groups, params, folds, permutations, permuted)


def _stacking(exp, candidates, scoring: dict, classifier: bool, X, y, targets: list, inner_cv) -> dict:
    """experiment.json's "stacking": whether the analyses are fitted together as columns, why, and their chunks
    (``block`` columns of y per analysis, ``chunk_size`` analyses per task)."""
    n_analyses = len(targets) * (1 + exp.n_permutations)
    decision = decide(exp.estimator, candidates, exp.cv, inner_cv, scoring, classifier=classifier,
                      n_columns=n_analyses, mode=exp.stack_columns)
    out = decision.to_json()
    if decision.stacked:
        block = 1 if exp.per_target or y.ndim == 1 else y.shape[1]
        size = columns_per_chunk(X.shape[0], X.shape[1], n_analyses, block, budget=exp.column_memory, min_chunks=4)
        out.update(block=block, n_analyses=n_analyses, chunk_size=size, n_column_chunks=chunk_count(n_analyses, size))
    return out


def _document(exp, checked: Validated, counts: tuple[int, list[int]], *, n_samples: int, n_targets: int,
              permutation_chunk_size: int) -> dict:
    """experiment.json's entries that describe the analysis (in the file's order)."""
    from sklearn.base import is_classifier

    with_search = exp.param_grid is not None or exp.param_distributions is not None
    n_candidates = len(checked.candidates) if with_search else 0
    chunk = exp.grid_chunk_size or max(n_candidates, 1)
    n_outer, n_inner = counts
    return {
        "format": FORMAT,
        "mempamal_version": __version__,
        "estimator": checked.estimator,
        "estimator_repr": repr(exp.estimator),
        "is_classifier": bool(is_classifier(exp.estimator)),
        "scoring": checked.scoring,
        "refit": checked.refit,
        "error_score": encode(exp.error_score),
        "search": None if not with_search else ("grid" if exp.param_grid is not None else "random"),
        "candidates": checked.candidates,
        "n_candidates": n_candidates,
        "grid_chunk_size": chunk,
        "n_chunks": chunk_count(n_candidates, chunk) if with_search else 0,
        "cv": repr(exp.cv),
        "inner_cv": repr(exp.inner_cv) if with_search else None,
        "n_outer": n_outer,
        "n_inner": n_inner if with_search else None,
        "n_samples": n_samples,
        "folds": FOLDS,
        "per_target": exp.per_target,
        "n_targets": n_targets if exp.per_target else None,
        "n_permutations": exp.n_permutations,
        "permutation_random_state": exp.permutation_random_state,
        "permutation_chunk_size": permutation_chunk_size,
        "n_permutation_chunks": chunk_count(exp.n_permutations, permutation_chunk_size),
        "permutations": PERMUTATIONS if exp.n_permutations else None,
    }


# -- the search ---------------------------------------------------------------------------

def search_candidates(param_grid, param_distributions, n_iter: int, random_state) -> list[dict] | None:
    """Every parameter setting, in ParameterGrid (or ParameterSampler) order; None without a search."""
    from sklearn.model_selection import ParameterGrid, ParameterSampler

    if param_grid is not None:
        return list(ParameterGrid(param_grid))
    if param_distributions is not None:
        return list(ParameterSampler(param_distributions, n_iter, random_state=random_state))
    return None


def encode_candidates(candidates: list[dict]) -> list[dict]:
    """The parameter settings as experiment.json stores them (a value that cannot be stored fails here)."""
    return [
        {key: encode(value, path=f"param_grid[{key!r}] (candidate {n})") for key, value in params.items()}
        for n, params in enumerate(candidates)
    ]


# -- the data -----------------------------------------------------------------------------

def check_data(X, y, groups, params, *, estimator, per_target: bool) -> tuple[Any, np.ndarray, Any, dict | None]:
    """X, y, groups and params as write() stores them, or a ValueError naming the input and the fix.

    Warns when X has NaN that nothing in ``estimator`` takes.
    """
    X, y, groups, params = _check_data(X, y, groups, params)
    if per_target and y.ndim != 2:
        raise ValueError(f"per_target=True: expected y of shape (n_samples, n_targets), one analysis per "
                         f"column, got shape {y.shape}; use per_target=False for a single target")
    _warn_nan_without_imputer(X, estimator)
    return X, y, groups, params


def _check_data(X, y, groups, params=None):
    import scipy.sparse as sp

    if is_frame(X):
        _check_index(X, {"y": y, "groups": groups, **{f"params[{k!r}]": v for k, v in (params or {}).items()}})
        X = check_frame(X)[0]
    elif not sp.issparse(X):
        X = as_array(X, "X")
        if X.ndim != 2:
            raise ValueError(f"X: expected a 2-D array of shape (n_samples, n_features), got shape {X.shape}")
    y = as_array(y, "y")
    if y.ndim == 0 or y.shape[0] != X.shape[0]:
        raise ValueError(f"X and y: lengths differ ({X.shape[0]} samples in X, "
                         f"{y.shape[0] if y.ndim else 'none'} in y); give one target per sample")
    if y.dtype.kind in "fc" and not np.isfinite(y).all():
        bad = np.flatnonzero(~np.isfinite(y).reshape(y.shape[0], -1).all(axis=1))
        raise ValueError(f"y: {bad.size} samples have a NaN or infinite target (first: sample {bad[0]}); "
                         "drop those samples (e.g. keep = np.isfinite(y)) or impute their targets")
    if groups is not None:
        groups = as_array(groups, "groups")
        if groups.shape != (X.shape[0],):
            raise ValueError(f"groups: expected shape ({X.shape[0]},) like X's samples, got {groups.shape}")
    return X, y, groups, _check_params(params, X.shape[0])


def _check_params(params, n_samples: int) -> dict | None:
    """Per-sample parameters: names that are keywords, values of n_samples rows, stored without pickle."""
    import scipy.sparse as sp

    if params is None:
        return None
    if not isinstance(params, dict):
        raise ValueError(f"params: expected a dict of per-sample parameters, e.g. "
                         f"params={{'sample_weight': w}}, got {type(params).__name__}")
    checked = {}
    for name, value in params.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"params: {name!r} is not a valid parameter name (a Python identifier, as in "
                             "fit(sample_weight=...))")
        if name == "groups":
            raise ValueError("params['groups']: pass group labels as write(..., groups=groups); they go to "
                             "the splitters of both loops")
        where = f"params[{name!r}]"
        if is_frame(value):
            value = check_frame(value, where)[0]
        elif sp.issparse(value) or value is None or np.ndim(value) == 0:
            raise ValueError(f"{where}: expected an array of one value per sample ({n_samples}), got "
                             f"{type(value).__name__}; a constant belongs in the estimator's parameters")
        else:
            value = as_array(value, where)
        if value.shape[0] != n_samples:
            raise ValueError(f"{where}: {value.shape[0]} values, expected one per sample (n_samples={n_samples}); "
                             "give it the rows of X, in X's order")
        checked[name] = value
    return checked


def _check_index(X, others: dict) -> None:
    """scikit-learn pairs X's rows with y's, groups' and params' by position; a pandas index that
    disagrees with X's says the rows are not paired as the user thinks."""
    for name, value in others.items():
        if not is_pandas(value) or value.index.equals(X.index):
            continue
        if not X.index.is_unique:
            raise ValueError(f"X: its index has duplicate labels (e.g. {X.index[X.index.duplicated()][0]!r}) "
                             f"and {name}'s index differs from it, so the pairing of their rows cannot be "
                             f"checked; reset both (X.reset_index(drop=True), {name}.reset_index(drop=True)) "
                             "once their rows are in the same order")
        if len(value.index) == len(X.index) and value.index.sort_values().equals(X.index.sort_values()):
            raise ValueError(f"{name}: its index has the labels of X's in another order, but scikit-learn "
                             f"pairs rows by position, not by label; align it: {name} = {name}.loc[X.index]")


def _warn_nan_without_imputer(X, estimator) -> None:
    """Warn when X has NaN and neither an imputer nor the final estimator takes them."""
    import scipy.sparse as sp
    from sklearn.utils import get_tags

    if is_frame(X):
        n_missing = int(X.isna().to_numpy().sum())
    else:
        values = X.data if sp.issparse(X) else X
        n_missing = int(np.isnan(values).sum()) if values.dtype.kind in "fc" else 0
    if not n_missing:
        return
    parts = [estimator] + [v for v in estimator.get_params(deep=True).values() if hasattr(v, "fit")]
    if any(type(p).__module__.startswith("sklearn.impute") or type(p).__name__.endswith("Imputer") for p in parts):
        return
    final = estimator
    while hasattr(final, "steps"):  # a Pipeline's predictions come from its last step
        final = final.steps[-1][1]
    try:
        if get_tags(final).input_tags.allow_nan:
            return
    except Exception:  # an estimator without scikit-learn's tags: warn
        pass
    warnings.warn(
        f"X has {n_missing} NaN values and {type(estimator).__name__} has no imputer: "
        "its fits may fail (and score error_score); add one, e.g. "
        "make_pipeline(SimpleImputer(), estimator), unless your estimator accepts NaN",
        UserWarning, stacklevel=4)  # the caller of write() (write, check_data, here)


def _fingerprint(doc: dict, arrays: list, fold_arrays: list[dict]) -> str:
    """A digest of everything a task's result depends on: the experiment, the data, the folds."""
    import scipy.sparse as sp

    digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode())
    parts = []
    for a in arrays:
        if sp.issparse(a):
            a = a.tocsr()
            parts.extend([a.data, a.indices, a.indptr, np.array(a.shape)])
        else:
            parts.append(a)  # a DataFrame, None or an array
    for folds in fold_arrays:
        parts.extend(folds[k] for k in sorted(folds))
    for a in parts:
        if a is None:
            digest.update(b"none")
            continue
        if is_frame(a):
            frame_digest(a, digest)
            continue
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.view(np.uint8) if a.size else b"")
    return digest.hexdigest()
