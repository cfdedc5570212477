"""mempamal.model_selection against scikit-learn's own functions, called the same way.

Every result within 1e-12 of cross_validate, cross_val_score, cross_val_predict and
permutation_test_score (nested searches, DataFrames, per-sample params, groups); a second call
that returns from the cache without touching a file; a resume that reruns only what is missing;
the clear errors. The cache lives in tmp_path (MEMPAMAL_CACHE_DIR), never in the real home.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import loguniform
from sklearn import model_selection as sk
from sklearn.datasets import load_iris, make_classification
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import (GridSearchCV, GroupKFold, KFold, RandomizedSearchCV, ShuffleSplit,
                                     StratifiedKFold)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mempamal import model_selection as mm
from mempamal.model_selection.cache import ENTRY
from mempamal.workdir.layout import TaskId

ATOL = 1e-12
GRID = {"logisticregression__C": [0.1, 10.0]}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every cached workdir of a test under its tmp_path."""
    path = tmp_path / "cache"
    monkeypatch.setenv("MEMPAMAL_CACHE_DIR", str(path))
    return path


def iris():
    X, y = load_iris(return_X_y=True)
    return X, y, make_pipeline(StandardScaler(), LogisticRegression())


def assert_same_dict(mine, theirs):
    """The same keys; scores and indices equal (timings are measured, not compared)."""
    assert list(mine) == list(theirs)
    for key, value in theirs.items():
        if key == "indices":
            for part in ("train", "test"):
                for a, b in zip(mine[key][part], value[part], strict=True):
                    np.testing.assert_array_equal(a, b)
        elif key.startswith("test_"):
            np.testing.assert_allclose(mine[key], value, rtol=0, atol=ATOL, err_msg=key)
        else:
            assert mine[key].shape == value.shape and np.all(mine[key] >= 0)


def test_cross_validate_grid_search_two_outer_metrics_and_indices():
    X, y, pipe = iris()
    search = GridSearchCV(pipe, GRID, cv=StratifiedKFold(3), scoring="accuracy")
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    kwargs = dict(cv=cv, scoring=["f1_macro", "accuracy"], return_indices=True)
    assert_same_dict(mm.cross_validate(search, X, y, n_jobs=2, progress=False, **kwargs),
                     sk.cross_validate(search, X, y, **kwargs))


def core_case(name):
    """The other cases of test_core's equivalence tests, as (search, X, y, cv, scoring)."""
    import scipy.sparse as sp
    from sklearn.datasets import make_regression
    from sklearn.decomposition import PCA
    from sklearn.feature_selection import SelectKBest
    from sklearn.pipeline import Pipeline

    if name == "sparse X":
        X, y = make_classification(100, 20, random_state=0)
        X[np.abs(X) < 1] = 0
        return GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3), sp.csr_matrix(X), y, 3, "accuracy"
    if name == "grid of estimators":
        X, y = load_iris(return_X_y=True)
        pipe = Pipeline([("reduce", PCA()), ("logit", LogisticRegression())])
        grid = [{"reduce": [PCA(2), PCA(3)], "logit__C": [0.1, 1.0]}, {"reduce": [SelectKBest(k=2)]}]
        return GridSearchCV(pipe, grid, cv=3, scoring="accuracy"), X, y, StratifiedKFold(3), "accuracy"
    if name == "multi-target regression":
        X, y = make_regression(80, 6, n_targets=3, noise=1.0, random_state=0)
        return GridSearchCV(Ridge(), {"alpha": [0.1, 10.0]}, cv=3), X, y, 3, None
    X, y, pipe = iris()  # a failing fit: C=-1 raises, scores NaN and never wins
    return GridSearchCV(pipe, {"logisticregression__C": [-1.0, 1.0]}, cv=3), X, y, 3, "accuracy"


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::sklearn.exceptions.FitFailedWarning")
@pytest.mark.parametrize("name", ["sparse X", "grid of estimators", "multi-target regression", "failing fit"])
def test_core_cases_through_cross_validate(name):
    search, X, y, cv, scoring = core_case(name)
    assert_same_dict(mm.cross_validate(search, X, y, cv=cv, scoring=scoring, n_jobs=2, progress=False),
                     sk.cross_validate(search, X, y, cv=cv, scoring=scoring))


