"""Bad input: a clear error at Experiment(...) or write(), naming the culprit and the fix.

One test per row of the table; each asserts the exception type and the words of its message.
Nothing here runs a worker: the errors must come before any task does.
"""
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris, make_classification, make_regression
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GroupKFold, KFold, LeaveOneGroupOut, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from mempamal import Experiment
from mempamal.experiment.encoding import EncodingError


@pytest.fixture(scope="module")
def clf_data():
    return make_classification(60, 5, random_state=0)


@pytest.fixture(scope="module")
def reg_data():
    return make_regression(60, 5, random_state=0)


def test_x_y_lengths_differ(clf_data, workdir):
    X, y = clf_data
    with pytest.raises(ValueError, match=r"X and y: lengths differ \(60 samples in X, 59 in y\)"):
        Experiment(LogisticRegression(), cv=3).write(X, y[:-1], workdir)
    assert not workdir.exists()


def test_groups_missing_for_group_splitter(clf_data, workdir):
    X, y = clf_data
    with pytest.raises(ValueError, match=r"cv=GroupKFold.*cannot split.*groups.*Fix: pass groups=\.\.\. to write"):
        Experiment(LogisticRegression(), cv=GroupKFold(3)).write(X, y, workdir)


def test_groups_missing_for_inner_group_splitter(clf_data, workdir):
    X, y = clf_data
    with pytest.raises(ValueError, match=r"inner_cv=LeaveOneGroupOut.*outer fold 0.*Fix: pass groups="):
        Experiment(LogisticRegression(), cv=KFold(3), param_grid={"C": [1.0]},
                   inner_cv=LeaveOneGroupOut()).write(X, y, workdir)


def test_groups_wrong_length(clf_data, workdir):
    X, y = clf_data
    with pytest.raises(ValueError, match=r"groups: expected shape \(60,\) like X's samples, got \(30,\)"):
        Experiment(LogisticRegression(), cv=GroupKFold(3)).write(X, y, workdir, groups=np.arange(30))


def test_grid_key_not_a_parameter_names_the_closest():
    pipe = Pipeline([("scaler", StandardScaler()), ("logit", LogisticRegression())])
    with pytest.raises(ValueError, match=r"param_grid: 'logit__c' is not a parameter of Pipeline; "
                                         r"did you mean 'logit__C'.*get_params\(\)\.keys\(\)"):
        Experiment(pipe, param_grid={"logit__c": [1.0]})


@pytest.mark.parametrize("grid, words", [
    ({}, "expected non-empty dicts"),
    ([], "expected a dict or a non-empty list of dicts"),
    ({"C": []}, r"param_grid\['C'\]: expected a non-empty list of values"),
])
def test_empty_grid_or_values(grid, words):
    with pytest.raises(ValueError, match=words):
        Experiment(LogisticRegression(), param_grid=grid)


def test_stratified_splitter_with_continuous_y(reg_data, workdir):
    X, y = reg_data
    with pytest.raises(ValueError, match=r"cv=StratifiedKFold.*continuous.*Fix: a stratified splitter needs "
                                         r"class labels: for a continuous y use KFold"):
        Experiment(Ridge(), cv=StratifiedKFold(3)).write(X, y, workdir)


def test_more_splits_than_members_of_a_class(workdir):
    X, y = load_iris(return_X_y=True)
    X, y = X[:104], y[:104]  # class 2 has 4 members
    with pytest.raises(ValueError, match=r"cv=StratifiedKFold\(n_splits=5.*least populated class.*"
                                         r"Fix: use fewer splits \(n_splits at most the number of members"):
        Experiment(LogisticRegression(), cv=StratifiedKFold(5)).write(X, y, workdir)


def test_more_splits_than_members_of_a_class_in_inner_cv(workdir):
    X, y = load_iris(return_X_y=True)
    X, y = X[:106], y[:106]  # 6 members of class 2: about 4 per outer training set
    with pytest.raises(ValueError, match=r"inner_cv=5 cannot split the data \(splitting the training set of "
                                         r"outer fold 0\).*Fix: use fewer splits"):
        Experiment(LogisticRegression(), cv=StratifiedKFold(3), param_grid={"C": [1.0]},
                   inner_cv=5).write(X, y, workdir)


