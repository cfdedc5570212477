"""Analyses that differ only in y, fitted together as the columns of one Y: pure functions, no files.

The columns of Y are grouped in *blocks*: a block is one analysis (one column with
``per_target``, or every column of a 2-D y analysed as one multi-output problem),
scored and selected on its own, as GridSearchCV scores and selects it. When
:mod:`mempamal.experiment.stacking` says the estimator fits each column on its own
and every analysis has the same folds, each (fold, candidate) is one fit on all the
columns of a chunk; inner scores are computed per block, the best candidate selected
per block with GridSearchCV's rule, and each outer fold refitted once per distinct
selected candidate on the columns that selected it.

Scores per block use the metric's ``multioutput="raw_values"`` where the scorer is
scikit-learn's regression metric that has it (r2, explained variance, mean squared /
absolute / ... errors, their ``neg_`` forms), averaged over the block as
``multioutput="uniform_average"`` does; any other scorer is called once per block on
that block's predictions (correct for any scorer, only slower).
"""
from __future__ import annotations

import functools
import time
import traceback
import warnings
from typing import Any, Callable, NamedTuple

import numpy as np

from ..experiment.scoring import _estimator_score
from .shared_fits import shared_predictions

# scikit-learn's metrics with a multioutput="raw_values" option, by name (looked up in sklearn.metrics).
RAW_VALUES_METRICS = ("r2_score", "explained_variance_score", "mean_squared_error", "root_mean_squared_error",
                      "mean_absolute_error", "median_absolute_error", "mean_absolute_percentage_error",
                      "mean_squared_log_error", "root_mean_squared_log_error", "d2_absolute_error_score",
                      "mean_pinball_loss")

# (train, test) -> (fit keywords, {metric: score keywords}): the per-sample params of those rows.
FoldParams = Callable[[np.ndarray, np.ndarray], "tuple[dict, dict]"]


def _no_params(train, test):
    return {}, {}


@functools.lru_cache(maxsize=None)
def _raw_value_functions() -> dict:
    import sklearn.metrics

    return {f: name for name in RAW_VALUES_METRICS if (f := getattr(sklearn.metrics, name, None)) is not None}


