"""Whether an experiment's columns can be fitted together, and why (not).

Many analyses of one X (the targets of ``per_target``, the permutations of y, or
both) differ only in their y. When the estimator fits each column of a 2-D y as
an independent problem and every analysis uses the same folds, fitting a chunk of
columns at once gives each column the predictions of its own fit: one fit per
(fold, candidate) instead of one per (fold, candidate, column).

The rule is explicit and small:

- the final estimator is in a declared table of *column-separable* estimators
  (Ridge, KernelRidge, LinearRegression, ElasticNet, Lasso, the nearest-neighbours
  regressors, MultiOutputRegressor, DummyRegressor), with an optional check of its
  parameters (a per-target ``alpha`` array is refused);
- every step before it ignores y in ``fit`` (a declared table of scalers, imputers,
  encoders, decompositions...; Pipelines, ColumnTransformers and FeatureUnions of
  them), in the estimator and in every candidate of the grid;
- both splitters ignore y and split the same way every time (KFold, GroupKFold,
  ShuffleSplit... with an int ``random_state`` when they shuffle, an explicit list
  of splits, an int for a regressor), so that every column gets y's folds;
- every metric can be computed per column (anything for a scorer; the estimator's
  own ``score`` only when it is a regressor's R²).

Anything else is not stacked, with a one-line reason naming what blocks. A user's
own estimator or transformer joins the tables with :func:`register_column_separable`
or :func:`register_y_ignoring` (in the process that calls ``write()``: the decision is
stored in experiment.json, tasks only follow it).
"""
from __future__ import annotations

import importlib
import numbers
from typing import Any, Callable, NamedTuple

# Final estimators that fit each column of a 2-D y as its own problem: one factorisation for all
# right-hand sides (Ridge, KernelRidge, LinearRegression), the neighbours' y averaged (neighbours
# depend on X only), a loop over columns (ElasticNet, Lasso), a clone per column (MultiOutputRegressor).
# A value, when not None, checks the parameters: a reason string when they break separability.
_SEPARABLE: dict[str, Callable[[Any], str | None] | None] = {}
# Steps whose fit never looks at y: fitting them once for all columns is fitting them once per column.
_Y_IGNORING: set[str] = set()
# Splitters whose split never looks at y (groups and X only).
_Y_IGNORING_SPLITTERS: set[str] = set()


def _scalar_alpha(estimator) -> str | None:
    alpha = getattr(estimator, "alpha", None)
    if alpha is not None and not isinstance(alpha, numbers.Number):
        return f"{type(estimator).__name__}(alpha=...) has one alpha per target, not one for every column"
    return None


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _public(path: str) -> str | None:
    """The defining module's name of a public dotted path (``sklearn.linear_model.Ridge`` is defined in
    ``sklearn.linear_model._ridge``); None when it cannot be imported (an optional package)."""
    module, _, name = path.rpartition(".")
    try:
        return _qualname(getattr(importlib.import_module(module), name))
    except (ImportError, AttributeError):
        return None


_DEFAULT_SEPARABLE = {
    "sklearn.linear_model.Ridge": _scalar_alpha,
    "sklearn.linear_model.LinearRegression": None,
    "sklearn.linear_model.ElasticNet": None,
    "sklearn.linear_model.Lasso": None,
    "sklearn.kernel_ridge.KernelRidge": _scalar_alpha,
    "sklearn.neighbors.KNeighborsRegressor": None,
    "sklearn.neighbors.RadiusNeighborsRegressor": None,
    "sklearn.multioutput.MultiOutputRegressor": None,
    "sklearn.dummy.DummyRegressor": None,
}
_DEFAULT_Y_IGNORING = [f"sklearn.preprocessing.{n}" for n in (
    "StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler", "Normalizer", "Binarizer",
    "QuantileTransformer", "PowerTransformer", "OneHotEncoder", "OrdinalEncoder", "PolynomialFeatures",
    "SplineTransformer", "FunctionTransformer", "KBinsDiscretizer")] + [
    "sklearn.impute.SimpleImputer", "sklearn.impute.KNNImputer", "sklearn.impute.MissingIndicator",
    "sklearn.decomposition.PCA", "sklearn.decomposition.TruncatedSVD", "sklearn.decomposition.IncrementalPCA",
    "sklearn.decomposition.KernelPCA", "sklearn.decomposition.FastICA", "sklearn.decomposition.NMF",
    "sklearn.feature_selection.VarianceThreshold", "sklearn.kernel_approximation.Nystroem",
    "sklearn.kernel_approximation.RBFSampler", "sklearn.random_projection.GaussianRandomProjection",
    "sklearn.random_projection.SparseRandomProjection"]
