"""A user-written estimator: an elastic net by cyclic coordinate descent.

It is not scikit-learn's, but it follows scikit-learn's conventions, which is
all mempamal needs: parameters set in ``__init__`` and returned by
``get_params`` (BaseEstimator provides it), ``fit(X, y)`` returning self,
``predict(X)``, and ``score`` (RegressorMixin: r2). It lives in a module of
its own so that the tasks, which run in other processes (or on other
machines), can import it: put such a module in an installed package, or in a
directory on PYTHONPATH.

It minimises, as ``sklearn.linear_model.ElasticNet`` does::

    1 / (2 * n_samples) * ||y - X w - b||^2
    + alpha * l1_ratio * ||w||_1 + 0.5 * alpha * (1 - l1_ratio) * ||w||^2
"""
import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data


class SimpleElasticNet(RegressorMixin, BaseEstimator):
    """Elastic net regression by coordinate descent.

    Parameters
    ----------
    alpha : float, default=1.0
        Strength of the penalty.
    l1_ratio : float, default=0.5
        Mix of the L1 (1.0: lasso) and L2 (0.0: ridge) penalties.
    max_iter : int, default=1000
        Passes over the coefficients at most.
    tol : float, default=1e-6
        Stop when no coefficient moves by more than ``tol`` in a pass.
    """

    def __init__(self, alpha=1.0, l1_ratio=0.5, max_iter=1000, tol=1e-6):
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X, y):
        X, y = validate_data(self, X, y, y_numeric=True)
        n_samples, n_features = X.shape
        x_mean, y_mean = X.mean(axis=0), y.mean()
        Xc, yc = X - x_mean, y - y_mean  # the intercept is not penalised: fit centred data
        norms = (Xc ** 2).sum(axis=0) / n_samples
        l1, l2 = self.alpha * self.l1_ratio, self.alpha * (1.0 - self.l1_ratio)
        w = np.zeros(n_features)
        residual = yc.copy()
        for self.n_iter_ in range(1, self.max_iter + 1):
            largest_step = 0.0
            for j in range(n_features):
                if norms[j] == 0.0:
                    continue
                rho = Xc[:, j] @ residual / n_samples + norms[j] * w[j]
                new = np.sign(rho) * max(abs(rho) - l1, 0.0) / (norms[j] + l2)
                if new != w[j]:
                    residual -= Xc[:, j] * (new - w[j])
                    largest_step = max(largest_step, abs(new - w[j]))
                    w[j] = new
            if largest_step <= self.tol:
                break
        self.coef_ = w
        self.intercept_ = y_mean - x_mean @ w
        return self

    def predict(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return X @ self.coef_ + self.intercept_