class BlockScorer:
    """One metric's scores per block of columns, from the predictions of every column at once.

    Parameters
    ----------
    scorer : callable
        ``scorer(estimator, X, y)`` as :func:`mempamal.experiment.scoring.build_scorers` builds it.
    """

    def __init__(self, scorer: Callable) -> None:
        from sklearn.metrics import get_scorer
        from sklearn.metrics._scorer import _Scorer

        if scorer is _estimator_score:  # a regressor's own score (stacking allows no other): R²
            scorer = get_scorer("r2")
        self.scorer = scorer
        self.raw = None
        if (isinstance(scorer, _Scorer) and scorer._response_method == "predict"
                and scorer._score_func in _raw_value_functions() and "multioutput" not in scorer._kwargs):
            self.raw = (scorer._score_func, scorer._sign, scorer._kwargs)

    def __call__(self, Y_true: np.ndarray, Y_pred: np.ndarray, block: int, X_test=None,
                 score_params: dict | None = None) -> np.ndarray:
        """(n_blocks,) scores of the (n_test, k) predictions, k = n_blocks * block.

        A block of one column is scored on 1-D arrays, as its own analysis would be.
        """
        score_params = score_params or {}
        if self.raw is not None:
            func, sign, kwargs = self.raw
            raw = np.asarray(func(Y_true, Y_pred, multioutput="raw_values", **kwargs, **score_params), dtype=float)
            return sign * (raw if block == 1 else raw.reshape(-1, block).mean(axis=1))
        out = np.empty(Y_pred.shape[1] // block)
        for b in range(out.size):
            cols = slice(b * block, (b + 1) * block)
            y_true, y_pred = Y_true[:, cols], Y_pred[:, cols]
            if block == 1:
                y_true, y_pred = y_true[:, 0], y_pred[:, 0]
            out[b] = self.scorer(_predicted_class()(y_pred), X_test, y_true, **score_params)
        return out


@functools.lru_cache(maxsize=None)
def _predicted_class():
    """A regressor that predicts what it was given: a scorer called on one block's predictions."""
    from sklearn.base import BaseEstimator, RegressorMixin

    class Predicted(RegressorMixin, BaseEstimator):
        def __init__(self, predictions=None):
            self.predictions = predictions

        def predict(self, X):
            return self.predictions

    return Predicted


def _fit_predict(estimator, params: dict, X_train, Y_train, X_test, fit_params: dict) -> np.ndarray:
    from sklearn.base import clone

    model = clone(estimator)
    if params:
        model.set_params(**params)
    model.fit(X_train, Y_train, **fit_params)
    return np.asarray(model.predict(X_test)).reshape(_n_rows(X_test), -1)


def _n_rows(X) -> int:
    return X.shape[0]


def _as_fitted(Y: np.ndarray, block: int) -> np.ndarray:
    """What an analysis of one 1-D y is fitted on: that 1-D y."""
    return Y[:, 0] if Y.shape[1] == 1 and block == 1 else Y


def _fit_predict_blocks(estimator, params, X_train, Y_train, X_test, block, fit_params, error_score, where):
    """Predictions of every column, fitted together; when that fails, block by block, a failing block's
    columns NaN, as each analysis's own fit would fail alone. Returns (predictions, {block: error})."""
    try:
        return _fit_predict(estimator, params, X_train, _as_fitted(Y_train, block), X_test, fit_params), {}
    except Exception:
        if error_score == "raise":
            raise
    predictions = np.full((_n_rows(X_test), Y_train.shape[1]), np.nan)
    errors = {}
    for b in range(Y_train.shape[1] // block):
        cols = slice(b * block, (b + 1) * block)
        try:
            predictions[:, cols] = _fit_predict(estimator, params, X_train, _as_fitted(Y_train[:, cols], block),
                                                X_test, fit_params)
        except Exception:
            errors[b] = traceback.format_exc()
            warnings.warn(f"a fit failed ({where}, block {b}); its score is error_score={error_score}:\n{errors[b]}")
    return predictions, errors


def _candidate_predictions(estimator, candidates, X_train, Y_train, X_test, block, fit_params, error_score, where):
    """(candidate, predictions, {block: error}, fit seconds) of every candidate on one split: the fits they
    share made once (:mod:`mempamal.tasks.shared_fits`), each other one fitted on its own."""
    for c, predictions, seconds in shared_predictions(estimator, candidates, X_train, Y_train, X_test, fit_params):
        errors: dict = {}
        if predictions is None:
            start = time.perf_counter()
            predictions, errors = _fit_predict_blocks(estimator, candidates[c], X_train, Y_train, X_test, block,
                                                      fit_params, error_score, f"{where}candidate {c}")
            seconds += time.perf_counter() - start
        yield c, predictions, errors, seconds


def _score_blocks(block_scorers: dict, Y_test, predictions, block, X_test, score_params, errors, error_score):
    """{metric: (n_blocks,) scores}; a block whose fit or scoring failed gets error_score (scored alone,
    so that one block's bad column does not fail the others')."""
    out = {}
    for m, scorer in block_scorers.items():
        kwargs = score_params.get(m, {})
        try:
            scores = scorer(Y_test, predictions, block, X_test, kwargs)
        except Exception:
            if error_score == "raise":
                raise
            scores = np.empty(Y_test.shape[1] // block)
            for b in range(scores.size):
                cols = slice(b * block, (b + 1) * block)
                try:
                    scores[b] = scorer(Y_test[:, cols], predictions[:, cols], block, X_test, kwargs)[0]
                except Exception:
                    scores[b] = error_score
        for b in errors:
            scores[b] = error_score
        out[m] = scores
    return out


def _rows(A, indices):
    from ..experiment.folds import subset

    return subset(A, indices)


def search(estimator, candidates: list[dict], X, Y: np.ndarray, splits: list, scorers: dict, *, block: int = 1,
           error_score: Any = np.nan, fold_params: FoldParams = _no_params, where: str = ""
           ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Inner scores of every candidate on every split, per block: one fit per (split, candidate).

    Parameters
    ----------
    estimator : estimator
    candidates : list of dict
    X : array-like of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, k)
        k = n_blocks * block columns.
    splits : list of (train, test)
        Indices into X's rows.
    scorers : dict of str -> callable
    block : int
        Columns per analysis.

    Returns
    -------
    scores : dict of str -> ndarray of shape (n_blocks, n_candidates, n_splits)
    n_failed : ndarray of shape (n_blocks,)
        Failed fits per block.
    times : dict of str -> ndarray of shape (n_candidates, n_splits)
        "fit_time" and "score_time" of each fit, shared by the chunk's blocks.
    """
    block_scorers = {m: BlockScorer(s) for m, s in scorers.items()}
    n_blocks = Y.shape[1] // block
    tables = {m: np.empty((n_blocks, len(candidates), len(splits))) for m in scorers}
    times = {k: np.empty((len(candidates), len(splits))) for k in ("fit_time", "score_time")}
    n_failed = np.zeros(n_blocks, dtype=int)
    for i, (train, test) in enumerate(splits):
        X_train, X_test, Y_train, Y_test = _rows(X, train), _rows(X, test), Y[train], Y[test]
        fit_params, score_params = fold_params(train, test)
        for c, predictions, errors, seconds in _candidate_predictions(
                estimator, candidates, X_train, Y_train, X_test, block, fit_params, error_score,
                f"{where}inner {i}, "):
            times["fit_time"][c, i] = seconds
            start = time.perf_counter()
            n_failed[list(errors)] += 1
            for m, scores in _score_blocks(block_scorers, Y_test, predictions, block, X_test, score_params, errors,
                                           error_score).items():
                tables[m][:, c, i] = scores
            times["score_time"][c, i] = time.perf_counter() - start
    return tables, n_failed, times


def select(refit_scores: np.ndarray) -> np.ndarray:
    """The candidate GridSearchCV selects for each block, from (n_blocks, n_candidates, n_splits) scores:
    the best mean, the first on ties, NaN never winning unless all are NaN (then the first)."""
    means = np.ascontiguousarray(refit_scores).mean(axis=-1)  # as GridSearchCV's np.average(axis=1)
    return np.argmax(np.where(np.isnan(means), -np.inf, means), axis=1)


def refit_and_test(estimator, candidates: list[dict] | None, best: np.ndarray, X, Y: np.ndarray, train, test,
                   scorers: dict, *, block: int = 1, fold_params: FoldParams = _no_params
                   ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Refit each block's selected candidate on ``train`` (one fit per distinct candidate, on the columns
    that selected it) and test it on ``test``.

    Returns
    -------
    scores : dict of str -> ndarray of shape (n_blocks,)
    predictions : ndarray of shape (n_test, k)
    """
    X_train, X_test, Y_train, Y_test = _rows(X, train), _rows(X, test), Y[train], Y[test]
    fit_params, score_params = fold_params(train, test)
    selected = np.unique(best)
    columns_of = [(np.flatnonzero(best == c)[:, None] * block + np.arange(block)).ravel() for c in selected]
    settings = [candidates[c] for c in selected] if candidates else [{}]
    predictions = None
    for n, part, _ in shared_predictions(estimator, settings, X_train, Y_train, X_test, fit_params, columns_of):
        cols = columns_of[n]
        if part is None:  # as GridSearchCV's refit, a failure raises: there is no model to score
            part = _fit_predict(estimator, settings[n], X_train, _as_fitted(Y_train[:, cols], block), X_test,
                                fit_params)
        if predictions is None:
            predictions = np.empty((_n_rows(X_test), Y.shape[1]), dtype=part.dtype)
        predictions[:, cols] = part
    block_scorers = {m: BlockScorer(s) for m, s in scorers.items()}
    scores = {m: s(Y_test, predictions, block, X_test, score_params.get(m, {})) for m, s in block_scorers.items()}
    return scores, predictions


class FoldResult(NamedTuple):
    """One outer fold of every analysis of a chunk."""

    best: np.ndarray                  # (n_blocks,) selected candidate (zeros without a grid)
    inner: dict[str, np.ndarray]      # metric -> (n_blocks, n_candidates, n_inner); empty without a grid
    n_failed: np.ndarray              # (n_blocks,) failed inner fits
    test: dict[str, np.ndarray]       # metric -> (n_blocks,)
    predictions: np.ndarray           # (n_test, k)
    times: dict[str, Any]             # inner "fit_time"/"score_time" (n_candidates, n_inner); "refit_time" (s)


def outer_fold(estimator, candidates: list[dict] | None, X, Y: np.ndarray, train, test, inner_splits: list,
               scorers: dict, refit: str, *, block: int = 1, error_score: Any = np.nan,
               fold_params: Callable[[str, Any, Any], tuple] | None = None, where: str = "") -> FoldResult:
    """Nested cross-validation of one outer fold for every block of Y, as ``cross_validate(GridSearchCV(...))``
    computes it for each analysis alone.

    ``fold_params(stage, train, test)``: the per-sample params of those rows for "inner" or "outer" fits.
    """
    n_blocks = Y.shape[1] // block
    inner_params = (lambda tr, te: fold_params("inner", tr, te)) if fold_params else _no_params
    outer_params = (lambda tr, te: fold_params("outer", tr, te)) if fold_params else _no_params
    inner: dict[str, np.ndarray] = {}
    times: dict[str, Any] = {}
    n_failed = np.zeros(n_blocks, dtype=int)
    best = np.zeros(n_blocks, dtype=int)
    if candidates is not None:
        inner, n_failed, times = search(estimator, candidates, X, Y, inner_splits, scorers, block=block,
                                 error_score=error_score, fold_params=inner_params, where=where)
        n_fits = len(candidates) * len(inner_splits)
        if (n_failed == n_fits).any():
            b = int(np.flatnonzero(n_failed == n_fits)[0])
            raise ValueError(f"All the {n_fits} fits failed on {where}block {b}; see the warnings for their errors")
        best = select(inner[refit])
    start = time.perf_counter()
    test_scores, predictions = refit_and_test(estimator, candidates, best, X, Y, train, test, scorers, block=block,
                                              fold_params=outer_params)
    times["refit_time"] = time.perf_counter() - start
    return FoldResult(best, inner, n_failed, test_scores, predictions, times)


def stack_y(y: np.ndarray, columns: list[tuple[int | None, int]], indices: np.ndarray | None) -> np.ndarray:
    """The Y of a chunk: for each (target, permutation) the column ``target`` of y (None: every column of y,
    a block) with its rows permuted by ``indices[permutation]`` (-1: not permuted)."""
    parts = []
    for target, p in columns:
        col = y if target is None else y[:, target]
        if p >= 0:
            col = col[indices[p]]
        parts.append(col.reshape(col.shape[0], -1))
    return np.concatenate(parts, axis=1)