_DEFAULT_SPLITTERS = [f"sklearn.model_selection.{n}" for n in (
    "KFold", "GroupKFold", "ShuffleSplit", "GroupShuffleSplit", "LeaveOneOut", "LeavePOut", "LeaveOneGroupOut",
    "LeavePGroupsOut", "RepeatedKFold", "TimeSeriesSplit", "PredefinedSplit")] + [
    "sklearn.model_selection._split._CVIterableWrapper"]
_loaded = False


def _load_defaults() -> None:
    """Resolve the default tables once, on first use (importing scikit-learn's modules is slow)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for path, check in _DEFAULT_SEPARABLE.items():
        name = _public(path)
        if name is not None:
            _SEPARABLE.setdefault(name, check)
    _Y_IGNORING.update(n for n in map(_public, _DEFAULT_Y_IGNORING) if n is not None)
    _Y_IGNORING_SPLITTERS.update(n for n in map(_public, _DEFAULT_SPLITTERS) if n is not None)


def register_column_separable(cls: type, check: Callable[[Any], str | None] | None = None) -> None:
    """Declare that instances of ``cls`` (exactly that class) fit each column of a 2-D y on its own.

    Parameters
    ----------
    cls : class
        A regressor whose ``fit(X, Y)`` on k columns gives the predictions of k fits on each
        column, whatever the other columns are.
    check : callable, default=None
        ``check(estimator) -> str | None``: a reason when these parameters break that (e.g. one
        ``alpha`` per target).
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_column_separable: expected a class, got {cls!r}")
    _load_defaults()
    _SEPARABLE[_qualname(cls)] = check


def register_y_ignoring(cls: type) -> None:
    """Declare that ``fit`` of instances of ``cls`` (exactly that class) never looks at y: a
    Pipeline step fitted once for every column, as it would be for each."""
    if not isinstance(cls, type):
        raise TypeError(f"register_y_ignoring: expected a class, got {cls!r}")
    _load_defaults()
    _Y_IGNORING.add(_qualname(cls))


def blocking_step(estimator, where: str = "estimator") -> str | None:
    """Why ``estimator``'s columns cannot be fitted together (naming the step), or None."""
    _load_defaults()
    final, steps = _final_and_steps(estimator, where)
    for name, step in steps:
        reason = _y_ignoring(step, name)
        if reason:
            return reason
    name, est = final
    if isinstance(est, str) or est is None:
        return f"{name} is {est!r}: no estimator fits the columns"
    check = _SEPARABLE.get(_qualname(type(est)), False)
    if check is False:
        return (f"{name} ({type(est).__name__}) is not declared column-separable (fitting columns together may "
                f"differ from fitting each); mempamal.experiment.stacking.register_column_separable("
                f"{type(est).__name__}) if it is")
    return check(est) if check is not None else None


def _final_and_steps(estimator, where: str):
    """(final (name, estimator), [(name, step) before it]), Pipelines flattened."""
    steps_attr = getattr(estimator, "steps", None)
    if steps_attr is None or not _is(estimator, "sklearn.pipeline.Pipeline"):
        return (where, estimator), []
    named = [(f"{where} step {n!r}", s) for n, s in steps_attr]
    final, steps = _final_and_steps(named[-1][1], named[-1][0])
    return final, named[:-1] + steps


def _y_ignoring(step, name: str) -> str | None:
    if step is None or isinstance(step, str):  # "passthrough", "drop", None
        return None
    if _is(step, "sklearn.pipeline.Pipeline"):
        return next(filter(None, (_y_ignoring(s, f"{name} step {n!r}") for n, s in step.steps)), None)
    if _is(step, "sklearn.compose.ColumnTransformer"):
        parts = [(f"{name} transformer {n!r}", t) for n, t, _ in step.transformers]
        if step.remainder not in ("drop", "passthrough"):
            parts.append((f"{name} remainder", step.remainder))
        return next(filter(None, (_y_ignoring(t, n) for n, t in parts)), None)
    if _is(step, "sklearn.pipeline.FeatureUnion"):
        return next(filter(None, (_y_ignoring(t, f"{name} transformer {n!r}") for n, t in step.transformer_list)),
                    None)
    if _qualname(type(step)) in _Y_IGNORING:
        return None
    return (f"{name} ({type(step).__name__}) may use y in fit (not declared y-ignoring); "
            f"mempamal.experiment.stacking.register_y_ignoring({type(step).__name__}) if it does not")


def _is(obj, path: str) -> bool:
    return _qualname(type(obj)) == _public(path)


