"""Pipeline prefix reuse: leading steps fitted once per setting, results bit-identical to scikit-learn."""
import numpy as np
from sklearn.datasets import load_iris, make_regression
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import counting_steps
from counting_steps import CountingScaler
from mempamal import Experiment, load_results
from mempamal.tasks.pipeline_cache import reuse_plan
from mempamal.tasks import run_task
from mempamal.workdir.workflow import load_workflow

from conftest import sklearn_nested


def run_in_process(workdir):
    """Every task in this process (so that CountingScaler's counter sees the fits)."""
    for task in load_workflow(workdir).tasks:
        run_task(workdir, task.id)


def assert_identical(res, oracle, metric):
    """Bit-identical inner and outer scores, same choices."""
    np.testing.assert_array_equal(res.test_scores[metric], oracle[f"test_{metric}"] if f"test_{metric}" in oracle
                                  else oracle["test_score"])
    for o, search in enumerate(oracle["estimator"]):
        n_inner = search.n_splits_
        mine = res.inner_scores[metric][o]
        theirs = np.array([search.cv_results_[f"split{i}_test_score"] for i in range(n_inner)]).T
        np.testing.assert_array_equal(mine, theirs)
        assert res.best_index[o] == search.best_index_


def test_later_step_grid_fits_scaler_once_per_inner_fold(workdir):
    X, y = load_iris(return_X_y=True)
    pipe = Pipeline([("scaler", CountingScaler()), ("logit", LogisticRegression())])
    grid = {"logit__C": np.logspace(-3, 3, 7)}
    outer, inner = StratifiedKFold(3, shuffle=True, random_state=0), StratifiedKFold(3)
    Experiment(pipe, cv=outer, param_grid=grid, inner_cv=inner, scoring="accuracy").write(X, y, workdir)
    counting_steps.FITS.clear()
    run_in_process(workdir)
    # One scaler fit per map task (3 x 3), one per refit (3): not 7 per map task.
    assert len(counting_steps.FITS) == 3 * 3 + 3
    oracle = sklearn_nested(pipe, grid, X, y, cv=outer, inner_cv=inner, scoring="accuracy")
    assert_identical(load_results(workdir), oracle, "accuracy")


def test_grid_over_early_step_refits_it_for_each_setting(workdir):
    X, y = load_iris(return_X_y=True)
    pipe = Pipeline([("scaler", CountingScaler()), ("logit", LogisticRegression())])
    # The scaler's settings differ between candidates: never reuse a scaler fitted with other settings.
    grid = {"scaler__with_std": [True, False], "logit__C": [0.1, 1.0, 10.0]}
    outer, inner = StratifiedKFold(3, shuffle=True, random_state=1), StratifiedKFold(3)
    Experiment(pipe, cv=outer, param_grid=grid, inner_cv=inner, scoring="accuracy").write(X, y, workdir)
    counting_steps.FITS.clear()
    run_in_process(workdir)
    # Per map task one fit with with_std=True and one with with_std=False; then one per refit.
    assert len(counting_steps.FITS) == 3 * 3 * 2 + 3
    assert sum(1 for f in counting_steps.FITS if f[1] is False) >= 3 * 3
    oracle = sklearn_nested(pipe, grid, X, y, cv=outer, inner_cv=inner, scoring="accuracy")
    assert_identical(load_results(workdir), oracle, "accuracy")


def test_three_steps_regression_grid_on_middle_and_last(workdir):
    X, y = make_regression(120, 8, noise=5, random_state=0)
    pipe = Pipeline([("scaler", StandardScaler()), ("pca", PCA(random_state=0)), ("ridge", Ridge())])
    grid = {"pca__n_components": [2, 5], "ridge__alpha": [0.01, 1.0, 100.0]}
    outer, inner = KFold(3, shuffle=True, random_state=0), KFold(3)
    Experiment(pipe, cv=outer, param_grid=grid, inner_cv=inner, scoring="neg_mean_squared_error",
               grid_chunk_size=4).write(X, y, workdir)
    run_in_process(workdir)
    oracle = sklearn_nested(pipe, grid, X, y, cv=outer, inner_cv=inner, scoring="neg_mean_squared_error")
    assert_identical(load_results(workdir), oracle, "neg_mean_squared_error")


def test_plan_shares_nothing_it_must_not():
    pipe = Pipeline([("scaler", StandardScaler()), ("logit", LogisticRegression())])
    # Parameters of the Pipeline itself, or every candidate on its own first step: no plan.
    assert reuse_plan(pipe, [{"verbose": False}, {"verbose": True}]) is None
    assert reuse_plan(pipe, [{"scaler__with_std": True}, {"scaler__with_std": False}]) is None
    assert reuse_plan(LogisticRegression(), [{"C": 1.0}, {"C": 2.0}]) is None
    plan = reuse_plan(pipe, [{"logit__C": 1.0}, {"logit__C": 2.0}])
    assert plan[0] == plan[1]
    plan = reuse_plan(pipe, [{"scaler__with_std": True, "logit__C": 1.0},
                             {"scaler__with_std": False, "logit__C": 1.0},
                             {"scaler__with_std": True, "logit__C": 2.0}])
    assert plan[0] == plan[2] != plan[1]


def test_no_reuse_when_a_step_may_write_into_its_input():
    pipe = Pipeline([("scaler", StandardScaler()), ("ridge", Ridge(copy_X=False))])
    assert reuse_plan(pipe, [{"ridge__alpha": 1.0}, {"ridge__alpha": 2.0}]) is None
    pipe = Pipeline([("scaler", StandardScaler()), ("pca", PCA(random_state=0)), ("ridge", Ridge())])
    assert reuse_plan(pipe, [{"pca__n_components": 2, "pca__copy": False},
                             {"pca__n_components": 2, "pca__copy": False}]) is None
