"""Stacked columns end to end: write() decides and says so, the "columns" tasks run on a back-end, the
gather lays out the same Results as the per-analysis path, and both equal scikit-learn's numbers."""
import json

import numpy as np
import pytest
from sklearn.feature_selection import SelectKBest, f_regression
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold, cross_validate, permutation_test_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mempamal import Experiment, load_results, run
from mempamal.workdir.status import workflow_status
from mempamal.workdir.workflow import load_workflow

TOL = dict(rtol=0, atol=1e-9)
CV, INNER, GRID = KFold(3, shuffle=True, random_state=0), KFold(3), {"alpha": [0.1, 10.0, 1000.0]}


def _data(n=45, p=6, q=3):
    rng = np.random.RandomState(0)
    X = rng.randn(n, p)
    return X, X[:, :q] + rng.randn(n, q)


def _experiment(**kw):
    return Experiment(Ridge(), cv=CV, inner_cv=INNER, param_grid=GRID, scoring=["r2", "neg_mean_squared_error"],
                      refit="r2", **kw)


def _same_results(a, b):
    for m in a.metrics:
        np.testing.assert_allclose(a.permutation_scores[m], b.permutation_scores[m], **TOL)
        np.testing.assert_allclose(a.pvalues[m], b.pvalues[m], **TOL)
        np.testing.assert_allclose(a.pvalues_fwer[m], b.pvalues_fwer[m], **TOL)


def test_per_target_stacked_equals_per_analysis_and_sklearn(tmp_path, capsys):
    X, Y = _data()
    # A small memory budget: chunks of 5 analyses, cutting targets apart (18 = 3 x (1 + 5) analyses).
    stacked = _experiment(per_target=True, n_permutations=5, column_memory=12500).write(X, Y, tmp_path / "stacked")
    assert "mempamal: stacked: 18 columns" in capsys.readouterr().out
    doc = json.loads((stacked / "experiment.json").read_text())
    assert doc["stacking"]["stacked"] and doc["stacking"]["chunk_size"] == 5 and doc["stacking"]["n_column_chunks"] == 4
    assert {t.stage for t in load_workflow(stacked).tasks} == {"columns", "gather"}
    apart = _experiment(per_target=True, n_permutations=5, stack_columns=False).write(X, Y, tmp_path / "apart")
    assert "not stacked: stack_columns=False" in capsys.readouterr().out
    run(stacked, n_jobs=2, progress=False)
    run(apart, n_jobs=2, progress=False)
    a, b = load_results(stacked), load_results(apart)
    assert "- columns stacked: 18 columns" in str(workflow_status(stacked))
    assert workflow_status(apart).to_dict()["stacking"]["stacked"] is False
    _same_results(a, b)
    for t in range(3):
        va, vb = a.targets[t], b.targets[t]
        assert va.best_params == vb.best_params
        for m in a.metrics:
            np.testing.assert_allclose(va.test_scores[m], vb.test_scores[m], **TOL)
            np.testing.assert_allclose(va.inner_scores[m], vb.inner_scores[m], **TOL)
        np.testing.assert_allclose(va.predictions, vb.predictions, **TOL)
        cv = cross_validate(GridSearchCV(Ridge(), GRID, cv=INNER, scoring="r2"), X, Y[:, t], cv=CV, scoring="r2",
                            return_estimator=True)
        np.testing.assert_allclose(va.test_scores["r2"], cv["test_score"], **TOL)
        assert va.best_index == [e.best_index_ for e in cv["estimator"]]
        score, perms, pvalue = permutation_test_score(GridSearchCV(Ridge(), GRID, cv=INNER, scoring="r2"), X, Y[:, t],
                                                      cv=CV, n_permutations=5, random_state=0, scoring="r2")
        np.testing.assert_allclose(a.permutation_scores["r2"][t], perms, **TOL)
        np.testing.assert_allclose(a.pvalues["r2"][t], pvalue, **TOL)


def test_multioutput_blocks_stacked(tmp_path, capsys):
    X, Y = _data()
    stacked = _experiment(n_permutations=4).write(X, Y, tmp_path / "stacked")
    assert "stacked: 5 columns" in capsys.readouterr().out
    apart = _experiment(n_permutations=4, stack_columns=False).write(X, Y, tmp_path / "apart")
    run(stacked, n_jobs=1, progress=False)
    run(apart, n_jobs=1, progress=False)
    a, b = load_results(stacked), load_results(apart)
    _same_results(a, b)
    assert a.best_params == b.best_params
    np.testing.assert_allclose(a.predictions, b.predictions, **TOL)
    assert a.predictions.shape == Y.shape


def test_fall_back_says_why(tmp_path, capsys):
    X, Y = _data()
    pipe = make_pipeline(StandardScaler(), SelectKBest(f_regression, k=3), Ridge())
    exp = Experiment(pipe, cv=CV, inner_cv=INNER, param_grid={"ridge__alpha": [1.0, 10.0]}, per_target=True,
                     n_permutations=2)
    workdir = exp.write(X, Y, tmp_path / "w")
    out = capsys.readouterr().out
    assert "not stacked:" in out and "'selectkbest' (SelectKBest)" in out
    assert "permute" in {t.stage for t in load_workflow(workdir).tasks}
    exp.stack_columns = True
    with pytest.raises(ValueError, match="stack_columns=True.*SelectKBest"):
        exp.write(X, Y, tmp_path / "w2")
    with pytest.raises(ValueError, match="stack_columns: expected"):
        Experiment(Ridge(), stack_columns="yes")


def test_one_target_with_sample_weight(tmp_path, capsys):
    """y 1-D: y and its permutations are the columns; per-sample weights go where scikit-learn sends them."""
    X, Y = _data()
    w = np.random.RandomState(2).uniform(0.5, 2.0, X.shape[0])
    stacked = _experiment(n_permutations=3).write(X, Y[:, 0], tmp_path / "stacked", params={"sample_weight": w})
    assert "stacked: 4 columns" in capsys.readouterr().out
    apart = _experiment(n_permutations=3, stack_columns=False).write(X, Y[:, 0], tmp_path / "apart",
                                                                     params={"sample_weight": w})
    run(stacked, n_jobs=1, progress=False)
    run(apart, n_jobs=1, progress=False)
    a, b = load_results(stacked), load_results(apart)
    _same_results(a, b)
    assert a.best_params == b.best_params and a.predictions.shape == (X.shape[0],)
    np.testing.assert_allclose(a.predictions, b.predictions, **TOL)
    for m in a.metrics:
        np.testing.assert_allclose(a.test_scores[m], b.test_scores[m], **TOL)
        np.testing.assert_allclose(a.inner_scores[m], b.inner_scores[m], **TOL)
