"""The experiment: what the user describes, validated at once, written as files.

:class:`Experiment` follows the conventions of scikit-learn's GridSearchCV
and cross_validate; :meth:`Experiment.write` turns it into experiment.json,
the data and folds as numpy files, and workflow.json. Nothing is fitted here.
"""
from __future__ import annotations

import hashlib
import json
import numbers
import os
import shutil
import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .. import __version__
from .encoding import encode, packages_of
from ..workdir.files import write_json
from ..workdir.layout import EXPERIMENT, FOLDS, GENERATED, PERMUTATIONS, WORKFLOW, permuted_folds
from ..workdir.manifest import write_manifest
from .scoring import describe_scoring
from .stacking import splitter_ignores_y

FORMAT = "mempamal/experiment-1"


class _Validated(NamedTuple):
    """What validating an Experiment's attributes yields, as experiment.json stores it."""

    estimator: dict
    scoring: dict
    refit: Any
    candidates: list[dict] | None  # a grid's, encoded; None without a grid (distributions sample at write)


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
        cut into chunks of that size (and at least 4 chunks), one task per chunk and outer fold.
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

    def _validate(self) -> _Validated:
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
                candidates = self._encode_candidates(self._candidates())
        return _Validated(encoded_estimator, scorers, refit_metric, candidates)

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
                    import difflib

                    close = difflib.get_close_matches(key, list(params), n=3)
                    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
                    raise ValueError(
                        f"{name}: {key!r} is not a parameter of {type(self.estimator).__name__}{hint} "
                        "(estimator.get_params().keys() lists the valid names)"
                    )

    def _candidates(self) -> list[dict] | None:
        """Every parameter setting, in ParameterGrid (or ParameterSampler) order."""
        from sklearn.model_selection import ParameterGrid, ParameterSampler

        if self.param_grid is not None:
            return list(ParameterGrid(self.param_grid))
        if self.param_distributions is not None:
            return list(ParameterSampler(self.param_distributions, self.n_iter, random_state=self.random_state))
        return None

    @staticmethod
    def _encode_candidates(candidates: list[dict]) -> list[dict]:
        return [
            {key: encode(value, path=f"param_grid[{key!r}] (candidate {n})") for key, value in params.items()}
            for n, params in enumerate(candidates)
        ]

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
        from sklearn.base import is_classifier

        from ..workdir.data import save_array, save_data
        from .folds import compute_folds, count_folds, prefixed, save_folds, target_prefix
        from .permutations import default_chunk_size
        from ..workdir.workflow import build_workflow, save_workflow

        # From the attributes as they are now: one set since construction is checked and used.
        checked = self._validate()
        workdir = Path(workdir)
        X, y, groups, params = _check_data(X, y, groups, params)
        _warn_nan_without_imputer(X, self.estimator)
        with_search = self.param_grid is not None or self.param_distributions is not None
        routing = None
        if params:
            from .routing import route

            routing = route(self.estimator, scoring=self.scoring, refit=self.refit, error_score=self.error_score,
                            cv=self.cv, inner_cv=self.inner_cv, with_search=with_search, names=sorted(params),
                            metrics=list(checked.scoring))
        candidates = self._candidates()  # sampled once: the same ones are encoded and judged for stacking
        if self.param_distributions is not None:
            encoded_candidates = self._encode_candidates(candidates)
        else:
            encoded_candidates = checked.candidates
        if self.per_target and y.ndim != 2:
            raise ValueError(f"per_target=True: expected y of shape (n_samples, n_targets), one analysis per "
                             f"column, got shape {y.shape}; use per_target=False for a single target")
        targets = list(range(y.shape[1])) if self.per_target else [None]
        inner_cv = self.inner_cv if with_search else None
        # Splitters that ignore y (and split alike every time) give every target and permutation y's folds:
        # split once, not once per y (4,020 splits of 200 permutations x 20 targets were 86% of write's time).
        classifier = bool(is_classifier(self.estimator))
        folds_ignore_y = splitter_ignores_y(self.cv, classifier) is None and (
            inner_cv is None or splitter_ignores_y(inner_cv, classifier, "inner_cv") is None)
        fold_arrays: dict[str, np.ndarray] = {}
        for t in targets:
            where = "" if t is None else f" (target {t}, column {t} of y)"
            if t and folds_ignore_y:
                fold_arrays.update(prefixed(fold_arrays_of(fold_arrays, 0), target_prefix(t)))
                continue
            arrays = compute_folds(self.estimator, self.cv, inner_cv, X, _column(y, t), groups, where)
            n_outer, n_inner = count_folds(arrays)
            if n_outer == 0 or (with_search and min(n_inner) == 0):
                raise ValueError("cv / inner_cv: the splitter produced no folds")
            if t:  # every target's split has the same shape: tasks are laid out once for all
                _check_same_counts((n_outer, n_inner), count_folds(fold_arrays_of(fold_arrays, 0)), where)
            fold_arrays.update(prefixed(arrays, target_prefix(t)))
        perm_chunk = self.permutation_chunk_size or default_chunk_size(self.n_permutations)
        permutations, permuted = _permutations(self, X, y, groups, targets, fold_arrays, inner_cv, perm_chunk,
                                               folds_ignore_y)

        stacking = _stacking(self, candidates, checked.scoring, classifier, X, y, targets, inner_cv)
        print(f"mempamal: {stacking['reason']}", flush=True)

        n_candidates = len(encoded_candidates) if with_search else 0
        chunk = self.grid_chunk_size or max(n_candidates, 1)
        doc = {
            "format": FORMAT,
            "mempamal_version": __version__,
            "estimator": checked.estimator,
            "estimator_repr": repr(self.estimator),
            "is_classifier": bool(is_classifier(self.estimator)),
            "scoring": checked.scoring,
            "refit": checked.refit,
            "error_score": encode(self.error_score),
            "search": None if not with_search else ("grid" if self.param_grid is not None else "random"),
            "candidates": encoded_candidates,
            "n_candidates": n_candidates,
            "grid_chunk_size": chunk,
            "n_chunks": -(-n_candidates // chunk) if with_search else 0,
            "cv": repr(self.cv),
            "inner_cv": repr(self.inner_cv) if with_search else None,
            "n_outer": n_outer,
            "n_inner": n_inner if with_search else None,
            "n_samples": int(y.shape[0]),
            "folds": FOLDS,
            "per_target": self.per_target,
            "n_targets": len(targets) if self.per_target else None,
            "n_permutations": self.n_permutations,
            "permutation_random_state": self.permutation_random_state,
            "permutation_chunk_size": perm_chunk,
            "n_permutation_chunks": -(-self.n_permutations // perm_chunk),
            "permutations": PERMUTATIONS if self.n_permutations else None,
            # False: the splitters ignore y, every permutation has y's folds and no permuted_folds/ file is written.
            "permuted_folds": bool(self.n_permutations) and not folds_ignore_y,
            "stacking": stacking,
        }
        if routing is not None:
            doc["params"] = routing  # where each per-sample parameter goes (see mempamal.routing)
        doc["packages"] = sorted(packages_of([doc["estimator"], doc["scoring"], doc["candidates"]]))
        doc["fingerprint"] = _fingerprint(doc, [X, y, groups, permutations] + [params[k] for k in sorted(params or {})],
                                          [fold_arrays] + [arrays for _, arrays in sorted(permuted.items())])

        previous = _read_previous(workdir)
        same = (previous is not None and previous.get("fingerprint") == doc["fingerprint"]
                and (workdir / WORKFLOW).exists())
        if same and _inputs_intact(workdir):
            return workdir  # the same experiment: keep its finished outputs
        if previous is not None and not same and not overwrite:
            raise FileExistsError(
                f"{workdir}: holds a different experiment; use another workdir, or "
                "overwrite=True (--overwrite) to replace it and its results"
            )
        if not same:
            _clear(workdir)
        # else: the same experiment, its inputs edited since (or never recorded in a manifest):
        # write them again, keeping the finished outputs, which match them.
        try:
            workdir.mkdir(parents=True, exist_ok=True)
            probe = workdir / ".mempamal-write-test"
            probe.touch()
            probe.unlink()
        except OSError as e:
            raise PermissionError(f"workdir {str(workdir)!r} cannot be written ({e.strerror}); "
                                  "choose a directory you can create and write") from e

        doc["data"] = save_data(workdir, X, y, groups, params)
        save_folds(workdir, fold_arrays)
        inputs = [f for f in doc["data"].values() if f] + [doc["folds"]]
        if permutations is not None:
            save_array(workdir / PERMUTATIONS, permutations)
            for path, arrays in permuted.items():
                save_folds(workdir, arrays, path)
            inputs += [PERMUTATIONS, *permuted]
        write_json(workdir / EXPERIMENT, doc)
        # After the files it describes: run() refuses inputs edited since.
        write_manifest(workdir, inputs + [EXPERIMENT])
        # workflow.json last: its presence marks a completely written workdir.
        save_workflow(workdir, build_workflow(doc, python or sys.executable))
        return workdir

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


def _check_data(X, y, groups, params=None):
    import scipy.sparse as sp

    from ..workdir.data import as_array
    from ..workdir.tabular import check_frame, is_frame

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

    from ..workdir.data import as_array
    from ..workdir.tabular import check_frame, is_frame

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
    from ..workdir.tabular import is_pandas

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
    import warnings

    import scipy.sparse as sp
    from sklearn.utils import get_tags

    from ..workdir.tabular import is_frame

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
        UserWarning, stacklevel=3)


def _column(y: np.ndarray, target: int | None) -> np.ndarray:
    """The y of one target's analysis (the whole y when targets are not analysed apart)."""
    return y if target is None else y[:, target]


def fold_arrays_of(fold_arrays: dict[str, np.ndarray], target: int | None) -> dict[str, np.ndarray]:
    """One target's folds, without their prefix (None: y as a whole, whose folds have none)."""
    from .folds import target_prefix

    prefix = target_prefix(target)
    return {k[len(prefix):]: v for k, v in fold_arrays.items() if k.startswith(prefix)}


def _check_same_counts(counts, expected, where: str) -> None:
    if counts != expected:
        raise ValueError(f"cv / inner_cv: the splitter gives {counts[0]} outer folds and {counts[1]} inner folds"
                         f"{where}, but {expected[0]} and {expected[1]} for the first target (or the unpermuted y); "
                         "every analysis needs the same number of folds: use a splitter with a fixed n_splits")


def _permutations(exp: "Experiment", X, y, groups, targets: list, fold_arrays: dict, inner_cv, chunk_size: int,
                  folds_ignore_y: bool = False):
    """The permutation indices, and the permuted folds per file (only those that differ from the
    unpermuted y's: a splitter that ignores y stores nothing, and with ``folds_ignore_y`` nothing is
    split). Computed here so that a permuted y that cannot be split is refused before anything runs."""
    from .folds import compute_folds, count_folds, permutation_prefix, prefixed, same_folds
    from .permutations import chunks, permutation_indices

    if not exp.n_permutations:
        return None, {}
    indices = permutation_indices(y.shape[0], groups, exp.n_permutations, exp.permutation_random_state)
    permuted: dict[str, dict[str, np.ndarray]] = {}
    for t in targets:
        if folds_ignore_y:  # every permutation has y's folds: no file of permuted folds (experiment.json says so)
            continue
        observed = fold_arrays_of(fold_arrays, t)
        y_t = _column(y, t)
        for k, members in enumerate(chunks(exp.n_permutations, chunk_size)):
            arrays: dict[str, np.ndarray] = {}
            for p in members:
                where = (f" (permutation {p} of y{'' if t is None else f', target {t}'}; "
                         f"permutation_random_state={exp.permutation_random_state}; a permutation moves samples "
                         "between classes of a group or fold: if fewer splits do not suit, "
                         "try another permutation_random_state)")
                split = compute_folds(exp.estimator, exp.cv, inner_cv, X, y_t[indices[p]], groups, where)
                _check_same_counts(count_folds(split), count_folds(observed), where)
                if not same_folds(split, observed):
                    arrays.update(prefixed(split, permutation_prefix(p)))
            permuted[permuted_folds(t, k)] = arrays
    return indices, permuted


def _stacking(exp: "Experiment", candidates, scoring: dict, classifier: bool, X, y, targets: list, inner_cv) -> dict:
    """experiment.json's "stacking": whether the analyses are fitted together as columns, why, and their chunks
    (``block`` columns of y per analysis, ``chunk_size`` analyses per task)."""
    from .stacking import columns_per_chunk, decide

    n_analyses = len(targets) * (1 + exp.n_permutations)
    decision = decide(exp.estimator, candidates, exp.cv, inner_cv, scoring, classifier=classifier,
                      n_columns=n_analyses, mode=exp.stack_columns)
    out = decision.to_json()
    if decision.stacked:
        block = 1 if exp.per_target or y.ndim == 1 else y.shape[1]
        size = columns_per_chunk(X.shape[0], X.shape[1], n_analyses, block, budget=exp.column_memory, min_chunks=4)
        out.update(block=block, n_analyses=n_analyses, chunk_size=size, n_column_chunks=-(-n_analyses // size))
    return out


def _fingerprint(doc: dict, arrays: list, fold_arrays: list[dict]) -> str:
    """A digest of everything a task's result depends on: the experiment, the data, the folds."""
    import scipy.sparse as sp

    digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode())
    parts = []
    from ..workdir.tabular import frame_digest, is_frame

    for a in arrays:
        if is_frame(a):
            parts.append(a)
        elif a is None:
            parts.append(None)
        elif sp.issparse(a):
            a = a.tocsr()
            parts.extend([a.data, a.indices, a.indptr, np.array(a.shape)])
        else:
            parts.append(a)
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


def _read_previous(workdir: Path) -> dict | None:
    path = workdir / EXPERIMENT
    if not path.exists():
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError:
        return {}


def _inputs_intact(workdir: Path) -> bool:
    """Whether the manifest exists and the inputs it lists still have its sizes and times."""
    from ..workdir.files import InputFileError
    from ..workdir.manifest import quick_changes, read_manifest

    try:
        return read_manifest(workdir) is not None and not quick_changes(workdir)
    except InputFileError:  # an unreadable manifest: write the inputs again
        return False


def _clear(workdir: Path) -> None:
    for name in GENERATED:
        path = workdir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
