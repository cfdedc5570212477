"""The fits a chunk's candidates share, made once: pure functions, no files.

On one split, the candidates of a stacked search often differ only in the final
estimator's parameters: a Pipeline's leading steps (a scaler, a PCA...) then fit the
same way for each, and a Ridge or KernelRidge over a grid of alphas builds the same
Gram (or kernel) matrix for each. Here the leading steps are fitted once per group of
candidates that share their setting, and the Ridges (or KernelRidges) of a group that
differ only in ``alpha`` are solved from one Gram matrix: scikit-learn's own Cholesky
steps (:func:`sklearn.linear_model._ridge._solve_cholesky` and ``_solve_cholesky_kernel``:
for Ridge, centre X and y, ``X^T X`` or ``X X^T``; for KernelRidge, its kernel; alpha
added on the diagonal, one positive-definite solve for every column), with the matrix
computed once instead of once per alpha. The predictions are those of ``Pipeline.fit``
then ``predict`` up to rounding: when the system is well conditioned, the inverse is
applied to the test rows (as many right-hand sides as test samples) instead of the
columns (as many as analyses), and Ridge's kernel form predicts with ``X_test X^T``
without forming the coefficients; ill-conditioned, the solution for the columns comes
first, as in scikit-learn.

Whatever this module cannot do exactly as scikit-learn would (sample weights, a
non-finite value, a sparse or float32 design, a singular system, any other solver or
estimator, a leading step with an unseeded random state), it leaves to the caller's
plain fit: it yields None for that candidate.
"""
from __future__ import annotations

import numbers
import time
from typing import Iterator

import numpy as np

from ..experiment.encoding import encode
from .pipeline_cache import _deterministic, reuse_plan

# Parameters that do not change a dense Cholesky solution (the solver's iterations, its seed, the copy).
_RIDGE_INERT = {"alpha", "copy_X", "max_iter", "tol", "random_state"}  # (KernelRidge has none of them but alpha)
# Reciprocal condition number above which the path solves for the test rows (see CholeskyPath.predict):
# its rounding then differs from scikit-learn's by 1e-11 at most in the cases measured (tests/test_columns.py).
_RCOND_REGROUP = 1e-5


def shared_predictions(estimator, candidates: list[dict], X_train, Y_train: np.ndarray, X_test,
                       fit_params: dict | None = None, columns: list[np.ndarray] | None = None
                       ) -> Iterator[tuple[int, np.ndarray | None, float]]:
    """Predictions of each candidate on ``X_test``, the fits they share made once.

    Parameters
    ----------
    estimator : estimator
        A Pipeline, or a single estimator (then only a Ridge or KernelRidge grid is shared).
    candidates : list of dict
        Decoded parameter settings.
    X_train, X_test : array-like
    Y_train : ndarray of shape (n_train, k)
    fit_params : dict, default=None
        The fits' keyword arguments (sample weights...): with any, nothing is shared.
    columns : list of ndarray, default=None
        The columns of ``Y_train`` each candidate is fitted on (None: all of them).

    Yields
    ------
    candidate, predictions, seconds
        Predictions of shape (n_test, n_columns), or None where the caller must fit that
        candidate itself (every candidate when nothing is shared); seconds: its part of the
        time spent (a shared fit's time split evenly).
    """
    groups = None if fit_params else _groups(estimator, candidates)
    if groups is None:
        return ((c, None, 0.0) for c in range(len(candidates)))
    return _predict_groups(estimator, candidates, groups, X_train, Y_train, X_test, columns)


def _groups(estimator, candidates: list[dict]) -> list[list[int]] | None:
    """Candidates whose leading steps fit the same way, or None when no fit can be shared."""
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    if len(candidates) < 2:
        return None
    if type(estimator) is not Pipeline:
        return [list(range(len(candidates)))] if _path_key(estimator) is not None else None
    try:
        encoded = [encode(c) for c in candidates]
    except (TypeError, ValueError):
        return None
    plan = reuse_plan(estimator, encoded)
    if plan is None:
        return None
    groups: dict[str, list[int]] = {}
    for n, keys in enumerate(plan):
        groups.setdefault(keys[-1], []).append(n)
    for indices in groups.values():
        try:
            pipe = clone(estimator).set_params(**candidates[indices[0]])
        except Exception:  # an invalid setting: each candidate's own fit reports it
            return None
        if not all(_deterministic(step) for _, step in pipe.steps[:-1]):
            return None  # each candidate's own fit of that step would differ
    return list(groups.values()) if len(groups) < len(candidates) else None


