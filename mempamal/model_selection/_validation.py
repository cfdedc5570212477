"""scikit-learn's cross_validate, cross_val_score, cross_val_predict and permutation_test_score,
computed by mempamal: same signatures, same return values, plus a back-end and a resumable workdir."""
from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from ..backends import get_backend
from ..experiment.compile import Compiled
from ..workdir.folds import Folds
from ..experiment.store import store
from ..results import Results, load_results
from ..running import run
from ._plan import Plan, make_plan, split_groups
from .cache import cached_workdir, compile_call

_DEFAULT_PRE_DISPATCH = "2*n_jobs"


def cross_validate(estimator, X, y=None, *, groups=None, scoring=None, cv=None, n_jobs=None, verbose=0,
                   params=None, pre_dispatch=_DEFAULT_PRE_DISPATCH, return_train_score=False,
                   return_estimator=False, return_indices=False, error_score=np.nan, backend: str = "local",
                   progress: bool = True, workdir: str | os.PathLike | None = None,
                   **backend_options) -> dict[str, Any]:
    """Evaluate metric(s) by cross-validation, as :func:`sklearn.model_selection.cross_validate`.

    A ``GridSearchCV`` or ``RandomizedSearchCV`` estimator is a nested cross-validation whose
    inner fits, refits and tests are mempamal's tasks, run by ``backend``; the returned dict
    equals scikit-learn's (``test_<metric>``, ``fit_time``, ``score_time``, ``indices``).

    Parameters
    ----------
    estimator, X, y, groups, scoring, cv, params, error_score
        As in scikit-learn. ``groups`` also go to the inner splitter (as if
        ``params={"groups": groups}`` were given). A search's own ``n_jobs``,
        ``pre_dispatch``, ``verbose`` and ``return_train_score`` are not used: its fits are tasks.
    n_jobs : int, default=None
        The back-end's tasks at once (its ``n_jobs``); None: the back-end's default.
    verbose : int, default=0
        0: nothing but the progress bar; 1: also a line naming the workdir and what the run did.
    pre_dispatch : "2*n_jobs"
        Only the default: the back-end dispatches the tasks.
    return_train_score : False
        Training sets are not scored: True is refused.
    return_estimator : False
        Fitted estimators are never pickled nor returned: True is refused (the selected
        parameters of each fold are in ``mempamal.load_results(workdir).best_params``).
    return_indices : bool, default=False
        Also return the train and test indices of each split, as scikit-learn does.
    backend : str, default="local"
        The back-end running the tasks (see :func:`mempamal.run`).
    progress : bool, default=True
        Show a progress bar while tasks run.
    workdir : path, default=None
        Where the experiment is written; default: a directory of the cache named by the
        experiment and the data (see :func:`cache_dir`), so that the same call resumes an
        interrupted run and returns a finished one at once.
    **backend_options
        The back-end's other options (``threads_per_task``, ``scheduler_address``...).

    Returns
    -------
    scores : dict of str to ndarray
        ``fit_time`` (the outer fit: for a search, its inner fits and scorings plus the
        refit), ``score_time``, ``test_score`` or ``test_<name>`` per metric, and
        ``indices`` with ``return_indices``.

    See Also
    --------
    cross_val_score : One metric's scores as an array.
    permutation_test_score : Is the score better than chance?
    mempamal.Experiment : The same nested analysis, written to a workdir of your choice.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import GridSearchCV
    >>> from mempamal.model_selection import cross_validate
    >>> X, y = load_iris(return_X_y=True)
    >>> search = GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3)
    >>> scores = cross_validate(search, X, y, cv=3, scoring=["accuracy", "f1_macro"], n_jobs=2,
    ...                         workdir="runs/nested")
    >>> sorted(scores)
    ['fit_time', 'score_time', 'test_accuracy', 'test_f1_macro']
    >>> scores["test_accuracy"].round(2)
    array([0.98, 0.96, 0.98])
    """
    _refuse(return_estimator=return_estimator, return_train_score=return_train_score)
    return _cross_validate("cross_validate", estimator, X, y, groups=groups, scoring=scoring, cv=cv,
                           error_score=error_score, params=params, return_indices=return_indices,
                           run_options=dict(n_jobs=n_jobs, verbose=verbose, pre_dispatch=pre_dispatch,
                                            backend=backend, progress=progress, workdir=workdir,
                                            options=backend_options))