def test_more_splits_than_groups(clf_data, workdir):
    X, y = clf_data
    with pytest.raises(ValueError, match=r"cv=GroupKFold\(n_splits=5.*number of groups.*"
                                         r"Fix: use fewer splits \(n_splits at most the number of groups\)"):
        Experiment(LogisticRegression(), cv=GroupKFold(5)).write(X, y, workdir, groups=np.arange(60) % 3)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_y(reg_data, workdir, bad):
    X, y = reg_data
    y = y.copy()
    y[7] = bad
    with pytest.raises(ValueError, match=r"y: 1 samples have a NaN or infinite target \(first: sample 7\); "
                                         r"drop those samples"):
        Experiment(Ridge(), cv=3).write(X, y, workdir)


def test_nan_in_X_without_imputer_warns(reg_data, tmp_path):
    X, y = reg_data
    X = X.copy()
    X[3, 2] = np.nan
    with pytest.warns(UserWarning, match=r"X has 1 NaN values and Pipeline has no imputer.*SimpleImputer"):
        Experiment(make_pipeline(StandardScaler(), Ridge()), cv=3).write(X, y, tmp_path / "a")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an imputer, or an estimator that takes NaN: no warning
        Experiment(make_pipeline(SimpleImputer(), Ridge()), cv=3).write(X, y, tmp_path / "b")
        Experiment(HistGradientBoostingClassifier(), cv=3).write(X, y > 0, tmp_path / "c")


def test_parameter_that_cannot_be_stored():
    with pytest.raises(EncodingError, match=r"a lambda cannot be stored; define a function in an importable"):
        Experiment(LogisticRegression(), param_grid={"class_weight": [lambda y: None]})
    with pytest.raises(EncodingError, match=r"random_state: a RandomState instance cannot be stored; use an int"):
        Experiment(LogisticRegression(random_state=np.random.RandomState(0)))


def test_unknown_scorer_name():
    with pytest.raises(ValueError, match=r"scoring: 'acuracy' is not a scikit-learn scorer name; "
                                         r"did you mean 'accuracy'"):
        Experiment(LogisticRegression(), scoring="acuracy")


def test_workdir_that_cannot_be_written(clf_data, tmp_path):
    X, y = clf_data
    (tmp_path / "a_file").write_text("not a directory")
    with pytest.raises(PermissionError, match=r"workdir '.*a_file/run' cannot be written \(Not a directory\); "
                                              r"choose a directory"):
        Experiment(LogisticRegression(), cv=3).write(X, y, tmp_path / "a_file" / "run")


def test_dataframe_is_kept_and_list_X_is_converted(clf_data, tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    from mempamal.workdir.data import load_data

    X, y = clf_data
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    exp = Experiment(LogisticRegression(), cv=3)
    workdir = exp.write(frame, pd.Series(y), tmp_path / "frame")
    back, y_back, _ = load_data(workdir, {"X": "data/X.arrow", "y": "data/y.npy", "groups": None})
    pd.testing.assert_frame_equal(back, frame)  # column names kept: scikit-learn sees feature_names_in_
    np.testing.assert_array_equal(y_back, y)
    workdir = exp.write(X.tolist(), y.tolist(), tmp_path / "list")
    np.testing.assert_array_equal(np.load(workdir / "data" / "X.npy"), X)
    np.testing.assert_array_equal(np.load(workdir / "data" / "y.npy"), y)
    # A list and its array are the same data: the same fingerprint.
    exp.write(X, y, tmp_path / "array")
    assert (tmp_path / "array" / "experiment.json").read_text() == (tmp_path / "list" / "experiment.json").read_text()


def test_dataframe_with_mixed_object_column_names_it(clf_data, workdir):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    X, y = clf_data
    frame = pd.DataFrame({"a": X[:, 0], "b": pd.Series(["x", 1.5] * (len(X) // 2), dtype=object)})
    with pytest.raises(ValueError, match=r"X\['b'\]: an object column must hold strings \(and missing values\) "
                                         r"to be stored without pickle; it holds float, str \(mixed\); convert it"):
        Experiment(LogisticRegression(), cv=3).write(frame, y, workdir)
