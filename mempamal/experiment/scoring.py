"""Scoring as scikit-learn understands it, stored in experiment.json.

``scoring`` is described as ``{metric name: scorer}`` where a scorer is a
scikit-learn scorer name, an encoded callable, or ``None`` for the
estimator's own ``score`` method. Metric names follow cross_validate: the
scorer names, or "score" for ``None`` and a single callable.
"""
from __future__ import annotations

from typing import Any, Callable

from .encoding import decode, encode


def describe_scoring(scoring: Any, refit: Any) -> tuple[dict[str, Any], str]:
    """Validate ``scoring`` and ``refit``; return (scorers to store, metric that selects)."""
    from sklearn.metrics import get_scorer_names

    names = set(get_scorer_names())

    def check_name(name: str) -> str:
        if name not in names:
            import difflib

            close = difflib.get_close_matches(name, sorted(names), n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(
                f"scoring: {name!r} is not a scikit-learn scorer name{hint} "
                "(sklearn.metrics.get_scorer_names() lists them)"
            )
        return name

    if scoring is None:
        scorers = {"score": None}
    elif isinstance(scoring, str):
        scorers = {scoring: check_name(scoring)}
    elif callable(scoring):
        scorers = {"score": encode(scoring, path="scoring")}
    elif isinstance(scoring, (list, tuple, set, frozenset)):
        if not scoring or not all(isinstance(s, str) for s in scoring):
            raise ValueError("scoring: a list of metrics must be a non-empty list of scorer names")
        if len(set(scoring)) != len(scoring):
            raise ValueError(f"scoring: {list(scoring)} names a metric twice")
        scorers = {s: check_name(s) for s in scoring}
    elif isinstance(scoring, dict):
        if not scoring:
            raise ValueError("scoring: the dict of metrics is empty")
        scorers = {}
        for name, scorer in scoring.items():
            if not isinstance(name, str):
                raise ValueError(f"scoring: metric names must be strings, got {name!r}")
            scorers[name] = check_name(scorer) if isinstance(scorer, str) else encode(scorer, path=f"scoring[{name!r}]")
    else:
        raise ValueError(
            f"scoring: expected None, a scorer name, a callable, a list or a dict, got {type(scoring).__name__}"
        )

    if len(scorers) == 1:
        (only,) = scorers
        if refit is True or refit == only:
            return scorers, only
    elif isinstance(refit, str) and refit in scorers:
        return scorers, refit
    if refit is False or refit is None:
        raise ValueError(
            "refit=False: mempamal refits the selected model on each outer training set to score it "
            "on the outer test set, as cross_validate(GridSearchCV(...)) does; use refit=True or a metric name"
        )
    raise ValueError(
        f"refit={refit!r}: with several metrics, refit must name the metric that selects the "
        f"parameters, one of {sorted(scorers)}"
    )


def build_scorers(described: dict[str, Any], allowed_packages=None) -> dict[str, Callable]:
    """Callables ``scorer(estimator, X, y) -> float`` for each metric of :func:`describe_scoring`."""
    from sklearn.metrics import get_scorer

    scorers = {}
    for name, scorer in described.items():
        if scorer is None:
            scorers[name] = _estimator_score
        elif isinstance(scorer, str):
            scorers[name] = get_scorer(scorer)
        else:
            scorers[name] = decode(scorer, allowed_packages)
    return scorers


def _estimator_score(estimator, X, y, **kwargs) -> float:
    return estimator.score(X, y, **kwargs)


def failed_scores(scorers: dict, error_score: Any, fit_time: float, error: str, score_time: float = 0.0):
    """What a fit or a scoring that raised gets, as in scikit-learn's _fit_and_score."""
    return {m: error_score for m in scorers}, fit_time, score_time, error


def score_fitted(estimator, X_test, y_test, scorers: dict, error_score: Any, fit_time: float,
                 score_params: dict | None = None):
    """Score a fitted estimator with each scorer, as scikit-learn's _fit_and_score does.

    ``score_params`` gives each metric's keyword arguments (per-sample params routed to it).
    Returns (scores per metric, fit time, score time, error traceback or "");
    a scorer that raises gives ``error_score`` unless it is "raise".
    """
    import time
    import traceback

    start = time.perf_counter()
    try:
        score_params = score_params or {}
        scores = {m: scorer(estimator, X_test, y_test, **score_params.get(m, {})) for m, scorer in scorers.items()}
    except Exception:
        if error_score == "raise":
            raise
        return failed_scores(scorers, error_score, fit_time, traceback.format_exc(),
                             time.perf_counter() - start)
    return scores, fit_time, time.perf_counter() - start, ""
