"""What load_results() gives to look at: tables, cv_results, predictions, frames, plots, reports.

scikit-learn is the oracle: cv_results(outer=o) must equal the cv_results_ of the
GridSearchCV that cross_validate fits on outer fold o, and predictions must equal
cross_val_predict on the same folds. Tasks run in-process (run_task, the same
code path as their commands) to keep these tests fast.
"""
import json

import matplotlib
import numpy as np
import pytest
from sklearn.datasets import load_iris, make_regression
from sklearn.linear_model import ElasticNet, LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mempamal import Experiment, load_results
from mempamal.tasks import run_task
from mempamal.workdir.workflow import load_workflow

from conftest import assert_params_equal, sklearn_nested

matplotlib.use("Agg")


def run_inline(workdir):
    for task in load_workflow(workdir).tasks:
        run_task(workdir, task.id, log=task.log)
    return load_results(workdir)


@pytest.fixture(scope="module")
def grid2d(tmp_path_factory):
    """Regression, a 2-D grid (log-spaced alpha x l1_ratio), two metrics."""
    X, y = make_regression(n_samples=60, n_features=8, noise=5.0, random_state=0)
    grid = {"alpha": np.logspace(-2, 1, 4), "l1_ratio": [0.2, 0.5, 0.9]}
    outer, inner = KFold(3, shuffle=True, random_state=0), KFold(3)
    scoring = {"r2": "r2", "mse": "neg_mean_squared_error"}
    workdir = tmp_path_factory.mktemp("grid2d") / "run"
    Experiment(ElasticNet(), cv=outer, param_grid=grid, inner_cv=inner, scoring=scoring,
               refit="r2").write(X, y, workdir)
    oracle = sklearn_nested(ElasticNet(), grid, X, y, cv=outer, inner_cv=inner, scoring=scoring, refit="r2")
    return run_inline(workdir), oracle, (X, y, grid, outer, inner)


@pytest.fixture(scope="module")
def grid1d(tmp_path_factory):
    """Classification, a 1-D log grid of C, one metric."""
    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    grid = {"logisticregression__C": np.logspace(-2, 2, 5)}
    outer, inner = StratifiedKFold(3, shuffle=True, random_state=0), StratifiedKFold(2)
    workdir = tmp_path_factory.mktemp("grid1d") / "run"
    Experiment(pipe, cv=outer, param_grid=grid, inner_cv=inner, scoring="f1_weighted").write(X, y, workdir)
    oracle = sklearn_nested(pipe, grid, X, y, cv=outer, inner_cv=inner, scoring="f1_weighted")
    return run_inline(workdir), oracle, (X, y, pipe, grid, outer, inner)