def test_outer_scoring_none_is_the_search_refit_metric():
    X, y = make_classification(90, 5, random_state=0)
    search = GridSearchCV(LogisticRegression(), {"C": [0.01, 1.0]}, cv=3, scoring=["accuracy", "roc_auc"],
                          refit="roc_auc")
    assert_same_dict(mm.cross_validate(search, X, y, cv=3, progress=False), sk.cross_validate(search, X, y, cv=3))


def test_outer_scoring_other_than_the_search_default_score_with_sample_weight():
    """The search selects with LogisticRegression.score (weighted), the outer folds are scored with f1_macro."""
    X, y = make_classification(90, 5, random_state=0)
    params = {"sample_weight": np.random.RandomState(0).uniform(0.5, 2.0, 90)}
    search = GridSearchCV(LogisticRegression(), {"C": [0.01, 1.0]}, cv=3)
    assert_same_dict(mm.cross_validate(search, X, y, cv=3, scoring="f1_macro", params=params, progress=False),
                     sk.cross_validate(search, X, y, cv=3, scoring="f1_macro", params=params))


def test_merge_scoring_keeps_the_search_metric_apart():
    from sklearn.metrics import f1_score, make_scorer

    from mempamal.model_selection._plan import merge_scoring

    assert merge_scoring("f1_macro", "accuracy", True) == (
        {"f1_macro": "f1_macro", "accuracy": "accuracy"}, "accuracy", {"score": "f1_macro"})
    assert merge_scoring(["accuracy"], "accuracy", True)[1:] == ("accuracy", {"accuracy": "accuracy"})
    # Two scorers both called "score" by scikit-learn, different: the search's is renamed.
    outer, inner = make_scorer(f1_score, average="macro"), make_scorer(f1_score, average="micro")
    merged, refit, suffixes = merge_scoring(outer, inner, True)
    assert merged == {"score": outer, "inner_score": inner} and refit == "inner_score"
    assert suffixes == {"score": "score"}
    # Equal scorers made twice are one metric.
    assert merge_scoring(outer, make_scorer(f1_score, average="macro"), True)[1] == "score"


def test_plain_estimator_and_cross_val_score():
    X, y, pipe = iris()
    cv = KFold(4, shuffle=True, random_state=1)
    assert_same_dict(mm.cross_validate(pipe, X, y, cv=cv, progress=False), sk.cross_validate(pipe, X, y, cv=cv))
    np.testing.assert_allclose(mm.cross_val_score(pipe, X, y, cv=cv, scoring="f1_weighted", progress=False),
                               sk.cross_val_score(pipe, X, y, cv=cv, scoring="f1_weighted"), rtol=0, atol=ATOL)


def test_another_back_end_and_its_options():
    pytest.importorskip("distributed")
    X, y, pipe = iris()
    search = GridSearchCV(pipe, GRID, cv=3)
    np.testing.assert_allclose(
        mm.cross_val_score(search, X, y, cv=3, backend="dask", n_jobs=1, threads_per_task=1, progress=False),
        sk.cross_val_score(search, X, y, cv=3), rtol=0, atol=ATOL)


def test_randomized_search_cross_val_score():
    X, y, pipe = iris()
    search = RandomizedSearchCV(pipe, {"logisticregression__C": loguniform(1e-3, 1e3)}, n_iter=4, cv=3,
                                random_state=0)
    np.testing.assert_allclose(mm.cross_val_score(search, X, y, cv=3, scoring="accuracy", n_jobs=2, progress=False),
                               sk.cross_val_score(search, X, y, cv=3, scoring="accuracy"), rtol=0, atol=ATOL)


def test_groups_in_both_loops_as_params():
    X, y = make_classification(80, 6, random_state=0)
    groups = np.repeat(np.arange(8), 10)
    search = GridSearchCV(LogisticRegression(), {"C": [0.01, 1.0]}, cv=GroupKFold(3))
    kwargs = dict(groups=groups, cv=GroupKFold(4), params={"groups": groups})
    assert_same_dict(mm.cross_validate(search, X, y, progress=False, **kwargs),
                     sk.cross_validate(search, X, y, **kwargs))
    with pytest.raises(ValueError, match=r"params\['groups'\] and groups differ"):
        mm.cross_validate(search, X, y, groups=groups, cv=GroupKFold(4), params={"groups": groups[::-1]})


