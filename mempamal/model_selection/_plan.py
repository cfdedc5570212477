"""From a scikit-learn call to an :class:`~mempamal.Experiment`.

A ``GridSearchCV`` or ``RandomizedSearchCV`` given as the estimator becomes the nested
analysis (its estimator, candidates, inner cv, scoring, refit, error_score); anything
else is a plain cross-validation. The outer ``scoring`` of the call and the search's own
are merged into one set of metrics, since an Experiment scores both loops with the same
scorers: the search's refit metric selects, the call's metrics are the ones returned.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

from ..experiment import Experiment
from ..experiment.encoding import EncodingError, encode
from ..experiment.scoring import describe_scoring


@dataclass
class Plan:
    """The Experiment of a call, and where scikit-learn's result keys come from.

    ``metrics`` maps a suffix of scikit-learn's keys (``test_<suffix>``; ``score`` for a
    single metric) to the metric name in :class:`~mempamal.results.Results`.
    """

    experiment: Experiment
    metrics: dict[str, str]
    search: Any  # the GridSearchCV / RandomizedSearchCV given, or None


def search_of(estimator) -> Any:
    """The estimator when it is exactly a GridSearchCV or RandomizedSearchCV (a subclass may change
    what fit does, so it stays a plain estimator), else None."""
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    return estimator if type(estimator) in (GridSearchCV, RandomizedSearchCV) else None


def make_plan(estimator, *, cv, scoring, error_score=float("nan"), n_permutations: int = 0,
              permutation_random_state=0) -> Plan:
    """The Experiment equal to ``cross_validate(estimator, cv=cv, scoring=scoring, ...)``
    (with permutations: to ``permutation_test_score``)."""
    search = search_of(estimator)
    common = dict(cv=5 if cv is None else cv, n_permutations=n_permutations,
                  permutation_random_state=_seed(permutation_random_state, "random_state"))
    if search is None:
        outer = _as_dict(scoring)
        refit = True if _single(scoring) else next(iter(outer))
        exp = Experiment(estimator, scoring=scoring, refit=refit, error_score=error_score, **common)
        return Plan(exp, _suffixes(scoring, outer), None)
    name = type(search).__name__
    if not (search.refit is True or isinstance(search.refit, str)):
        raise ValueError(f"{name}(refit={search.refit!r}): mempamal refits the candidate with the best mean "
                         "inner score of one metric; give refit=True or a metric name")
    merged, refit, suffixes = merge_scoring(scoring, search.scoring, search.refit)
    kwargs = dict(inner_cv=5 if search.cv is None else search.cv, scoring=merged, refit=refit,
                  error_score=search.error_score)
    if hasattr(search, "param_grid"):
        kwargs["param_grid"] = search.param_grid
    else:
        kwargs.update(param_distributions=search.param_distributions, n_iter=search.n_iter,
                      random_state=_seed(search.random_state, f"{name}(random_state=...)"))
    return Plan(Experiment(search.estimator, **kwargs, **common), suffixes, search)


def merge_scoring(outer, inner, refit) -> tuple[Any, str, dict[str, str]]:
    """One scoring for both loops: (scoring, the metric that selects, suffix -> metric).

    ``outer`` is the call's scoring (None: the search's ``score``, i.e. its refit metric),
    ``inner`` and ``refit`` the search's. When they differ, the metrics of both are scored
    (an inner metric named like a different outer one is renamed ``inner_<name>``).
    """
    inner_refit = describe_scoring(inner, refit)[1]  # validates refit against the search's scoring
    if outer is None:
        return inner, inner_refit, {"score": inner_refit}
    outer_dict = _as_dict(outer)
    suffixes = _suffixes(outer, outer_dict)
    if outer is inner or (_single(outer) == _single(inner) and _same(outer_dict, _as_dict(inner))):
        return inner, inner_refit, suffixes
    merged, renamed = dict(outer_dict), {}
    for name, spec in _as_dict(inner).items():
        if name in merged and _same_spec(merged[name], spec):
            continue
        new = name
        while new in merged:
            new = f"inner_{new}"
        merged[new] = spec
        renamed[name] = new
    return merged, renamed.get(inner_refit, inner_refit), suffixes


def _single(scoring) -> bool:
    """Whether scikit-learn returns one ``test_score`` (None, a name or a callable)."""
    return scoring is None or isinstance(scoring, str) or callable(scoring)


def _as_dict(scoring) -> dict[str, Any]:
    """{metric name: scorer spec} as mempamal names metrics (None: the estimator's score)."""
    if scoring is None:
        return {"score": None}
    if isinstance(scoring, str):
        return {scoring: scoring}
    if callable(scoring):
        return {"score": scoring}
    if isinstance(scoring, dict):
        return dict(scoring)
    if isinstance(scoring, (list, tuple, set, frozenset)):
        return {s: s for s in scoring}
    raise ValueError(f"scoring: expected None, a scorer name, a callable, a list or a dict, "
                     f"got {type(scoring).__name__}")


def _suffixes(scoring, as_dict: dict) -> dict[str, str]:
    if _single(scoring):
        return {"score": next(iter(as_dict))}
    return {name: name for name in as_dict}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(_same_spec(a[k], b[k]) for k in a)


def _same_spec(a, b) -> bool:
    """Two scorers are the same when they are stored the same (two equal make_scorer calls are)."""
    if a is b:
        return True
    try:
        return encode(a) == encode(b)
    except EncodingError:
        return False


def _seed(value, name: str):
    """An int or None: a RandomState's state cannot be stored (nor be reproduced by a resumed run)."""
    if value is None or (isinstance(value, numbers.Integral) and not isinstance(value, bool)):
        return value
    raise ValueError(f"{name}: expected an int or None, got {value!r}; mempamal draws at write() and stores "
                     "the seed (a RandomState cannot be stored): give an int for reproducible, resumable runs")


def split_groups(groups, params: dict | None, search, permuting: bool) -> tuple[Any, dict | None]:
    """(groups, params without 'groups'): mempamal gives ``groups`` to the splitters of both loops, which
    scikit-learn does when the search receives them too, as ``params={'groups': groups}``."""
    if not params or "groups" not in params:
        return groups, params
    import numpy as np

    rest = {k: v for k, v in params.items() if k != "groups"} or None
    given = params["groups"]
    if groups is not None:
        if not np.array_equal(np.asarray(groups), np.asarray(given)):
            raise ValueError("params['groups'] and groups differ: mempamal splits both loops with the same "
                             "groups; give the same labels (or only groups=)")
        return groups, rest
    if search is None:
        raise ValueError("params['groups']: without a GridSearchCV or RandomizedSearchCV there is no inner "
                         "loop to receive them; give the labels as groups= (they go to cv.split)")
    if permuting:
        raise ValueError("params['groups'] without groups=: give the labels as groups= (permutation_test_score "
                         "then permutes within groups, as mempamal does whenever there are groups)")
    return given, rest