def splitter_ignores_y(cv, classifier: bool, name: str = "cv") -> str | None:
    """Why ``cv`` may split a permuted (or another) y differently from y, or None when it gives every
    y the same folds: a splitter that ignores y and is deterministic."""
    _load_defaults()
    if cv is None or isinstance(cv, numbers.Integral):
        if classifier:
            return f"{name}={cv!r} for a classifier is a StratifiedKFold, which splits by y"
        return None
    if not hasattr(cv, "split"):
        return None if isinstance(cv, (list, tuple)) else f"{name}={cv!r} is not a splitter or a list of splits"
    if _qualname(type(cv)) not in _Y_IGNORING_SPLITTERS:
        return f"{name}={cv!r} may split by y (not declared y-ignoring)"
    random_state = getattr(cv, "random_state", None)
    shuffles = getattr(cv, "shuffle", True) and hasattr(cv, "random_state")
    if shuffles and not isinstance(random_state, numbers.Integral):
        return f"{name}={cv!r} draws other folds at each split (random_state={random_state!r}; give an int)"
    return None


class Decision(NamedTuple):
    """Whether the columns are fitted together, and the one line that says why."""

    stacked: bool
    reason: str

    def to_json(self) -> dict:
        return {"stacked": self.stacked, "reason": self.reason}


def decide(estimator, candidates: list[dict] | None, cv, inner_cv, scoring: dict, *, classifier: bool,
           n_columns: int, mode: Any = "auto") -> Decision:
    """Whether an experiment's columns can be fitted together.

    Parameters
    ----------
    estimator : estimator
    candidates : list of dict or None
        The grid's parameter settings (decoded), None without a grid.
    cv, inner_cv : splitters (``inner_cv`` None without a grid)
    scoring : dict
        The described scoring (:func:`mempamal.experiment.scoring.describe_scoring`).
    classifier : bool
    n_columns : int
        Analyses (targets x (1 + permutations)) that could share fits.
    mode : "auto", True or False
        ``stack_columns``: True raises ValueError naming what blocks.
    """
    if mode is False:
        return Decision(False, "not stacked: stack_columns=False")
    # One analysis first: nothing to judge (and no clone of every candidate) when nothing could be stacked.
    reason = ("one analysis, one column: nothing to fit together" if n_columns < 2
              else _blocking(estimator, candidates, cv, inner_cv, scoring, classifier))
    if reason is not None:
        if mode is True:
            raise ValueError(f"stack_columns=True: the columns cannot be fitted together: {reason}; "
                             "use stack_columns='auto' to fall back to one analysis per column")
        return Decision(False, f"not stacked: {reason}")
    return Decision(True, f"stacked: {n_columns} columns fitted together per fold and candidate "
                          f"({_final_name(estimator)} is column-separable, the folds ignore y)")


def _blocking(estimator, candidates, cv, inner_cv, scoring, classifier) -> str | None:
    from sklearn.base import clone

    if classifier:
        return f"{type(estimator).__name__} is a classifier (only regressors are stacked)"
    reason = blocking_step(estimator)
    for n, params in enumerate(candidates or []):
        if reason is not None:
            break
        if params:
            reason = blocking_step(clone(estimator).set_params(**params), f"estimator (candidate {n})")
    reason = reason or splitter_ignores_y(cv, classifier, "cv")
    if reason is None and inner_cv is not None:
        reason = splitter_ignores_y(inner_cv, classifier, "inner_cv")
    if reason is None and None in scoring.values():
        score = getattr(type(_final(estimator)), "score", None)
        from sklearn.base import RegressorMixin

        if score is not RegressorMixin.score:
            reason = f"scoring=None uses {_final_name(estimator)}.score, whose value per column is not known"
    return reason


def _final(estimator):
    while _is(estimator, "sklearn.pipeline.Pipeline"):
        estimator = estimator.steps[-1][1]
    return estimator


def _final_name(estimator) -> str:
    return type(_final(estimator)).__name__


# Fewest columns worth a task of their own: below it, a task's start (an interpreter, scikit-learn's
# import, X read) costs more than the fits it saves another worker.
MIN_CHUNK_COLUMNS = 500


def columns_per_chunk(n_samples: int, n_features: int, n_blocks: int, block: int, *, budget: float = 5e8,
                      min_chunks: int = 1) -> int:
    """Blocks per chunk: as many as a task's memory budget (bytes) holds, cut into up to ``min_chunks``
    even chunks (with the outer folds, work for every worker) while each keeps ``MIN_CHUNK_COLUMNS``.

    Per column a task holds the chunk's y, its permuted copy, one fold's predictions and a model's
    coefficients, each in float64; X and the folds are shared by every column.
    """
    if n_blocks < 1:
        return 1
    per_block = 8 * block * (3 * n_samples + 2 * n_features)
    fixed = 8 * n_samples * n_features * 3  # X, a fold's training copy, a scaler's output
    by_memory = max(1, int((budget - fixed) // per_block))
    worth = max(1, min(min_chunks, n_blocks * block // MIN_CHUNK_COLUMNS))
    n_chunks = max(-(-n_blocks // by_memory), worth)
    return -(-n_blocks // n_chunks)
