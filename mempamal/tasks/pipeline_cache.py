"""Pipeline prefix reuse: fit a Pipeline's leading steps once for the grid points that share them.

When the grid points of a map task differ only in a Pipeline's later steps
(``{"svc__C": [...]}`` after a scaler), every grid point would refit the same
scaler on the same inner training set. Here the candidates are visited
grouped by the parameters of their leading steps; a leading step is fitted
once per distinct setting and its fitted object and transformed training data
are reused by the next candidates with the same setting (as dask-ml's
candidate deduplication does). Only the current chain of prefixes is kept, so
memory stays that of one Pipeline fit.

The results are those of ``Pipeline.fit``, bit for bit: the same
``fit_transform`` calls on the same data, then the final step's ``fit`` on
their output; scoring goes through the whole Pipeline as usual. A step is
never shared when it could fit differently twice: a ``random_state=None``
anywhere in its parameters, a Pipeline with ``memory`` or ``transform_input``,
or a subclass of Pipeline; nothing is shared when a step may write into its
input (``copy=False`` or ``copy_X=False``). The ``fit_time`` of a grid point then counts only
the steps it fitted itself.
"""
from __future__ import annotations

import json
import re
import time
import traceback
from typing import Any

from ..experiment.scoring import failed_scores, score_fitted


def reuse_plan(estimator, encoded_candidates: list[dict]) -> list[list[str]] | None:
    """Per candidate, the keys of its leading (transformer) steps, or None when nothing is shared.

    Key ``j`` of a candidate identifies the setting of steps ``0..j``: two
    candidates with the same key ``j`` get identical fitted steps ``0..j``.
    """
    from sklearn.pipeline import Pipeline

    if type(estimator) is not Pipeline or len(encoded_candidates) < 2:
        return None
    if estimator.memory is not None or getattr(estimator, "transform_input", None) is not None:
        return None
    if _writes_in_place(estimator, encoded_candidates):
        return None
    names = [name for name, _ in estimator.steps]
    n_prefix = len(names) - 1
    if n_prefix < 1:
        return None
    plan = []
    for params in encoded_candidates:
        by_step: list[dict] = [{} for _ in names]
        for key, value in params.items():
            step = key.split("__", 1)[0]
            if step not in names:
                return None  # a parameter of the Pipeline itself (steps, verbose...): nothing is shared
            by_step[names.index(step)][key] = value
        keys, acc = [], []
        for j in range(n_prefix):
            acc.append(by_step[j])
            keys.append(json.dumps(acc, sort_keys=True))
        plan.append(keys)
    if len({keys[0] for keys in plan}) == len(plan):
        return None  # every candidate has its own first step: no fit to save
    return plan


_NO_COPY = re.compile(r'"(\w+__)?copy(_X)?": *false')


def _writes_in_place(estimator, encoded_candidates: list[dict]) -> bool:
    """Whether a step may overwrite its input (copy=False): a shared output must stay as it was.

    (Marking shared arrays read-only instead would make such steps copy them, but also make every
    estimator that asks for a writeable input copy it: a hidden copy of the data for all.)
    """
    if any(k.rsplit("__", 1)[-1] in ("copy", "copy_X") and v is False
           for k, v in estimator.get_params(deep=True).items()):
        return True
    return any(_NO_COPY.search(json.dumps(params)) for params in encoded_candidates)


def _deterministic(step) -> bool:
    """False when fitting ``step`` twice may give different results (an unseeded random state)."""
    if step is None or isinstance(step, str):
        return True
    params = step.get_params(deep=True) if hasattr(step, "get_params") else {}
    return not any(k.split("__")[-1] == "random_state" and v is None for k, v in params.items())


def fit_and_score_shared(estimator, candidates: list[dict], plan: list[list[str]], X_train, y_train, X_test,
                         y_test, scorers: dict, error_score) -> list[tuple[dict, float, float, str]]:
    """Fit and score every candidate, reusing fitted leading steps as ``plan`` allows.

    Returns, in the candidates' order, what :func:`mempamal.tasks.fit.fit_and_score` returns
    for each: (scores per metric, fit time, score time, error message or "").
    """
    from sklearn.base import clone

    n_prefix = len(plan[0])
    order = sorted(range(len(candidates)), key=lambda n: plan[n])
    results: list[Any] = [None] * len(candidates)
    # chain[j]: (key, fitted step j, its output on the training set, error traceback or "")
    chain: list[tuple[str, Any, Any, str]] = []
    for n in order:
        pipe = clone(estimator)
        start = time.perf_counter()
        try:
            pipe.set_params(**candidates[n])
            pipe._validate_steps()
            Xt, error, shared = X_train, "", True
            for j in range(n_prefix):
                name, step = pipe.steps[j]
                shared = shared and _deterministic(step)
                if shared and j < len(chain) and chain[j][0] == plan[n][j]:
                    _, fitted, Xt, error = chain[j]
                    pipe.steps[j] = (name, fitted)
                else:
                    if shared:
                        del chain[j:]
                    if step is not None and step != "passthrough":
                        try:
                            Xt = _fit_transform(step, Xt, y_train)
                        except Exception:
                            if error_score == "raise":
                                raise
                            error = traceback.format_exc()
                    if shared:
                        chain.append((plan[n][j], step, Xt, error))
                if error:
                    break
            if error:
                results[n] = failed_scores(scorers, error_score, time.perf_counter() - start, error)
                continue
            final = pipe.steps[-1][1]
            if final is not None and final != "passthrough":
                final.fit(Xt, y_train)
        except Exception:
            if error_score == "raise":
                raise
            results[n] = failed_scores(scorers, error_score, time.perf_counter() - start, traceback.format_exc())
            continue
        results[n] = score_fitted(pipe, X_test, y_test, scorers, error_score, time.perf_counter() - start)
    return results


def _fit_transform(step, X, y):
    """What Pipeline.fit does with an intermediate step (sklearn.pipeline._fit_transform_one)."""
    if hasattr(step, "fit_transform"):
        return step.fit_transform(X, y)
    return step.fit(X, y).transform(X)

