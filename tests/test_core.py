"""mempamal's results equal scikit-learn's nested cross-validation on the same folds."""
import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, make_classification, make_regression
from sklearn.decomposition import PCA
from sklearn.feature_selection import SelectKBest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GroupKFold, KFold, RandomizedSearchCV, StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from mempamal import Experiment, load_results, run
from mempamal.backends import WorkflowError
from mempamal.workdir.workflow import load_workflow

from conftest import assert_same_as_sklearn, sklearn_nested


def iris_case():
    X, y = load_iris(return_X_y=True)
    pipe = Pipeline([("scaler", StandardScaler()), ("logit", LogisticRegression())])
    return X, y, pipe, {"logit__C": np.logspace(-4, 5, 10)}


def test_iris_f1_weighted(workdir):
    X, y, pipe, grid = iris_case()
    outer, inner = StratifiedKFold(5, shuffle=True, random_state=0), StratifiedKFold(5)
    exp = Experiment(pipe, cv=outer, param_grid=grid, inner_cv=inner, scoring="f1_weighted")
    exp.write(X, y, workdir)
    report = run(workdir, backend="local", n_jobs=2)
    assert report.names("done") and not report.names("failed")
    res = load_results(workdir)
    oracle = sklearn_nested(pipe, grid, X, y, cv=outer, inner_cv=inner, scoring="f1_weighted")
    assert_same_as_sklearn(res, oracle, ["f1_weighted"])
    assert res.inner_scores["f1_weighted"].shape == (5, 10, 5)
    for o, search in enumerate(oracle["estimator"]):
        np.testing.assert_allclose(res.inner_scores["f1_weighted"][o],
                                   np.array([search.cv_results_[f"split{i}_test_score"] for i in range(5)]).T,
                                   rtol=0, atol=1e-12)
    assert "f1_weighted" in res.summary()


def test_breast_cancer_svc_two_metrics_refit_roc_auc(workdir):
    X, y = load_breast_cancer(return_X_y=True)
    pipe = Pipeline([("scaler", StandardScaler()), ("svc", SVC())])
    grid = {"svc__C": [0.1, 1, 10], "svc__gamma": [1e-3, 1e-2]}
    scoring = ["accuracy", "roc_auc"]
    outer, inner = StratifiedKFold(3, shuffle=True, random_state=1), StratifiedKFold(3)
    Experiment(pipe, cv=outer, param_grid=grid, inner_cv=inner, scoring=scoring, refit="roc_auc",
               grid_chunk_size=4).write(X, y, workdir)
    run(workdir, n_jobs=2)
    oracle = sklearn_nested(pipe, grid, X, y, cv=outer, inner_cv=inner, scoring=scoring, refit="roc_auc")
    assert_same_as_sklearn(load_results(workdir), oracle, scoring)


def test_diabetes_ridge_neg_mse(workdir):
    X, y = load_diabetes(return_X_y=True)
    grid = {"alpha": np.logspace(-3, 3, 7)}
    Experiment(Ridge(), cv=KFold(4, shuffle=True, random_state=0), param_grid=grid, inner_cv=3,
               scoring="neg_mean_squared_error").write(X, y, workdir)
    run(workdir)
    oracle = sklearn_nested(Ridge(), grid, X, y, cv=KFold(4, shuffle=True, random_state=0), inner_cv=3,
                            scoring="neg_mean_squared_error")
    assert_same_as_sklearn(load_results(workdir), oracle, ["neg_mean_squared_error"])


def test_group_kfold_in_both_loops(workdir):
    X, y = make_classification(120, 8, random_state=0)
    groups = np.repeat(np.arange(12), 10)
    grid = {"C": [0.01, 0.1, 1.0]}
    Experiment(LogisticRegression(), cv=GroupKFold(4), param_grid=grid, inner_cv=GroupKFold(3),
               scoring="accuracy").write(X, y, workdir, groups=groups)
    run(workdir, n_jobs=2)
    oracle = sklearn_nested(LogisticRegression(), grid, X, y, cv=GroupKFold(4), inner_cv=GroupKFold(3),
                            scoring="accuracy", groups=groups)
    assert_same_as_sklearn(load_results(workdir), oracle, ["accuracy"])