def _predict_groups(estimator, candidates, groups, X_train, Y_train, X_test, columns):
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    fitted_y = Y_train[:, 0] if Y_train.shape[1] == 1 else Y_train  # what a Pipeline's steps are given
    for indices in groups:
        start = time.perf_counter()
        try:
            models = [clone(estimator).set_params(**candidates[c]) for c in indices]
            finals = [m.steps[-1][1] if type(m) is Pipeline else m for m in models]
            Xt_train, Xt_test = X_train, X_test
            if type(models[0]) is Pipeline and len(models[0].steps) > 1:
                prefix = models[0][:-1]
                Xt_train = prefix.fit_transform(X_train, fitted_y)
                Xt_test = prefix.transform(X_test)
        except Exception:  # the caller's own fits say what failed, as scikit-learn's would
            yield from ((c, None, 0.0) for c in indices)
            continue
        shared = (time.perf_counter() - start) / len(indices)
        keys = [_path_key(f) for f in finals]
        paths: dict = {}  # the finals that differ only in alpha share a path (built at the first of them)
        for c, final, key in zip(indices, finals, keys):
            start = time.perf_counter()
            cols = None if columns is None else columns[c]
            try:
                if key is not None and key not in paths:
                    paths[key] = None  # if building it fails, each of them is fitted on its own
                    paths[key] = CholeskyPath.for_models([f for f, k in zip(finals, keys) if k == key], Xt_train,
                                                         Y_train, Xt_test)
                path = paths.get(key)
                if path is not None:
                    predictions = path.predict(final.alpha, cols)
                else:
                    Y = Y_train if cols is None else Y_train[:, cols]
                    final.fit(Xt_train, Y[:, 0] if Y.shape[1] == 1 else Y)
                    predictions = np.asarray(final.predict(Xt_test)).reshape(_n_rows(Xt_test), -1)
            except Exception:
                predictions = None
            yield c, predictions, shared + time.perf_counter() - start


def _path_key(final) -> tuple | None:
    """What a Ridge or KernelRidge is besides its alpha (equal keys: one path), None for other estimators."""
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.linear_model import Ridge

    if type(final) not in (Ridge, KernelRidge):
        return None
    return type(final).__name__, repr(sorted((k, v) for k, v in final.get_params().items() if k not in _RIDGE_INERT))


def _n_rows(X) -> int:
    return X.shape[0]


