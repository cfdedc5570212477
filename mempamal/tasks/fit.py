"""The fits of the tasks: fit and score candidates on a split (a Pipeline's shared leading steps
fitted once), select the best as GridSearchCV does, refit it and test it.

What scikit-learn's ``_fit_and_score``, ``GridSearchCV`` and ``cross_validate`` do,
one split at a time; the stages (:mod:`mempamal.tasks.stages`) say which splits.
"""
from __future__ import annotations

import time
import traceback
import warnings
from typing import Any, Iterable

import numpy as np

from ..experiment.encoding import encode
from ..experiment.folds import subset
from ..experiment.scoring import failed_scores, score_fitted
from ..workdir.data import as_array
from .context import Context
from .pipeline_cache import fit_and_score_shared, reuse_plan


def fit_and_score(estimator, params, X_train, y_train, X_test, y_test, scorers, error_score, fit_params=None,
                  score_params=None) -> tuple[dict, float, float, str]:
    """Clone, set params, fit and score, as scikit-learn's _fit_and_score does.

    Returns (scores per metric, fit time, score time, error message or "").
    """
    from sklearn.base import clone

    estimator = clone(estimator)
    if params:
        estimator.set_params(**params)
    start = time.perf_counter()
    try:
        estimator.fit(X_train, y_train, **(fit_params or {}))
    except Exception:
        if error_score == "raise":
            raise
        return failed_scores(scorers, error_score, time.perf_counter() - start, traceback.format_exc())
    return score_fitted(estimator, X_test, y_test, scorers, error_score, time.perf_counter() - start,
                        score_params)


def _fit_and_score_all(ctx: Context, estimator, candidates: list[dict], start: int, X_train, y_train, X_test,
                       y_test, scorers, error_score, fit_params=None, score_params=None) -> Iterable[tuple]:
    """The results of fit_and_score for each candidate, with a Pipeline's shared leading steps fitted once."""
    # Fit params may be routed to any step: prefix reuse (which fits steps itself) is off with them.
    plan = None if fit_params or score_params else reuse_plan(
        estimator, ctx.doc.candidates[start:start + len(candidates)])
    if plan is not None:
        return fit_and_score_shared(estimator, candidates, plan, X_train, y_train, X_test, y_test, scorers,
                                    error_score)
    return (fit_and_score(estimator, params, X_train, y_train, X_test, y_test, scorers, error_score,
                          fit_params, score_params) for params in candidates)


def score_candidates(ctx: Context, estimator, candidates: list[dict], start: int, X, y, train, test, scorers,
                     error_score, where: str) -> tuple[dict[str, list], list, list, list[str]]:
    """Fit and score candidates ``start...`` on one inner split: scores per metric (lists), fit and
    score times, fit errors ("" for none), each failed fit warned about as GridSearchCV does."""
    X_train, y_train, X_test, y_test = subset(X, train), subset(y, train), subset(X, test), subset(y, test)
    fit_params, score_params = ctx.fold_params("inner", train, test)
    scores: dict[str, list] = {m: [] for m in scorers}
    fit_times, score_times, errors = [], [], []
    for s, fit_time, score_time, error in _fit_and_score_all(
            ctx, estimator, candidates, start, X_train, y_train, X_test, y_test, scorers, error_score,
            fit_params, score_params):
        for m in scorers:
            scores[m].append(s[m])
        fit_times.append(fit_time)
        score_times.append(score_time)
        if error:
            warnings.warn(f"a fit failed ({where}, candidate {start + len(fit_times) - 1}); its score is "
                          f"error_score={error_score}:\n{error}")
        errors.append(error)
    return scores, fit_times, score_times, errors


def select(mean_scores: np.ndarray) -> int:
    """The index GridSearchCV picks: best mean, first on ties, NaN never wins unless all are NaN."""
    if np.isnan(mean_scores).all():
        return 0
    return int(np.argmax(np.where(np.isnan(mean_scores), -np.inf, mean_scores)))


def best(refit_scores: np.ndarray, errors: list[str], where: str) -> int:
    """The candidate GridSearchCV refits, from the (n_candidates, n_inner) scores of the refit metric."""
    if errors and len(errors) == refit_scores.size:
        raise ValueError(f"All the {refit_scores.size} fits failed on {where}; the first error:\n{errors[0]}")
    return select(refit_scores.mean(axis=1))


def refit_and_test(ctx: Context, estimator, params: dict, X, y, train, test, scorers: dict
                   ) -> tuple[Any, dict[str, float], float, float]:
    """Refit a clone with ``params`` on ``train``, score it on ``test``, each with the per-sample params
    of its rows: (model, scores, fit time, score time)."""
    from sklearn.base import clone

    X_test, y_test = subset(X, test), subset(y, test)
    fit_params, score_params = ctx.fold_params("outer", train, test)
    model = clone(estimator)
    if params:
        model.set_params(**params)
    start = time.perf_counter()
    model.fit(subset(X, train), subset(y, train), **fit_params)
    fit_time = time.perf_counter() - start
    start = time.perf_counter()
    scores = {m: float(s(model, X_test, y_test, **score_params.get(m, {}))) for m, s in scorers.items()}
    return model, scores, fit_time, time.perf_counter() - start


def storable(predictions) -> np.ndarray:
    """Predictions as an array .npz stores without pickle: labels of an object array (strings, from
    string or categorical y) become a str array, with the same values."""
    predictions = np.asarray(predictions)
    if predictions.dtype == object:
        predictions = as_array(predictions, "predictions")
    return predictions


def encode_scores(scores: dict[str, float]) -> dict[str, Any]:
    """Scores may be NaN, which JSON cannot say: encode them."""
    return {m: encode(v) for m, v in scores.items()}