def test_no_grid_is_cross_validate(workdir):
    X, y, pipe, _ = iris_case()
    outer = StratifiedKFold(5, shuffle=True, random_state=0)
    Experiment(pipe, cv=outer, scoring="f1_weighted").write(X, y, workdir)
    run(workdir)
    res = load_results(workdir)
    oracle = cross_validate(pipe, X, y, cv=outer, scoring="f1_weighted")
    assert_same_as_sklearn(res, oracle, ["f1_weighted"])
    assert res.best_params is None
    assert len(load_workflow(workdir).tasks) == 6


def test_attributes_set_after_construction_take_effect(tmp_path):
    X, y, pipe, grid = iris_case()
    outer = StratifiedKFold(3, shuffle=True, random_state=0)
    exp = Experiment(pipe, cv=outer, param_grid=grid, inner_cv=3, scoring="f1_weighted")

    exp.param_grid = None  # no search any more: a plain cross-validation, no map task, no candidate
    workdir = exp.write(X, y, tmp_path / "plain")
    assert [t.stage for t in load_workflow(workdir).tasks] == ["refit"] * 3 + ["gather"]
    doc = json.loads((workdir / "experiment.json").read_text())
    assert doc["search"] is None and doc["candidates"] is None and doc["n_candidates"] == 0
    run(workdir, progress=False)
    res = load_results(workdir)
    assert_same_as_sklearn(res, cross_validate(pipe, X, y, cv=outer, scoring="f1_weighted"), ["f1_weighted"])
    assert res.best_params is None

    exp.scoring = "accuracy"
    workdir = exp.write(X, y, tmp_path / "accuracy")
    run(workdir, progress=False)
    res = load_results(workdir)
    assert res.metrics == ["accuracy"]
    assert_same_as_sklearn(res, cross_validate(pipe, X, y, cv=outer, scoring="accuracy"), ["accuracy"])


@pytest.mark.parametrize("attribute, value", [
    ("param_grid", {"logit__c": [1.0]}),
    ("scoring", "no_such_metric"),
    ("grid_chunk_size", 0),
    ("estimator", LogisticRegression),
])
def test_bad_attribute_set_after_construction_is_refused_as_at_construction(tmp_path, attribute, value):
    X, y, pipe, grid = iris_case()
    arguments = dict(estimator=pipe, cv=3, param_grid=grid, inner_cv=3)
    with pytest.raises((ValueError, TypeError)) as at_construction:
        Experiment(**{**arguments, attribute: value})
    exp = Experiment(**arguments)
    setattr(exp, attribute, value)
    with pytest.raises(type(at_construction.value)) as at_write:
        exp.write(X, y, tmp_path / "run")
    assert str(at_write.value) == str(at_construction.value)
    assert not (tmp_path / "run").exists()


def test_multi_target_regression_default_score(workdir):
    X, y = make_regression(80, 6, n_targets=3, noise=1.0, random_state=0)
    grid = {"alpha": [0.1, 1.0, 10.0]}
    Experiment(Ridge(), cv=3, param_grid=grid, inner_cv=3).write(X, y, workdir)
    run(workdir)
    res = load_results(workdir)
    assert res.test_predictions[0].shape[1] == 3
    oracle = sklearn_nested(Ridge(), grid, X, y, cv=3, inner_cv=3, scoring=None)
    assert_same_as_sklearn(res, oracle, ["score"])


def test_sparse_X_classification(workdir):
    X, y = make_classification(100, 20, random_state=0)
    X[np.abs(X) < 1] = 0
    X = sp.csr_matrix(X)
    grid = {"C": [0.1, 1.0]}
    Experiment(LogisticRegression(), cv=3, param_grid=grid, inner_cv=3, scoring="accuracy").write(X, y, workdir)
    assert (workdir / "data" / "X.npz").exists()
    run(workdir)
    oracle = sklearn_nested(LogisticRegression(), grid, X, y, cv=3, inner_cv=3, scoring="accuracy")
    assert_same_as_sklearn(load_results(workdir), oracle, ["accuracy"])


def test_grid_of_estimators_swaps_a_step(workdir):
    X, y = load_iris(return_X_y=True)
    pipe = Pipeline([("reduce", PCA()), ("logit", LogisticRegression())])
    grid = [{"reduce": [PCA(2), PCA(3)], "logit__C": [0.1, 1.0]},
            {"reduce": [SelectKBest(k=2)], "logit__C": [1.0]}]
    Experiment(pipe, cv=StratifiedKFold(3), param_grid=grid, inner_cv=3, scoring="accuracy").write(X, y, workdir)
    run(workdir, n_jobs=2)
    oracle = sklearn_nested(pipe, grid, X, y, cv=StratifiedKFold(3), inner_cv=3, scoring="accuracy")
    assert_same_as_sklearn(load_results(workdir), oracle, ["accuracy"])