class CholeskyPath:
    """A penalised least-squares solution for several alphas from one Gram matrix: ``test A^-1 rhs``
    with ``A = gram + alpha I``, LAPACK's posv (potrf then potrs) as ``scipy.linalg.solve(assume_a="pos")``
    in scikit-learn's Ridge and KernelRidge.

    Parameters
    ----------
    gram : ndarray of shape (m, m)
    rhs : ndarray of shape (m, k)
    test : ndarray of shape (n_test, m)
        The test rows in the same space as ``gram``.
    offset : ndarray of shape (k,)
        Added to every prediction (the intercept's y mean).
    null_constant : bool
        Whether the constant vector is in gram's null space while ``test``'s rows and ``rhs``'s columns
        are orthogonal to it (the dual Gram matrix of centred X).
    """

    def __init__(self, gram: np.ndarray, rhs: np.ndarray, test: np.ndarray, offset: np.ndarray,
                 null_constant: bool = False) -> None:
        self.gram, self.rhs, self.test, self.offset, self.null_constant = gram, rhs, test, offset, null_constant

    @classmethod
    def for_models(cls, finals: list, X, Y: np.ndarray, X_test) -> "CholeskyPath | None":
        """The path of a group of Ridges, or of KernelRidges, that differ only in a positive scalar
        ``alpha``, fitted on dense float64 finite data, or None."""
        from sklearn.kernel_ridge import KernelRidge
        from sklearn.linear_model import Ridge

        kind = type(finals[0])
        if kind not in (Ridge, KernelRidge) or not all(type(f) is kind for f in finals):
            return None
        params = [{k: v for k, v in f.get_params().items() if k not in _RIDGE_INERT} for f in finals]
        if any(p != params[0] for p in params) or not all(
                isinstance(f.alpha, numbers.Real) and not isinstance(f.alpha, bool) and f.alpha > 0 for f in finals):
            return None
        if not all(isinstance(a, np.ndarray) and a.dtype == np.float64 and a.ndim == 2 for a in (X, X_test)):
            return None
        if Y.dtype != np.float64 or not all(np.isfinite(a).all() for a in (X, Y, X_test)):
            return None  # the estimator's fit would refuse it: the caller's fit raises as it should
        if kind is Ridge:
            if params[0]["solver"] not in ("auto", "cholesky") or params[0]["positive"]:
                return None
            return RidgePath(X, Y, X_test, params[0]["fit_intercept"])
        if params[0]["kernel"] == "precomputed":
            return None
        # KernelRidge.fit: K = its kernel of X, dual = (K + alpha I)^-1 y; predict: kernel(X_test, X) @ dual.
        return cls(finals[0]._get_kernel(X), Y, finals[0]._get_kernel(X_test, X), np.zeros(Y.shape[1]))

    def predict(self, alpha: float, columns: np.ndarray | None = None) -> np.ndarray:
        """Predictions on the test rows of the model of penalty ``alpha`` fitted on ``columns`` of Y
        (all: None)."""
        from scipy.linalg import LinAlgError, lapack

        rhs, offset = (self.rhs, self.offset) if columns is None else (self.rhs[:, columns], self.offset[columns])
        A = self.gram.copy()
        A.flat[::A.shape[0] + 1] += alpha
        norm = np.abs(A).sum(axis=0).max()
        # With a null constant direction, A's eigenvalue there is alpha alone, but nothing the predictions
        # involve has a component along it: adding a multiple of the constant matrix changes only that
        # eigenvalue, and gives the condition that matters.
        deflated = A + np.trace(A) / A.shape[0] ** 2 if self.null_constant else None
        # Not positive definite: the caller's plain fit does what scikit-learn does.
        factor, info = lapack.dpotrf(A, overwrite_a=True)
        if info != 0:
            raise LinAlgError(f"dpotrf: info={info}")
        rcond = _rcond(factor, norm) if deflated is None else _rcond(*_factor_and_norm(deflated))
        if rcond >= _RCOND_REGROUP:
            # test A^-1 rhs with A^-1 applied to the n_test test rows instead of the k columns: the same
            # product grouped the other way, whose rounding differs by about eps / rcond.
            solution, info = lapack.dpotrs(factor, self.test.T)
            predictions = solution.T @ rhs
        else:  # ill-conditioned: scikit-learn's grouping, the solution for the columns first
            solution, info = lapack.dpotrs(factor, rhs)
            predictions = self._predict_from(solution)
        if info != 0:
            raise LinAlgError(f"dpotrs: info={info}")
        return predictions + offset

    def _predict_from(self, solution: np.ndarray) -> np.ndarray:
        """The predictions from the solution for the columns, grouped as the estimator's predict."""
        return self.test @ solution


class RidgePath(CholeskyPath):
    """Ridge's dense Cholesky solution for several alphas from one Gram matrix.

    Parameters
    ----------
    X : ndarray of shape (n, p), float64
    Y : ndarray of shape (n, k), float64
    X_test : ndarray of shape (n_test, p), float64
    fit_intercept : bool
    """

    def __init__(self, X: np.ndarray, Y: np.ndarray, X_test: np.ndarray, fit_intercept: bool) -> None:
        if fit_intercept:  # as sklearn.linear_model._base._preprocess_data on dense X without weights
            X_offset = X.mean(axis=0)
            X, X_test = X - X_offset, X_test - X_offset
            y_offset = Y.mean(axis=0)
            Y = Y - y_offset
        else:
            y_offset = np.zeros(Y.shape[1])
        self.kernel = X.shape[1] > X.shape[0]  # the choice of sklearn's cholesky solver
        self.X, self.X_test = X, X_test
        if self.kernel:  # Ridge solves for the dual coefficients, then forms coef = X^T dual
            super().__init__(X @ X.T, Y, X_test @ X.T, y_offset, null_constant=fit_intercept)
        else:
            super().__init__(X.T @ X, X.T @ Y, X_test, y_offset)

    def _predict_from(self, solution: np.ndarray) -> np.ndarray:
        return self.X_test @ (self.X.T @ solution) if self.kernel else self.X_test @ solution


def _factor_and_norm(A: np.ndarray) -> tuple[np.ndarray | None, float]:
    from scipy.linalg import lapack

    factor, info = lapack.dpotrf(A)
    return (factor if info == 0 else None), np.abs(A).sum(axis=0).max()


def _rcond(factor: np.ndarray | None, norm: float) -> float:
    """The reciprocal condition number of the matrix of 1-norm ``norm`` and Cholesky factor ``factor``
    (0 without a factor: not positive definite)."""
    from scipy.linalg import lapack

    return 0.0 if factor is None else lapack.dpocon(factor, norm)[0]