def cross_val_score(estimator, X, y=None, *, groups=None, scoring=None, cv=None, n_jobs=None, verbose=0,
                    params=None, pre_dispatch=_DEFAULT_PRE_DISPATCH, error_score=np.nan, backend: str = "local",
                    progress: bool = True, workdir: str | os.PathLike | None = None,
                    **backend_options) -> np.ndarray:
    """The test score of each outer fold, as :func:`sklearn.model_selection.cross_val_score`.

    Parameters
    ----------
    estimator, X, y, groups, cv, params
        As in :func:`cross_validate`.
    scoring : str, callable or None, default=None
        One metric (a name, a scorer or None: the estimator's ``score``).
    error_score : 'raise' or float, default=np.nan
        As in scikit-learn, for the inner fits of a search.
    n_jobs, verbose, pre_dispatch, backend, progress, workdir, **backend_options
        How the tasks run, as in :func:`cross_validate`.

    Returns
    -------
    scores : ndarray of shape (n_splits,)
        The test score of each outer fold.

    See Also
    --------
    cross_validate : Several metrics, fit and score times.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mempamal.model_selection import cross_val_score
    >>> X, y = load_iris(return_X_y=True)
    >>> cross_val_score(LogisticRegression(), X, y, cv=3, workdir="runs/iris").round(2)
    array([0.98, 0.96, 0.98])
    """
    if not (scoring is None or isinstance(scoring, str) or callable(scoring)):
        raise ValueError(f"scoring: cross_val_score takes one metric (a name, a callable or None), got "
                         f"{scoring!r}; use cross_validate for several")
    out = _cross_validate("cross_val_score", estimator, X, y, groups=groups, scoring=scoring, cv=cv,
                          error_score=error_score, params=params, return_indices=False,
                          run_options=dict(n_jobs=n_jobs, verbose=verbose, pre_dispatch=pre_dispatch,
                                           backend=backend, progress=progress, workdir=workdir,
                                           options=backend_options))
    return out["test_score"]


def cross_val_predict(estimator, X, y=None, *, groups=None, cv=None, n_jobs=None, verbose=0, params=None,
                      pre_dispatch=_DEFAULT_PRE_DISPATCH, method="predict", backend: str = "local",
                      progress: bool = True, workdir: str | os.PathLike | None = None,
                      **backend_options) -> np.ndarray:
    """Each sample's prediction when it was in a test set, as :func:`sklearn.model_selection.cross_val_predict`.

    Parameters
    ----------
    estimator, X, y, groups, cv, params
        As in :func:`cross_validate`.
        ``cv`` must test every sample exactly once.
    method : "predict"
        Only ``"predict"``: the tasks store the outer test folds' ``predict``.
    n_jobs, verbose, pre_dispatch, backend, progress, workdir, **backend_options
        How the tasks run, as in :func:`cross_validate`.

    Returns
    -------
    predictions : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        Each sample's prediction by the model of the fold that tested it.

    See Also
    --------
    cross_validate : The scores instead.
    mempamal.results.Results.predictions : The same from a workdir's results.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mempamal.model_selection import cross_val_predict
    >>> X, y = load_iris(return_X_y=True)
    >>> predictions = cross_val_predict(LogisticRegression(), X, y, cv=3, workdir="runs/predict")
    >>> print(predictions.shape, (predictions == y).mean().round(2))
    (150,) 0.97
    """
    if method != "predict":
        raise ValueError(f"method={method!r}: mempamal stores the outer test predictions of predict() only; "
                         "use method='predict'")
    plan = make_plan(estimator, cv=cv, scoring=None)
    res = _evaluate(plan, X, y, groups, params, "cross_val_predict", n_jobs=n_jobs, verbose=verbose,
                    pre_dispatch=pre_dispatch, backend=backend, progress=progress, workdir=workdir,
                    options=backend_options, check=_check_partition)
    predictions = res.predictions
    if np.asarray(y).dtype == object or str(getattr(y, "dtype", "")) == "category":
        predictions = predictions.astype(object)  # scikit-learn's labels of an object or categorical y
    return predictions