def test_param_distributions_like_randomized_search(workdir):
    from scipy.stats import loguniform

    X, y, pipe, _ = iris_case()
    dist = {"logit__C": loguniform(1e-3, 1e3)}
    Experiment(pipe, cv=3, param_distributions=dist, n_iter=5, random_state=0, inner_cv=3,
               scoring="accuracy").write(X, y, workdir)
    run(workdir)
    oracle = sklearn_nested(pipe, dist, X, y, cv=3, inner_cv=3, scoring="accuracy",
                            search_cls=RandomizedSearchCV, n_iter=5, random_state=0)
    assert_same_as_sklearn(load_results(workdir), oracle, ["accuracy"])


def test_failing_fit_follows_error_score(workdir):
    X, y, pipe, _ = iris_case()
    # C=-1 makes LogisticRegression raise: those grid points score NaN and never win.
    grid = {"logit__C": [-1.0, 1.0]}
    Experiment(pipe, cv=3, param_grid=grid, inner_cv=3, scoring="accuracy").write(X, y, workdir)
    run(workdir)
    res = load_results(workdir)
    assert np.isnan(res.inner_scores["accuracy"][:, 0]).all()
    assert all(p["logit__C"] == 1.0 for p in res.best_params)
    assert "a fit failed" in (workdir / "logs" / "map-o0-i0-c0.log").read_text()


def test_failed_task_is_reported_and_raises(workdir):
    X, y, pipe, _ = iris_case()
    Experiment(pipe, cv=3, param_grid={"logit__C": [-1.0]}, inner_cv=3, scoring="accuracy",
               error_score="raise").write(X, y, workdir)
    with pytest.raises(WorkflowError) as info:
        run(workdir, n_jobs=2)
    message = str(info.value)
    assert "task map-o0-i0-c0 failed" in message and "logs/map-o0-i0-c0.log" in message
    assert "-m mempamal task map ." in message
    assert "not run because" in message and "gather" in message
    assert "InvalidParameterError" in (workdir / "logs" / "map-o0-i0-c0.log").read_text()


def test_commands_by_hand_equal_local_backend(tmp_path):
    X, y, pipe, _ = iris_case()
    # Few tasks: each command pays an interpreter start and scikit-learn's import.
    exp = Experiment(pipe, cv=StratifiedKFold(2, shuffle=True, random_state=0), param_grid={"logit__C": [0.1, 1, 10]},
                     inner_cv=2, scoring="f1_weighted", grid_chunk_size=2)
    by_hand, local = exp.write(X, y, tmp_path / "by_hand"), exp.write(X, y, tmp_path / "local")
    doc = json.loads((by_hand / "workflow.json").read_text())
    done = set()
    for task in doc["tasks"]:  # written in dependency order
        assert set(task["dependencies"]) <= done
        subprocess.run(task["command"], cwd=by_hand, check=True)
        done.add(task["name"])
    run(local, n_jobs=2)
    a, b = load_results(by_hand), load_results(local)
    np.testing.assert_array_equal(a.test_scores["f1_weighted"], b.test_scores["f1_weighted"])
    assert a.best_index == b.best_index


def test_resume_skips_complete_tasks(workdir):
    X, y, pipe, grid = iris_case()
    Experiment(pipe, cv=3, param_grid=grid, inner_cv=3).write(X, y, workdir)
    first = run(workdir)
    assert not first.skipped
    again = run(workdir)
    assert len(again.skipped) == len(first.outcomes) and not again.outcomes


def test_cli_run_and_results(workdir):
    X, y, pipe, grid = iris_case()
    Experiment(pipe, cv=3, param_grid=grid, inner_cv=3, scoring="accuracy").write(X, y, workdir)
    out = subprocess.run([sys.executable, "-m", "mempamal", "run", str(workdir), "-j", "2"],
                         capture_output=True, text=True, check=True).stdout
    n = len(load_workflow(workdir).tasks)
    assert out.splitlines()[-1] == f"mempamal: {n} tasks: {n} done, 0 failed, 0 not run, 0 skipped (already complete)"
    out = subprocess.run([sys.executable, "-m", "mempamal", "results", str(workdir)],
                         capture_output=True, text=True, check=True).stdout
    assert "accuracy" in out and "logit__C" in out
