"""The stacked computation (mempamal.tasks.columns) against scikit-learn, the oracle: every column of a
chunk gets cross_validate(GridSearchCV(...))'s and permutation_test_score's numbers for its analysis."""
import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import ElasticNet, LinearRegression, Ridge
from sklearn.metrics import get_scorer, make_scorer, max_error
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold, cross_validate, permutation_test_score
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mempamal.experiment.stacking import columns_per_chunk
from mempamal.experiment.permutations import permutation_indices, pvalues
from mempamal.tasks import columns

TOL = dict(rtol=0, atol=1e-9)


def _data(n=60, p=8, q=3, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, p)
    Y = X[:, :q] * 0.8 + X @ rng.randn(p, q) * 0.2 + rng.randn(n, q)
    return X, Y


def _splits(X, y, outer, inner, groups=None):
    out = []
    for train, test in outer.split(X, y, groups):
        g = None if groups is None else groups[train]
        inner_splits = [] if inner is None else [(train[a], train[b]) for a, b in inner.split(X[train], y[train], g)]
        out.append((train, test, inner_splits))
    return out


def _stacked(estimator, candidates, X, y, folds, scorers, refit, columns_, indices, block=1, n_chunks=2,
             fold_params=None):
    """Every fold of every column, the columns cut in n_chunks chunks: (best, test scores, predictions) lists."""
    Y = columns.stack_y(y, columns_, indices)
    n_blocks = Y.shape[1] // block
    bounds = np.linspace(0, n_blocks, n_chunks + 1).astype(int)
    results = []
    for train, test, inner in folds:
        parts = [columns.outer_fold(estimator, candidates, X, Y[:, a * block:b * block], train, test, inner, scorers,
                                    refit, block=block, fold_params=fold_params)
                 for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        results.append((np.concatenate([p.best for p in parts]),
                        {m: np.concatenate([p.test[m] for p in parts]) for m in scorers},
                        np.concatenate([p.predictions for p in parts], axis=1)))
    return results


def _check_target(estimator, grid, X, y_t, outer, inner, scoring, refit, results, col, groups=None, params=None):
    """Column ``col`` of the stacked results against cross_validate(GridSearchCV(...)) on y_t."""
    model = GridSearchCV(estimator, grid, cv=inner, scoring=scoring, refit=refit) if grid is not None else estimator
    cv = cross_validate(model, X, y_t, cv=outer, scoring=scoring, return_estimator=True, return_indices=True,
                        groups=groups, params=params)
    for o, (best, scores, predictions) in enumerate(results):
        fitted = cv["estimator"][o]
        if grid is not None:
            assert best[col] == fitted.best_index_, (o, col)
        for m in scores:
            np.testing.assert_allclose(scores[m][col], cv[f"test_{m}"][o], **TOL)
        test = cv["indices"]["test"][o]
        np.testing.assert_allclose(predictions[:, col], fitted.predict(X[test] if not hasattr(X, "iloc")
                                                                        else X.iloc[test]), **TOL)


def _run_per_target(estimator, grid, X, Y, outer, inner, scoring=("r2", "neg_mean_squared_error"), refit="r2",
                    n_permutations=4, groups=None, n_chunks=2):
    from sklearn.model_selection import ParameterGrid

    candidates = list(ParameterGrid(grid)) if grid is not None else None
    scorers = {m: get_scorer(m) for m in scoring}
    n, q = Y.shape
    indices = permutation_indices(n, groups, n_permutations, 0)
    cols = [(t, p) for t in range(q) for p in range(-1, n_permutations)]
    folds = _splits(np.asarray(X), Y[:, 0], outer, inner, groups)
    results = _stacked(estimator, candidates, X, Y, folds, scorers, refit, cols, indices, n_chunks=n_chunks)
    for t in range(q):
        _check_target(estimator, grid, X, Y[:, t], outer, inner, list(scoring), refit, results,
                      cols.index((t, -1)), groups)
    if n_permutations:
        model = GridSearchCV(estimator, grid, cv=inner, scoring=refit) if grid is not None else estimator
        for t in range(q):
            score, perm_scores, pvalue = permutation_test_score(model, X, Y[:, t], cv=outer, groups=groups,
                                                                n_permutations=n_permutations, random_state=0,
                                                                scoring=refit)
            mine = np.array([[r[1][refit][cols.index((t, p))] for r in results]
                             for p in range(-1, n_permutations)]).mean(axis=1)
            np.testing.assert_allclose(mine[0], score, **TOL)
            np.testing.assert_allclose(mine[1:], perm_scores, **TOL)
            np.testing.assert_allclose(pvalues(mine[:1], mine[None, 1:])[0], pvalue, **TOL)
    return results


OUTER, INNER = KFold(4, shuffle=True, random_state=0), KFold(3)


@pytest.mark.parametrize("estimator, grid", [
    (Ridge(), {"alpha": np.logspace(-2, 3, 5)}),
    (KernelRidge(kernel="rbf"), {"alpha": [0.1, 1.0], "gamma": [0.01, 0.1]}),
    (KNeighborsRegressor(), {"n_neighbors": [1, 3, 7]}),
    (ElasticNet(l1_ratio=0.5, tol=1e-10, max_iter=10000), {"alpha": [0.01, 0.1, 1.0]}),
    (LinearRegression(), None),
    (make_pipeline(StandardScaler(), PCA(4), Ridge()), {"ridge__alpha": [0.1, 10.0, 1000.0]}),
])
def test_per_target_matches_sklearn(estimator, grid):
    X, Y = _data()
    _run_per_target(estimator, grid, X, Y, OUTER, INNER)


def test_column_transformer_on_dataframe():
    pd = pytest.importorskip("pandas")
    X, Y = _data(q=2)
    frame = pd.DataFrame(X[:, :4], columns=list("abcd"))
    frame["cat"] = pd.Categorical(np.where(X[:, 4] > 0, "u", "v"))
    pipe = make_pipeline(ColumnTransformer([("num", StandardScaler(), list("abcd")),
                                            ("cat", OneHotEncoder(), ["cat"])]), Ridge())
    _run_per_target(pipe, {"ridge__alpha": [0.1, 10.0]}, frame, Y, OUTER, INNER, n_permutations=2)


def test_group_kfold_permutations_within_groups():
    X, Y = _data(q=2)
    groups = np.repeat(np.arange(12), 5)
    _run_per_target(Ridge(), {"alpha": [0.1, 10.0, 1000.0]}, X, Y, GroupKFold(4), INNER, groups=groups)


def test_sample_weight():
    X, Y = _data(q=2)
    w = np.random.RandomState(1).uniform(0.5, 2.0, X.shape[0])
    grid = {"alpha": [0.1, 10.0, 1000.0]}
    candidates = [{"alpha": a} for a in grid["alpha"]]
    scorers = {"r2": get_scorer("r2")}

    def fold_params(stage, train, test):  # GridSearchCV: to fit and the inner scorers; cross_validate: fit only
        return {"sample_weight": w[train]}, ({"r2": {"sample_weight": w[test]}} if stage == "inner" else {})

    folds = _splits(X, Y[:, 0], OUTER, INNER)
    cols = [(0, -1), (1, -1)]
    results = _stacked(Ridge(), candidates, X, Y, folds, scorers, "r2", cols, None, fold_params=fold_params)
    for t in range(2):
        _check_target(Ridge(), grid, X, Y[:, t], OUTER, INNER, ["r2"], "r2", results, t,
                      params={"sample_weight": w})


def test_multioutput_blocks():
    """per_target=False: a permutation of a 2-D y is a block of columns, selected on the averaged score."""
    X, Y = _data(q=3)
    grid = {"alpha": np.logspace(-2, 4, 6)}
    candidates = [{"alpha": a} for a in grid["alpha"]]
    scoring = ["r2", "neg_mean_absolute_error"]
    scorers = {m: get_scorer(m) for m in scoring}
    n_permutations = 3
    indices = permutation_indices(X.shape[0], None, n_permutations, 0)
    cols = [(None, p) for p in range(-1, n_permutations)]
    folds = _splits(X, Y, OUTER, INNER)
    results = _stacked(Ridge(), candidates, X, Y, folds, scorers, "r2", cols, indices, block=3)
    model = GridSearchCV(Ridge(), grid, cv=INNER, scoring=scoring, refit="r2")
    cv = cross_validate(model, X, Y, cv=OUTER, scoring=scoring, return_estimator=True, return_indices=True)
    for o, (best, scores, predictions) in enumerate(results):
        assert best[0] == cv["estimator"][o].best_index_
        for m in scoring:
            np.testing.assert_allclose(scores[m][0], cv[f"test_{m}"][o], **TOL)
        np.testing.assert_allclose(predictions[:, :3], cv["estimator"][o].predict(X[cv["indices"]["test"][o]]), **TOL)
    score, perm_scores, _ = permutation_test_score(GridSearchCV(Ridge(), grid, cv=INNER, scoring="r2"), X, Y,
                                                   cv=OUTER, n_permutations=n_permutations, random_state=0,
                                                   scoring="r2")
    mine = np.array([r[1]["r2"] for r in results]).mean(axis=0)
    np.testing.assert_allclose(mine, [score, *perm_scores], **TOL)


def test_any_scorer_one_call_per_block():
    """A scorer without multioutput="raw_values" is called once per column: max_error's own numbers."""
    X, Y = _data(q=2)
    scorer = make_scorer(max_error, greater_is_better=False)
    assert columns.BlockScorer(scorer).raw is None
    assert columns.BlockScorer(get_scorer("neg_root_mean_squared_error")).raw is not None
    grid = {"alpha": [0.1, 10.0, 1000.0]}
    candidates = [{"alpha": a} for a in grid["alpha"]]
    folds = _splits(X, Y[:, 0], OUTER, INNER)
    results = _stacked(Ridge(), candidates, X, Y, folds, {"me": scorer}, "me", [(0, -1), (1, -1)], None)
    for t in range(2):
        _check_target(Ridge(), grid, X, Y[:, t], OUTER, INNER, {"me": scorer}, "me", results, t)


def test_failed_fit_falls_back_to_blocks():
    """A fit failing for one column fails that column only (error_score), as its own analysis would."""
    X, Y = _data(q=2)
    Y[:, 1] = np.inf  # Ridge refuses it: stacked, both would fail; block by block, only column 1
    scorers = {"r2": get_scorer("r2")}
    train, test = np.arange(40), np.arange(40, 60)
    with pytest.warns(UserWarning, match="a fit failed"):
        tables, n_failed, _ = columns.search(Ridge(), [{"alpha": 1.0}], X, Y, [(train, test)], scorers)
    assert np.isfinite(tables["r2"][0]).all() and np.isnan(tables["r2"][1]).all()
    assert n_failed.tolist() == [0, 1]


def test_select_ties_and_nan():
    table = np.array([[[1.0, 1.0], [1.0, 1.0], [0.5, 0.5]],
                      [[np.nan, 1.0], [0.0, 0.0], [0.2, 0.2]],
                      [[np.nan, np.nan], [np.nan, np.nan], [np.nan, np.nan]]])
    assert columns.select(table).tolist() == [0, 2, 0]


def test_columns_per_chunk():
    assert columns_per_chunk(300, 200, 20020, 1, budget=2e9, min_chunks=4) == 5005  # 4 chunks for the workers
    assert columns_per_chunk(300, 200, 33, 1, min_chunks=4) == 33  # too few columns to be worth two tasks
    assert columns_per_chunk(300, 200, 1010, 1, min_chunks=4) == 505
    small = columns_per_chunk(500, 1000, 20020, 1, budget=5e7, min_chunks=2)
    assert 1 <= small < 20020 and 8 * small * (3 * 500 + 2 * 1000) <= 5e7
    assert columns_per_chunk(10, 10, 5, 3) == 5


@pytest.mark.parametrize("n, p, fit_intercept", [(40, 60, True), (40, 60, False), (60, 8, False)])
def test_ridge_path_matches_sklearn(n, p, fit_intercept):
    """The alphas of a Ridge grid solved from one Gram matrix per split (mempamal.tasks.shared_fits):
    the dual form when features outnumber samples, the primal otherwise, as Ridge's cholesky solver."""
    X, Y = _data(n=n, p=p, q=2)
    pipe = make_pipeline(StandardScaler(), Ridge(fit_intercept=fit_intercept))
    _run_per_target(pipe, {"ridge__alpha": np.logspace(-2, 3, 4)}, X, Y, OUTER, INNER, n_permutations=2)


def test_shared_fits_fit_leading_steps_once_per_split():
    import counting_steps
    from mempamal.tasks import shared_fits

    X, Y = _data(q=2)
    pipe = make_pipeline(counting_steps.CountingScaler(), Ridge())
    candidates = [{"ridge__alpha": a} for a in (0.1, 1.0, 10.0)]
    splits = [(np.arange(20, 60), np.arange(20)), (np.arange(40), np.arange(40, 60))]
    counting_steps.FITS.clear()
    tables, _, _ = columns.search(pipe, candidates, X, Y, splits, {"r2": get_scorer("r2")})
    assert len(counting_steps.FITS) == len(splits)  # not once per candidate
    for c, params in enumerate(candidates):
        for i, (train, test) in enumerate(splits):
            for t in range(2):
                single = make_pipeline(StandardScaler(), Ridge()).set_params(**params).fit(X[train], Y[train, t])
                np.testing.assert_allclose(tables["r2"][t, c, i], single.score(X[test], Y[test, t]), **TOL)
    # One candidate: nothing shared, left to the caller's fit.
    assert [p for _, p, _ in shared_fits.shared_predictions(pipe, candidates[:1], X, Y, X)] == [None]


def test_failed_fit_falls_back_to_blocks_with_shared_fits():
    """A non-finite column is left to Ridge's own fit (which refuses it): it fails alone, as in its analysis."""
    X, Y = _data(q=2)
    Y[:, 1] = np.inf
    train, test = np.arange(40), np.arange(40, 60)
    with pytest.warns(UserWarning, match="a fit failed"):
        tables, n_failed, _ = columns.search(Ridge(), [{"alpha": 1.0}, {"alpha": 10.0}], X, Y, [(train, test)],
                                             {"r2": get_scorer("r2")})
    assert np.isfinite(tables["r2"][0]).all() and np.isnan(tables["r2"][1]).all()
    assert n_failed.tolist() == [0, 2]


@pytest.mark.parametrize("n, p, collinear, fit_intercept", [(60, 20, 0.0, True), (40, 120, 0.0, True),
                                                            (60, 20, 0.999, True), (40, 120, 0.999, True),
                                                            (40, 120, 0.999, False)])
def test_ridge_path_predicts_as_ridge(n, p, collinear, fit_intercept):
    """Nearly collinear features make A ill-conditioned for small alphas: the path then forms the
    coefficients first, as Ridge does, and stays within 1e-9 of its predictions."""
    from mempamal.tasks.shared_fits import RidgePath

    rng = np.random.RandomState(0)
    Z = rng.randn(n + 20, p)
    X = StandardScaler().fit_transform(collinear * Z[:, :1] + (1 - collinear) * Z)
    Y = rng.randn(n + 20, 5)
    path = RidgePath(X[:n], Y[:n], X[n:], fit_intercept)
    for alpha in np.logspace(-2, 4, 7):
        expected = Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(X[:n], Y[:n]).predict(X[n:])
        np.testing.assert_allclose(path.predict(alpha), expected, rtol=0, atol=1e-9 * np.abs(expected).max())
        np.testing.assert_allclose(path.predict(alpha, np.array([3, 1])), expected[:, [3, 1]], rtol=0,
                                   atol=1e-9 * np.abs(expected).max())


def test_kernel_ridge_path_matches_sklearn():
    """A KernelRidge grid of alpha x gamma: the alphas of each gamma solved from one kernel matrix."""
    from mempamal.tasks import shared_fits

    calls = []
    original = shared_fits.CholeskyPath.predict

    def counted(self, *args, **kwargs):
        calls.append(type(self))
        return original(self, *args, **kwargs)

    shared_fits.CholeskyPath.predict = counted
    try:
        X, Y = _data(q=2)
        _run_per_target(make_pipeline(StandardScaler(), KernelRidge(kernel="rbf")),
                        {"kernelridge__alpha": [0.01, 1.0], "kernelridge__gamma": [0.01, 0.1]}, X, Y, OUTER, INNER,
                        n_permutations=2)
    finally:
        shared_fits.CholeskyPath.predict = original
    assert calls and set(calls) == {shared_fits.CholeskyPath}


@pytest.mark.parametrize("kernel, gamma", [("rbf", 0.01), ("rbf", 1.0), ("linear", None), ("poly", 0.1)])
def test_kernel_ridge_path_predicts_as_kernel_ridge(kernel, gamma):
    """The linear kernel of 10 features on 90 samples is rank-deficient: small alphas are ill-conditioned."""
    from mempamal.tasks.shared_fits import CholeskyPath

    rng = np.random.RandomState(0)
    X, Y = rng.randn(120, 10), rng.randn(120, 4)
    for alpha in np.logspace(-3, 3, 7):
        model = KernelRidge(alpha=alpha, kernel=kernel, gamma=gamma)
        path = CholeskyPath.for_models([model], X[:90], Y[:90], X[90:])
        expected = model.fit(X[:90], Y[:90]).predict(X[90:])
        np.testing.assert_allclose(path.predict(alpha), expected, rtol=0, atol=1e-9 * np.abs(expected).max())