def permutation_test_score(estimator, X, y, *, groups=None, cv=None, n_permutations=100, n_jobs=None,
                           random_state=0, verbose=0, scoring=None, params=None, backend: str = "local",
                           progress: bool = True, workdir: str | os.PathLike | None = None,
                           **backend_options) -> tuple[float, np.ndarray, float]:
    """The significance of a cross-validated score, as :func:`sklearn.model_selection.permutation_test_score`.

    Every permutation of y is a whole (nested) cross-validation, run as mempamal's tasks beside the
    unpermuted one.

    Parameters
    ----------
    estimator, X, y, groups, cv, params
        As in :func:`cross_validate`.
    scoring : str, callable or None, default=None
        One metric (a name, a scorer or None: the estimator's ``score``).
    n_permutations : int, default=100
        Permutations of y.
    random_state : int or None, default=0
        Seed of the permutations (a RandomState cannot be stored). With ``groups``, y is
        permuted within groups, as scikit-learn does.
    n_jobs, verbose, backend, progress, workdir, **backend_options
        How the tasks run, as in :func:`cross_validate`.

    Returns
    -------
    score : float
        The cross-validated score of the true y.
    permutation_scores : ndarray of shape (n_permutations,)
        The score of each permutation.
    pvalue : float
        ``(count(permutation_scores >= score) + 1) / (n_permutations + 1)``.

    See Also
    --------
    mempamal.Experiment : Many targets at once, with family-wise corrected p-values.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mempamal.model_selection import permutation_test_score
    >>> X, y = load_iris(return_X_y=True)
    >>> score, permutation_scores, pvalue = permutation_test_score(
    ...     LogisticRegression(), X, y, cv=3, n_permutations=9, workdir="runs/perm")
    >>> round(score, 2), permutation_scores.shape, pvalue
    (0.97, (9,), 0.1)
    """
    if not (scoring is None or isinstance(scoring, str) or callable(scoring)):
        raise ValueError(f"scoring: permutation_test_score takes one metric (a name, a callable or None), got "
                         f"{scoring!r}")
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, (int, np.integer)) or n_permutations < 1:
        raise ValueError(f"n_permutations: expected an int >= 1, as scikit-learn, got {n_permutations!r}")
    plan = make_plan(estimator, cv=cv, scoring=scoring, n_permutations=n_permutations,
                     permutation_random_state=random_state)
    res = _evaluate(plan, X, y, groups, params, "permutation_test_score", n_jobs=n_jobs, verbose=verbose,
                    pre_dispatch=_DEFAULT_PRE_DISPATCH, backend=backend, progress=progress, workdir=workdir,
                    options=backend_options, permuting=True)
    metric = plan.metrics["score"]
    return (float(res.observed_score[metric]), np.asarray(res.permutation_scores[metric], dtype=float),
            float(res.pvalues[metric]))


def _cross_validate(function: str, estimator, X, y, *, groups, scoring, cv, error_score, params,
                    return_indices: bool, run_options: dict) -> dict[str, Any]:
    """cross_validate's dict, for cross_validate and cross_val_score (``function`` names the call)."""
    plan = make_plan(estimator, cv=cv, scoring=scoring, error_score=error_score)
    res = _evaluate(plan, X, y, groups, params, function, **run_options)
    out: dict[str, Any] = {"fit_time": _fit_times(res), "score_time": np.asarray(res.score_times, dtype=float)}
    if return_indices:
        folds = Folds(res.workdir)
        try:
            splits = [folds.outer(o) for o in range(res.n_outer)]
        finally:
            folds.close()
        out["indices"] = {"train": [s[0] for s in splits], "test": [s[1] for s in splits]}
    for suffix, metric in plan.metrics.items():
        out[f"test_{suffix}"] = np.asarray(res.test_scores[metric], dtype=float)
    return out