def assert_cv_results_equal(mine, theirs):
    assert set(mine) == set(k for k in theirs if "train" not in k)
    for key, value in theirs.items():
        if key == "params":
            for a, b in zip(mine[key], value, strict=True):
                assert_params_equal(a, b)
        elif key.startswith("param_"):
            assert list(mine[key]) == list(value), key
        elif key.startswith("rank_"):
            np.testing.assert_array_equal(mine[key], value, err_msg=key)
        elif "time" in key:
            assert mine[key].shape == value.shape
        else:
            np.testing.assert_allclose(mine[key], value, rtol=0, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("case", ["grid1d", "grid2d"])
def test_cv_results_equal_gridsearchcv(case, request):
    res, oracle, _ = request.getfixturevalue(case)
    for o, search in enumerate(oracle["estimator"]):
        assert_cv_results_equal(res.cv_results(outer=o), search.cv_results_)


def test_cv_results_refuses_bad_fold(grid1d):
    res, _, _ = grid1d
    with pytest.raises(ValueError, match=r"outer: expected an outer fold index in \[0, 3\)"):
        res.cv_results(outer=3)


def test_predictions_in_sample_order_as_cross_val_predict(grid1d):
    res, oracle, (X, y, pipe, grid, outer, inner) = grid1d
    # What cross_val_predict computes, from the searches cross_validate already fitted on the same folds.
    expected = np.empty_like(y)
    for search, (_, test) in zip(oracle["estimator"], outer.split(X, y), strict=True):
        expected[test] = search.predict(X[test])
    np.testing.assert_array_equal(res.predictions, expected)


def test_summary_is_text_and_html(grid2d):
    res, _, _ = grid2d
    summary = res.summary()
    assert isinstance(summary, str) and "r2" in summary and "mse" in summary and "alpha=" in summary
    html = summary._repr_html_()
    assert html.count("<tr>") == 2 + 1 + 1 + 3  # header, 2 metrics; header, 3 folds
    assert "alpha=" in res._repr_html_()


def test_to_frame_and_to_dict(grid2d):
    res, oracle, _ = grid2d
    frame = res.to_frame()
    assert list(frame.columns) == ["test_r2", "test_mse", "fit_time", "score_time", "param_alpha",
                                   "param_l1_ratio"]
    np.testing.assert_allclose(frame["test_r2"], oracle["test_r2"], atol=1e-12)
    assert list(frame["param_alpha"]) == [s.best_params_["alpha"] for s in oracle["estimator"]]
    doc = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert doc["best_params"][0].keys() == {"alpha", "l1_ratio"}
    assert doc["summary"]["r2"]["mean"] == pytest.approx(np.mean(oracle["test_r2"]))


def test_plot_validation_curve_on_log_axis(grid1d, tmp_path):
    res, _, _ = grid1d
    fig = res.plot()
    outer_ax, curve = fig.get_axes()
    assert curve.get_xscale() == "log"
    assert len(curve.get_lines()) == 2 * res.n_outer  # a curve and a star per fold
    fig.savefig(tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_plot_heat_map_per_fold(grid2d):
    res, _, _ = grid2d
    fig = res.plot()
    heat = [ax for ax in fig.get_axes() if ax.get_images()]
    assert len(heat) == res.n_outer
    assert heat[0].get_images()[0].get_array().shape == (4, 3)  # alpha x l1_ratio (ParameterGrid order)
    assert "(log)" in heat[0].get_ylabel() and "(log)" not in heat[0].get_xlabel()
    with pytest.raises(ValueError, match="metric: 'nope'"):
        res.plot(metric="nope")


def test_plot_without_search(tmp_path):
    X, y = load_iris(return_X_y=True)
    Experiment(LogisticRegression(), cv=3).write(X, y, tmp_path / "run")
    res = run_inline(tmp_path / "run")
    assert len(res.plot().get_axes()) == 1
    with pytest.raises(ValueError, match="no inner search"):
        res.cv_results(outer=0)


def test_missing_matplotlib_says_how_to_install(grid1d, monkeypatch):
    res, _, _ = grid1d
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'mempamal\[plot\]'"):
        res.plot()


def test_report_html_is_self_contained_and_png(grid2d, tmp_path):
    from mempamal.results.report import write_report

    res, _, _ = grid2d
    html = write_report(res.workdir, tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in html and "ElasticNet" in html
    assert "http://" not in html and "https://" not in html and "<script" not in html
    png = write_report(res.workdir, tmp_path / "report.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="output: expected a .html or .png"):
        write_report(res.workdir, tmp_path / "report.pdf")


def test_predictions_refused_when_folds_are_not_a_partition(tmp_path):
    from sklearn.model_selection import ShuffleSplit

    X, y = load_iris(return_X_y=True)
    Experiment(LogisticRegression(), cv=ShuffleSplit(2, test_size=0.3, random_state=0)).write(X, y, tmp_path / "r")
    res = run_inline(tmp_path / "r")
    assert [len(p) for p in res.test_predictions] == [45, 45]
    with pytest.raises(ValueError, match="not a partition"):
        res.predictions
