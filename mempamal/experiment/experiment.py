"""The experiment: what the user describes, validated at once, written as files.

:class:`Experiment` follows the conventions of scikit-learn's GridSearchCV
and cross_validate; :meth:`Experiment.write` turns it into experiment.json,
the data and folds as numpy files, and workflow.json, in three steps: validate
(here), compile (:mod:`.compile`: the document and arrays, in memory) and store
(:mod:`.store`: the files). Nothing is fitted here.
"""
from __future__ import annotations

import difflib
import numbers
import os
import sys
from pathlib import Path

import numpy as np

from .compile import Validated, check_data, compile_experiment, encode_candidates, search_candidates
from .encoding import encode
from .scoring import describe_scoring
from .store import store


class Experiment:
    """A supervised-learning experiment: (nested) cross-validation of an estimator.

    Parameters
    ----------
    estimator : estimator object
        Anything that follows scikit-learn's conventions (get_params, set_params,
        fit, predict or score). Its class must be importable by module path.
    cv : int, cross-validation generator or iterable, default=5
        Outer cross-validation, as in ``cross_validate``.
    param_grid : dict or list of dicts, default=None
        Grid of parameters, as in ``GridSearchCV``. ``None`` (and no
        ``param_distributions``) means no model selection: a plain
        cross-validated score.
    param_distributions : dict or list of dicts, default=None
        Instead of ``param_grid``: distributions sampled once at :meth:`write`
        with ``ParameterSampler``, as ``RandomizedSearchCV`` samples them.
    n_iter : int, default=10
        Number of parameter settings sampled from ``param_distributions``.
    random_state : int or None, default=None
        Seed of the parameter sampling (an int: a RandomState cannot be stored).
    inner_cv : int, cross-validation generator or iterable, default=5
        Inner cross-validation splitting each outer training set, as in ``GridSearchCV``.
    scoring : str, callable, list or dict, default=None
        As in ``GridSearchCV``; ``None`` uses the estimator's ``score``.
    refit : bool or str, default=True
        The metric that selects the parameters (a metric name with several metrics).
    error_score : "raise" or float, default=np.nan
        Score given to a fit that raises, as in ``GridSearchCV``.
    grid_chunk_size : int, default=None
        Grid points per map task; ``None`` puts the whole grid in one task.
    n_permutations : int, default=0
        Also score this many permutations of y, as ``permutation_test_score`` does (with
        ``GridSearchCV`` as the estimator when there is a grid): each permutation is a whole
        (nested) cross-validation, its folds computed on the permuted y; the results gain
        permutation scores and p-values per metric. 0: no permutation.
    permutation_random_state : int or None, default=0
        Seed of the permutations (``permutation_test_score``'s ``random_state``); drawn at
        :meth:`write`, within groups when groups are given.
    per_target : bool, default=False
        With a 2-D y: one complete analysis per column (its own folds, model selection and
        scores), every column under the same permutations, so that p-values can be corrected
        over targets by the maximum statistic. False: one joint multi-output fit, as today.
    permutation_chunk_size : int, default=None
        Permutations per task; default: about a hundred tasks per target and outer fold.
    stack_columns : "auto", True or False, default="auto"
        Fit the analyses that differ only in y (the targets of ``per_target``, the permutations)
        together, as the columns of one y: one fit per fold and candidate for a chunk of columns,
        the same numbers. "auto": when :mod:`mempamal.experiment.stacking` finds it exact (a
        column-separable estimator, steps and splitters that ignore y); True: require it (an error
        names what blocks); False: one analysis at a time. :meth:`write` says which and why.
    column_memory : float, default=5e8
        Bytes a stacked task may hold for its columns (y, predictions, coefficients): columns are
        cut into chunks of that size (and up to 4 chunks), one task per chunk and outer fold.

    See Also
    --------
    mempamal.run : Run the tasks of a written experiment.
    mempamal.load_results : Read its results.
    mempamal.model_selection.cross_validate : The same from scikit-learn's functions.

    Examples
    --------
    A nested cross-validation of iris, written as files, run on two cores, read back:

    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import StratifiedKFold
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from mempamal import Experiment, load_results, run
    >>> X, y = load_iris(return_X_y=True)
    >>> exp = Experiment(make_pipeline(StandardScaler(), LogisticRegression()),
    ...                  cv=StratifiedKFold(3, shuffle=True, random_state=0),
    ...                  param_grid={"logisticregression__C": [0.01, 1.0, 100.0]},
    ...                  inner_cv=StratifiedKFold(3), scoring="f1_weighted")
    >>> workdir = exp.write(X, y, "runs/iris")  # files only: nothing is fitted here
    >>> report = run(workdir, n_jobs=2, progress=False)
    >>> res = load_results(workdir)
    >>> res.best_params
    [{'logisticregression__C': 100.0}, {'logisticregression__C': 100.0}, {'logisticregression__C': 1.0}]
    """

    def __init__(self, estimator, *, cv=5, param_grid=None, param_distributions=None, n_iter=10,
                 random_state=None, inner_cv=5, scoring=None, refit=True, error_score=np.nan,
                 grid_chunk_size=None, n_permutations=0, permutation_random_state=0, per_target=False,
                 permutation_chunk_size=None, stack_columns="auto", column_memory=5e8) -> None:
        self.estimator = estimator
        self.cv = cv
        self.param_grid = param_grid
        self.param_distributions = param_distributions
        self.n_iter = n_iter
        self.random_state = random_state
        self.inner_cv = inner_cv
        self.scoring = scoring
        self.refit = refit
        self.error_score = error_score
        self.grid_chunk_size = grid_chunk_size
        self.n_permutations = n_permutations
        self.permutation_random_state = permutation_random_state
        self.per_target = per_target
        self.permutation_chunk_size = permutation_chunk_size
        self.stack_columns = stack_columns
        self.column_memory = column_memory
        self._validate()

    # -- validation -------------------------------------------------------------------

    def _validate(self) -> Validated:
        """Check the current attributes and encode them; nothing is cached on ``self``.

        :meth:`write` calls it again, so that an attribute set after construction
        takes effect, or is refused with the constructor's message.
        """
        est = self.estimator
        if isinstance(est, type) or not hasattr(est, "get_params") or not hasattr(est, "fit"):
            raise TypeError(
                f"estimator: expected an estimator instance with get_params and fit, got {est!r}"
            )
        encoded_estimator = encode(est)
        scorers, refit_metric = describe_scoring(self.scoring, self.refit)
        if self.param_grid is not None and self.param_distributions is not None:
            raise ValueError("param_grid and param_distributions: give one or the other, not both")
        if not (self.error_score == "raise" or isinstance(self.error_score, numbers.Number)):
            raise ValueError(f"error_score: expected 'raise' or a number, got {self.error_score!r}")
        if self.random_state is not None and not isinstance(self.random_state, numbers.Integral):
            raise ValueError("random_state: expected an int or None (a RandomState cannot be stored)")
        if self.grid_chunk_size is not None and (
            not isinstance(self.grid_chunk_size, numbers.Integral) or self.grid_chunk_size < 1
        ):
            raise ValueError(f"grid_chunk_size: expected a positive int or None, got {self.grid_chunk_size!r}")
        if not isinstance(self.n_permutations, numbers.Integral) or isinstance(self.n_permutations, bool) \
                or self.n_permutations < 0:
            raise ValueError(f"n_permutations: expected a non-negative int, got {self.n_permutations!r}")
        if self.permutation_chunk_size is not None and (
            not isinstance(self.permutation_chunk_size, numbers.Integral) or isinstance(self.permutation_chunk_size, bool)
            or self.permutation_chunk_size < 1
        ):
            raise ValueError(f"permutation_chunk_size: expected a positive int or None, "
                             f"got {self.permutation_chunk_size!r}")
        if self.permutation_random_state is not None and (
            not isinstance(self.permutation_random_state, numbers.Integral) or isinstance(self.permutation_random_state, bool)
        ):
            raise ValueError("permutation_random_state: expected an int or None (a RandomState cannot be stored)")
        if not isinstance(self.per_target, bool):
            raise ValueError(f"per_target: expected True or False, got {self.per_target!r}")
        if not (self.stack_columns is True or self.stack_columns is False or self.stack_columns == "auto"):
            raise ValueError(f"stack_columns: expected 'auto', True or False, got {self.stack_columns!r}")
        if not isinstance(self.column_memory, numbers.Real) or isinstance(self.column_memory, bool) \
                or not self.column_memory > 0:
            raise ValueError(f"column_memory: expected a positive number of bytes, got {self.column_memory!r}")
        search = self.param_grid if self.param_grid is not None else self.param_distributions
        candidates = None
        if search is not None:
            self._check_search_space(search)
            if self.param_distributions is None:
                # A grid is known now: encode it now, so a bad value fails here, not at write().
                candidates = encode_candidates(search_candidates(self.param_grid, None, self.n_iter,
                                                                 self.random_state))
        return Validated(encoded_estimator, scorers, refit_metric, candidates)

    def _check_search_space(self, space) -> None:
        name = "param_grid" if self.param_grid is not None else "param_distributions"
        grids = [space] if isinstance(space, dict) else space
        if not isinstance(grids, (list, tuple)) or not grids:
            raise ValueError(f"{name}: expected a dict or a non-empty list of dicts, got {space!r}")
        params = self.estimator.get_params(deep=True)
        for grid in grids:
            if not isinstance(grid, dict) or not grid:
                raise ValueError(f"{name}: expected non-empty dicts, got {grid!r}")
            for key, values in grid.items():
                if name == "param_grid" or not hasattr(values, "rvs"):
                    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) == 0:
                        raise ValueError(
                            f"{name}[{key!r}]: expected a non-empty list of values, got {values!r}"
                        )
                if key not in params and not _set_by_grid(key, grid):
                    close = difflib.get_close_matches(key, list(params), n=3)
                    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
                    raise ValueError(
                        f"{name}: {key!r} is not a parameter of {type(self.estimator).__name__}{hint} "
                        "(estimator.get_params().keys() lists the valid names)"
                    )

    # -- writing --------------------------------------------------------------------

    def write(self, X, y, workdir: str | os.PathLike, groups=None, *, params: dict | None = None,
              python: str | None = None, overwrite: bool = False) -> Path:
        """Write the experiment as files in ``workdir``; nothing is fitted.

        Parameters
        ----------
        X : array-like, scipy.sparse matrix or pandas DataFrame of shape (n_samples, n_features)
            A DataFrame is kept as one (column names, dtypes, categories; its
            index reset): every task reads it back as a DataFrame.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Labels may be strings or categories; predictions come back in them.
        workdir : path
            Created if needed. Writing the same experiment again keeps finished outputs.
        groups : array-like of shape (n_samples,), default=None
            Group labels for group splitters, used in both loops.
        params : dict of str -> array-like of shape (n_samples, ...), default=None
            Per-sample parameters (``sample_weight``...), indexed per fold and
            passed as ``cross_validate(GridSearchCV(...), X, y, params=params)``
            passes them: to ``fit``, and, with
            ``sklearn.set_config(enable_metadata_routing=True)``, wherever the
            estimator's and scorers' requests send them.
        python : str, default=None
            Interpreter of the task commands; default: this one's absolute path
            (set it when the cluster's nodes see Python elsewhere).
        overwrite : bool, default=False
            Replace a different experiment already written in ``workdir``.

        Returns
        -------
        workdir : pathlib.Path
        """
        # From the attributes as they are now: one set since construction is checked and used.
        checked = self._validate()
        X, y, groups, params = check_data(X, y, groups, params, estimator=self.estimator,
                                          per_target=self.per_target)
        compiled = compile_experiment(self, checked, X, y, groups, params)
        if compiled.doc["per_target"] or compiled.doc["n_permutations"]:  # several analyses: which path, and why
            print(f"mempamal: {compiled.doc['stacking']['reason']}", flush=True)
        return store(compiled, workdir, python=python or sys.executable, overwrite=overwrite)

    def __repr__(self) -> str:
        return f"Experiment({self.estimator!r}, cv={self.cv!r}, scoring={self.scoring!r})"


def _set_by_grid(key: str, grid: dict) -> bool:
    """Whether ``key`` names a parameter of an estimator that the grid itself sets (e.g. 'clf__C' with 'clf')."""
    prefix, _, rest = key.rpartition("__")
    while prefix:
        values = grid.get(prefix)
        if values is not None and all(hasattr(v, "get_params") for v in values):
            return all(rest in v.get_params(deep=True) for v in values)
        prefix, _, head = prefix.rpartition("__")
        rest = f"{head}__{rest}"
    return False