def _refuse(*, return_estimator: bool, return_train_score: bool) -> None:
    if return_estimator:
        raise ValueError("return_estimator=True: mempamal never pickles fitted estimators, so it cannot return "
                         "them; each fold's selected parameters are in mempamal.load_results(workdir)"
                         ".best_params (pass workdir=..., or see mempamal.model_selection.list_cache())")
    if return_train_score:
        raise ValueError("return_train_score=True: mempamal does not score the outer training sets; remove "
                         "it (the inner validation scores are in mempamal.load_results(workdir).inner_scores)")


def _evaluate(plan: Plan, X, y, groups, params, function: str, *, n_jobs, verbose, pre_dispatch, backend,
              progress, workdir, options: dict, permuting: bool = False, check=None) -> Results:
    """Write the plan's experiment (into the cache by default), run what is not done yet, load the results.

    ``check`` sees the compiled experiment before anything is written.
    """
    if y is None:
        raise ValueError("y: mempamal evaluates supervised estimators (fit(X, y)); give the targets")
    if pre_dispatch != _DEFAULT_PRE_DISPATCH:
        raise ValueError(f"pre_dispatch={pre_dispatch!r}: mempamal's back-end dispatches the tasks (n_jobs at "
                         "once); remove pre_dispatch")
    if isinstance(verbose, bool) or not isinstance(verbose, (int, np.integer)) or not 0 <= verbose <= 1:
        raise ValueError(f"verbose={verbose!r}: mempamal prints no per-fit messages; use verbose=0 (a "
                         "progress bar, see progress=) or 1 (also the workdir and what the run did); each "
                         "task's output is in WORKDIR/logs/, `mempamal status WORKDIR` counts them")
    if n_jobs is not None:
        options = {**options, "n_jobs": n_jobs}
    known = [o.name for o in get_backend(backend).options]
    unknown = [name for name in options if name not in known]
    if unknown:  # before anything is written: a misspelt argument, or one of another back-end
        raise TypeError(f"{function}() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}: "
                        f"neither scikit-learn's nor an option of back-end {backend!r} ({', '.join(known)})")
    groups, params = split_groups(groups, params, plan.search, permuting)
    if not hasattr(plan.experiment.cv, "split") and not isinstance(plan.experiment.cv, int):
        plan.experiment.cv = list(plan.experiment.cv)  # a generator of splits: read for the key, then written
    call = f"{function}({type(plan.search).__name__ + '(...)' if plan.search is not None else 'estimator'})"
    compiled = compile_call(plan.experiment, X, y, groups, params)
    if check is not None:
        check(compiled)
    if workdir is None:
        workdir = cached_workdir(plan.experiment, compiled, call)
    else:
        workdir = store(compiled, workdir, python=sys.executable)
    report = run(workdir, backend, progress=progress, wait=True, **options)
    if verbose:
        print(f"mempamal: {workdir}: {report.summary()}", file=sys.stderr)
    return load_results(workdir)


def _fit_times(res: Results) -> np.ndarray:
    """Each outer fold's fit as scikit-learn times it: a search's fit is its inner fits and scorings and
    the refit (summed over tasks: work, not wall time)."""
    times = np.asarray(res.fit_times, dtype=float).copy()
    if res.best_params is not None:
        for o in range(res.n_outer):
            inner = res.cv_results(outer=o)
            n_inner = sum(1 for k in inner if k.startswith("split") and k.endswith(f"_test_{_first(inner)}"))
            times[o] += float(np.sum(inner["mean_fit_time"] + inner["mean_score_time"]) * n_inner)
    return times


def _first(cv_results: dict) -> str:
    """The name of a metric of cv_results (``score`` or the first metric's)."""
    key = next(k for k in cv_results if k.startswith("mean_test_"))
    return key[len("mean_test_"):]


def _check_partition(compiled: Compiled) -> None:
    """cross_val_predict needs every sample tested exactly once: refused before anything is written."""
    n_samples, n_outer = compiled.doc["n_samples"], compiled.doc["n_outer"]
    tested = np.concatenate([compiled.folds[f"outer_test_{o}"] for o in range(n_outer)])
    if len(tested) != n_samples or len(np.unique(tested)) != n_samples:
        raise ValueError("cv: cross_val_predict only works for partitions (every sample in exactly one test "
                         "set); use a splitter such as KFold, or cross_validate for per-fold scores")
