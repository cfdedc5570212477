"""Per-sample parameters (``params``): where each goes, as scikit-learn sends it.

``cross_validate(GridSearchCV(estimator, ...), X, y, params=params)`` sends
``params`` to the estimator's ``fit`` and, depending on scikit-learn's
configuration, to the scorers:

- without metadata routing, everything goes to ``fit``; ``sample_weight``
  also goes to the inner scorers that accept it (GridSearchCV does this), not
  to the outer scorers (cross_validate does not);
- with ``sklearn.set_config(enable_metadata_routing=True)``, each entry goes
  where the estimator's and the scorers' requests (``set_fit_request``,
  ``set_score_request``) send it.

:func:`route` works this out once, at :meth:`Experiment.write`, with
scikit-learn's own routing code run on stand-ins for the values, and stores
it in experiment.json as ``{callee argument: params key}`` per place; the
tasks only index the stored arrays per fold and pass them on. A params entry
nobody requests fails there, with scikit-learn's message.
"""
from __future__ import annotations

from typing import Any

from ..workdir.document import ExperimentDoc
from .folds import subset


class _Key:
    """Stands in for a params value while routing: tells which key ended where."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __repr__(self) -> str:
        return f"params[{self.key!r}]"


def routing_enabled() -> bool:
    import sklearn

    return bool(sklearn.get_config().get("enable_metadata_routing", False))


def route(estimator, *, scoring, refit, error_score, cv, inner_cv, with_search: bool, names: list[str],
          metrics: list[str]) -> dict:
    """Where each of ``names`` goes: ``{"metadata_routing": bool, "fit": {arg: key},
    "inner_score": {metric: {arg: key}}, "outer_score": {metric: {arg: key}}}``."""
    from sklearn.metrics import check_scoring
    from sklearn.model_selection import GridSearchCV, check_cv
    from sklearn.base import is_classifier
    from sklearn.utils.metadata_routing import MetadataRouter, MethodMapping, process_routing

    stand_ins = {name: _Key(name) for name in names}
    enabled = routing_enabled()
    raise_exc = error_score == "raise"
    doc: dict[str, Any] = {"metadata_routing": enabled}
    inner = estimator
    if with_search:
        inner = GridSearchCV(estimator, {}, scoring=scoring, refit=refit, cv=inner_cv, error_score=error_score)
        routed = inner._get_routed_params_for_fit(stand_ins)
        doc["fit"] = _keys(routed.estimator.fit)
        doc["inner_score"] = _per_metric(inner._get_scorers()[0], routed.scorer.score, enabled, metrics)
    outer_scorer = check_scoring(inner, scoring=scoring, raise_exc=raise_exc)
    if enabled:
        router = (MetadataRouter(owner="cross_validate")
                  .add(splitter=check_cv(cv, classifier=is_classifier(estimator)),
                       method_mapping=MethodMapping().add(caller="fit", callee="split"))
                  .add(estimator=inner, method_mapping=MethodMapping().add(caller="fit", callee="fit"))
                  .add(scorer=outer_scorer, method_mapping=MethodMapping().add(caller="fit", callee="score")))
        routed = process_routing(router, "fit", **stand_ins)
        if not with_search:
            doc["fit"] = _keys(routed.estimator.fit)
        doc["outer_score"] = _per_metric(outer_scorer, routed.scorer.score, enabled, metrics)
    else:
        if not with_search:
            doc["fit"] = _keys(stand_ins)
        doc["outer_score"] = _per_metric(outer_scorer, {}, enabled, metrics)
        for arg, key in doc["fit"].items():  # with routing, scikit-learn refuses what nobody requests
            _check_fit_accepts(estimator, arg, key)
    return doc


def _check_fit_accepts(estimator, arg: str, key: str) -> None:
    """Refuse at write() a fit parameter that the estimator's fit (or a Pipeline's step) does not take,
    which every task would otherwise fail on, with the name to write instead."""
    import difflib
    import inspect

    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline):  # without routing: step__name, to that step
        steps = {name: step for name, step in estimator.steps if step not in (None, "passthrough")}
        step, sep, rest = arg.partition("__")
        if not sep or step not in steps:
            raise ValueError(
                f"params[{key!r}]: a Pipeline takes a fit parameter as '<step>__<name>' (its steps: "
                f"{list(steps)}), e.g. params={{'{list(steps)[-1]}__{rest or arg}': ...}}; or enable scikit-learn's "
                "metadata routing (sklearn.set_config(enable_metadata_routing=True)) before Experiment.write")
        return _check_fit_accepts(steps[step], rest, key)
    parameters = inspect.signature(estimator.fit).parameters
    if arg in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    takes = [p for p in parameters if p not in ("X", "y", "Y")]
    close = difflib.get_close_matches(arg, takes, n=1)
    raise ValueError(f"params[{key!r}]: {type(estimator).__name__}.fit() takes no {arg!r} (it takes "
                     f"{', '.join(takes) or 'X and y only'})" + (f"; did you mean {close[0]!r}?" if close else ""))


def _keys(routed: dict) -> dict[str, str]:
    return {arg: value.key for arg, value in routed.items() if isinstance(value, _Key)}


def _per_metric(scorer, kwargs: dict, enabled: bool, metrics: list[str]) -> dict[str, dict[str, str]]:
    """What each metric's scorer receives of ``kwargs`` (the keywords its caller passes the scorer)."""
    from sklearn.metrics._scorer import _MultimetricScorer
    from sklearn.utils.metadata_routing import process_routing

    if not isinstance(scorer, _MultimetricScorer):
        (only,) = metrics  # a single metric gets everything its caller passes
        return {only: _keys(kwargs)}
    if enabled:
        routed = process_routing(scorer, "score", **kwargs)
        return {name: _keys(routed.get(name).score) for name in scorer._scorers}
    # As _MultimetricScorer.__call__ without routing: sample_weight only to the scorers that take it.
    common = {arg: value for arg, value in kwargs.items() if arg != "sample_weight"}
    return {name: _keys({**common, **({"sample_weight": kwargs["sample_weight"]}
                                       if "sample_weight" in kwargs and s._accept_sample_weight() else {})})
            for name, s in scorer._scorers.items()}


def select(values: dict[str, Any], routing: dict[str, str], indices) -> dict[str, Any]:
    """The keyword arguments of one call: ``routing``'s params, rows ``indices`` of each."""
    return {arg: subset(values[key], indices) for arg, key in routing.items()}


def fold_params(routing: dict | None, values: dict[str, Any], stage: str, train, test
                ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The fit keywords (rows ``train``) and each metric's score keywords (rows ``test``) of a fit
    of ``stage`` ("inner": a map task's fit; "outer": a refit and its outer test).

    ``routing`` is the document's ``params`` (where each goes), ``values`` the per-sample
    params by name, read once by the task (they are indexed here, split by split).
    """
    if not routing:
        return {}, {}
    scores = routing["inner_score" if stage == "inner" else "outer_score"]
    return select(values, routing["fit"], train), {m: select(values, r, test) for m, r in scores.items()}


def apply_config(doc: ExperimentDoc) -> None:
    """Set scikit-learn's metadata routing as it was at write() when the experiment has params
    (without params, routing changes nothing a task does)."""
    if doc.params:
        import sklearn

        sklearn.set_config(enable_metadata_routing=doc.params["metadata_routing"])