def test_cross_val_predict_of_a_search_regression():
    rng = np.random.RandomState(0)
    X = rng.randn(60, 4)
    y = X @ [1.0, -2.0, 0.0, 0.5] + rng.randn(60) * 0.1
    search = GridSearchCV(Ridge(), {"alpha": [0.01, 1.0, 100.0]}, cv=3)
    cv = KFold(3, shuffle=True, random_state=0)
    np.testing.assert_allclose(mm.cross_val_predict(search, X, y, cv=cv, progress=False),
                               sk.cross_val_predict(search, X, y, cv=cv), rtol=0, atol=ATOL)


def test_dataframe_string_labels_and_sample_weight():
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    X, y = load_iris(return_X_y=True, as_frame=True)
    y = pd.Series(np.array(["setosa", "versicolor", "virginica"], dtype=object)[y], name="species")
    w = np.random.RandomState(0).uniform(0.5, 2.0, len(y))
    search = GridSearchCV(LogisticRegression(max_iter=500), {"C": [0.1, 1.0]}, cv=StratifiedKFold(3),
                          scoring="accuracy")
    cv = StratifiedKFold(3, shuffle=True, random_state=2)
    params = {"sample_weight": w}
    assert_same_dict(mm.cross_validate(search, X, y, cv=cv, params=params, progress=False),
                     sk.cross_validate(search, X, y, cv=cv, params=params))
    mine = mm.cross_val_predict(search, X, y, cv=cv, params=params, progress=False)
    theirs = sk.cross_val_predict(search, X, y, cv=cv, params=params)
    assert mine.dtype == theirs.dtype == object
    np.testing.assert_array_equal(mine, theirs)


def test_permutation_test_score_nested_grid_then_from_the_cache(cache):
    X, y, pipe = iris()
    search = GridSearchCV(pipe, GRID, cv=StratifiedKFold(3))
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    theirs = sk.permutation_test_score(search, X, y, cv=cv, n_permutations=9, scoring="accuracy")
    mine = mm.permutation_test_score(search, X, y, cv=cv, n_permutations=9, scoring="accuracy", n_jobs=2,
                                     progress=False)
    assert isinstance(mine[0], float) and isinstance(mine[2], float) and mine[1].shape == (9,)
    for a, b in zip(mine, theirs):
        np.testing.assert_allclose(a, b, rtol=0, atol=ATOL)

    (entry,) = mm.list_cache()
    assert entry.finished and entry.call == "permutation_test_score(GridSearchCV(...))" and entry.n_samples == 150
    before = snapshot(entry.path)
    again = mm.permutation_test_score(search, X, y, cv=cv, n_permutations=9, scoring="accuracy", n_jobs=2,
                                      progress=False)
    assert snapshot(entry.path) == before  # no task ran, no file was written
    for a, b in zip(again, mine):
        np.testing.assert_array_equal(a, b)


def test_permutation_test_score_plain_with_groups():
    X, y = make_classification(60, 5, random_state=1)
    groups = np.repeat(np.arange(6), 10)
    est = LogisticRegression()
    mine = mm.permutation_test_score(est, X, y, groups=groups, cv=GroupKFold(3), n_permutations=4,
                                     random_state=3, progress=False)
    theirs = sk.permutation_test_score(est, X, y, groups=groups, cv=GroupKFold(3), n_permutations=4, random_state=3)
    for a, b in zip(mine, theirs):
        np.testing.assert_allclose(a, b, rtol=0, atol=ATOL)


def snapshot(path: Path) -> dict:
    """Every file of a directory with its modification time (ns)."""
    return {p.relative_to(path): p.stat().st_mtime_ns for p in path.rglob("*")}


def test_an_interrupted_call_resumes_where_it_stopped(tmp_path, capsys):
    X, y, pipe = iris()
    search = GridSearchCV(pipe, GRID, cv=3)
    workdir = tmp_path / "mine"
    first = mm.cross_validate(search, X, y, cv=3, workdir=workdir, progress=False)
    assert not list((tmp_path / "cache").glob("*"))  # workdir= given: nothing cached
    # As if the run had been killed after all maps and one refit.
    for task in (TaskId("refit", outer=1), TaskId("refit", outer=2), TaskId("gather")):
        for name in task.outputs:
            (workdir / name).unlink()
    capsys.readouterr()
    again = mm.cross_validate(search, X, y, cv=3, workdir=workdir, progress=False, verbose=1)
    assert "3 done, 0 failed, 0 not run, 10 skipped" in capsys.readouterr().err
    np.testing.assert_array_equal(again["test_score"], first["test_score"])


def test_an_unseeded_splitter_is_named_in_a_warning(cache):
    X, y, pipe = iris()
    cv = KFold(3, shuffle=True)  # other folds at each call, as in scikit-learn
    for _ in range(2):
        with pytest.warns(UserWarning, match=r"cv=KFold\(.*not seeded.*cannot resume"):
            mm.cross_val_score(pipe, X, y, cv=cv, progress=False)
    assert len(mm.list_cache()) == 2  # two draws, two experiments


def test_cache_dir_list_and_clear(cache, monkeypatch, tmp_path):
    assert mm.cache_dir() == cache
    monkeypatch.delenv("MEMPAMAL_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert mm.cache_dir() == tmp_path / "xdg" / "mempamal"
        monkeypatch.delenv("XDG_CACHE_HOME")
        assert mm.cache_dir() == tmp_path / "home" / ".cache" / "mempamal"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert mm.cache_dir() == tmp_path / "home" / "Library" / "Caches" / "mempamal"
    monkeypatch.setenv("MEMPAMAL_CACHE_DIR", str(cache))

    X, y, pipe = iris()
    mm.cross_val_score(pipe, X, y, cv=3, progress=False)
    mm.cross_val_score(pipe, X, y[::-1].copy(), cv=3, progress=False)  # other data: another entry
    (cache / "not-mine").mkdir()
    entries = mm.list_cache()
    assert len(entries) == 2 and all(e.finished and e.size > 0 and (e.path / ENTRY).exists() for e in entries)
    listing = subprocess.run([sys.executable, "-m", "mempamal", "cache"], capture_output=True, text=True, check=True)
    assert "2 cached workdirs" in listing.stdout and "cross_val_score(estimator)" in listing.stdout
    assert sorted(mm.clear_cache()) == sorted(e.path for e in entries)
    assert [p.name for p in cache.iterdir()] == ["not-mine"] and mm.list_cache() == []


@pytest.mark.parametrize("function, kwargs, match", [
    ("cross_validate", {"return_estimator": True}, "never pickles fitted estimators"),
    ("cross_validate", {"return_train_score": True}, "does not score the outer training sets"),
    ("cross_validate", {"pre_dispatch": "n_jobs"}, "pre_dispatch='n_jobs'"),
    ("cross_validate", {"verbose": 2}, "no per-fit messages"),
    ("cross_validate", {"verbose": -1}, "verbose=-1"),
    ("cross_validate", {"fit_params": {}}, "unexpected keyword argument.*'fit_params'"),
    ("cross_validate", {"scheduler_address": "tcp://x:1"}, "back-end 'local'"),
    ("cross_val_score", {"scoring": ["accuracy", "f1_macro"]}, "one metric"),
    ("cross_val_predict", {"method": "predict_proba"}, "predict\\(\\) only"),
    ("cross_val_predict", {"cv": ShuffleSplit(3, test_size=0.2, random_state=0)}, "only works for partitions"),
    ("permutation_test_score", {"random_state": np.random.RandomState(0)}, "a RandomState cannot be stored"),
    ("permutation_test_score", {"scoring": ["accuracy"]}, "one metric"),
    ("permutation_test_score", {"n_permutations": 0}, "n_permutations: expected an int >= 1"),
])
def test_clear_errors_before_anything_runs(cache, function, kwargs, match):
    X, y, pipe = iris()
    with pytest.raises((ValueError, TypeError), match=match):
        getattr(mm, function)(pipe, X, y, progress=False, **kwargs)
    assert not cache.exists()  # refused before anything was written


def test_search_arguments_that_cannot_be_honoured():
    X, y, pipe = iris()
    with pytest.raises(ValueError, match=r"GridSearchCV\(refit="):
        mm.cross_validate(GridSearchCV(pipe, GRID, refit=lambda r: 0), X, y, progress=False)
    dist = {"logisticregression__C": loguniform(1e-3, 1e3)}
    with pytest.raises(ValueError, match=r"RandomizedSearchCV\(random_state=...\)"):
        mm.cross_validate(RandomizedSearchCV(pipe, dist, random_state=np.random.RandomState(0)), X, y,
                          progress=False)
    with pytest.raises(ValueError, match="supervised"):
        mm.cross_validate(pipe, X, progress=False)
