"""Tabular data: DataFrames with named, typed columns, string labels and per-sample params,
equal to cross_validate(GridSearchCV(...)) on the same DataFrame."""
import json
import subprocess
import sys

import numpy as np
import pytest
import sklearn
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, make_scorer
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mempamal import Experiment, load_results, run
from mempamal.workdir.data import load_data
from mempamal.workdir.workflow import load_workflow

from conftest import assert_same_as_sklearn

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")
# Most frames here have NaN and some estimators no imputer: the warning is expected.
pytestmark = pytest.mark.filterwarnings("ignore:X has .* NaN values")


def mixed_frame(n=120, seed=0):
    """Numbers with NaN, an int, a bool, strings, a category (its own order), a datetime; string labels."""
    rng = np.random.RandomState(seed)
    age = rng.uniform(18, 80, n)
    age[rng.rand(n) < 0.1] = np.nan
    city = rng.choice(["Paris", "Lyon", "Nice"], n)
    X = pd.DataFrame({
        "age": age,
        "income": rng.lognormal(3, 1, n).astype(np.float32),
        "children": rng.randint(0, 4, n),
        "owner": rng.rand(n) < 0.5,
        "city": pd.Series(city, dtype=object),
        "plan": pd.Categorical(rng.choice(["basic", "plus", "pro"], n), categories=["pro", "plus", "basic"],
                               ordered=True),
        "since": pd.date_range("2020-01-01", periods=n, freq="D"),
    }, index=np.arange(1000, 1000 + n))
    score = np.nan_to_num(age, nan=50) / 40 + (city == "Paris") + X["owner"] - 1.5 + rng.randn(n) * 0.5
    y = pd.Series(np.where(score > 0, "churn", "stay"), index=X.index, name="label")
    return X, y


def oracle(estimator, grid, X, y, *, cv, inner_cv, scoring, params=None, refit=True):
    search = GridSearchCV(estimator, grid, cv=inner_cv, scoring=scoring, refit=refit)
    return cross_validate(search, X, y, cv=cv, scoring=scoring, params=params, return_estimator=True,
                          return_indices=True)


def oracle_predictions(result, X):
    out = np.empty(len(X), dtype=object)
    for search, test in zip(result["estimator"], result["indices"]["test"]):
        out[test] = search.predict(X.iloc[test])
    return out


def test_frame_round_trip_keeps_every_dtype(tmp_path):
    X, y = mixed_frame(40)
    X["count_nan"] = X["children"].astype(float).where(X["children"] > 0)  # an int column with NaN
    X["nullable"] = pd.array([None if i % 5 == 0 else i for i in range(40)], dtype="Int64")
    X["text"] = pd.Series(["a", "b", None, "c"] * 10, dtype="str", index=X.index)
    X["text_none"] = pd.Series(["a", None, "b", "c"] * 10, dtype=object, index=X.index)
    X["text_nan"] = pd.Series(["a", np.nan, "b", "c"] * 10, dtype=object, index=X.index)
    X["when_tz"] = pd.date_range("2021-03-01", periods=40, freq="h", tz="Europe/Paris")
    X["flags"] = pd.Categorical([1, 2, 3, 2] * 10)
    workdir = Experiment(LogisticRegression(), cv=2).write(X, y, tmp_path / "w")
    files = json.loads((workdir / "experiment.json").read_text())["data"]
    assert files["X"] == "data/X.arrow"
    back, y_back, _ = load_data(workdir, files)
    pd.testing.assert_frame_equal(back, X.reset_index(drop=True), check_exact=True)
    assert list(back.dtypes) == list(X.dtypes)
    assert back["plan"].cat.categories.tolist() == ["pro", "plus", "basic"] and back["plan"].cat.ordered
    assert back["text_none"][1] is None and back["text_nan"][1] != back["text_nan"][1]
    assert X["text_none"].notna().sum() == 30 and back["text"].isna().sum() == 10
    np.testing.assert_array_equal(y_back, y.to_numpy())
    # Numeric columns are views of the mapped file, not copies.
    for column in ("age", "income", "children"):
        values = back[column].to_numpy()
        assert not values.flags.owndata and not values.flags.writeable


def test_frame_fingerprint_is_stable_and_sees_values(tmp_path):
    X, y = mixed_frame(30)
    exp = Experiment(LogisticRegression(), cv=2)
    first = json.loads((exp.write(X, y, tmp_path / "a") / "experiment.json").read_text())["fingerprint"]
    again = json.loads((exp.write(X.copy(), y, tmp_path / "b") / "experiment.json").read_text())["fingerprint"]
    X2 = X.copy()
    X2.loc[X2.index[3], "city"] = "Nice" if X2["city"].iloc[3] != "Nice" else "Lyon"
    other = json.loads((exp.write(X2, y, tmp_path / "c") / "experiment.json").read_text())["fingerprint"]
    X3 = X.copy()
    X3["plan"] = X3["plan"].cat.reorder_categories(["basic", "plus", "pro"])
    reordered = json.loads((exp.write(X3, y, tmp_path / "d") / "experiment.json").read_text())["fingerprint"]
    assert first == again and len({first, other, reordered}) == 3


def column_transformer_pipeline():
    numeric = make_pipeline(SimpleImputer(), StandardScaler())
    prep = ColumnTransformer([
        ("num", numeric, ["age", "income", "children"]),  # by name
        ("cat", OneHotEncoder(handle_unknown="ignore"), make_column_selector(dtype_include=["object", "category"])),
        ("flag", "passthrough", make_column_selector(dtype_include=bool)),
    ])
    return Pipeline([("prep", prep), ("logit", LogisticRegression(max_iter=500))])


def test_column_transformer_by_name_and_dtype_string_labels(workdir):
    X, y = mixed_frame()
    pipe, grid = column_transformer_pipeline(), {"logit__C": [0.01, 0.1, 1.0, 10.0]}
    outer, inner = StratifiedKFold(4, shuffle=True, random_state=0), StratifiedKFold(3)
    Experiment(pipe, cv=outer, param_grid=grid, inner_cv=inner, scoring=["accuracy", "f1_macro"],
               refit="f1_macro", grid_chunk_size=3).write(X, y, workdir)
    report = run(workdir, backend="local", n_jobs=2, progress=False)
    assert not report.names("failed")
    res = load_results(workdir)
    expected = oracle(pipe, grid, X, y, cv=outer, inner_cv=inner, scoring=["accuracy", "f1_macro"],
                      refit="f1_macro")
    assert_same_as_sklearn(res, expected, ["accuracy", "f1_macro"])
    # Predictions in the original labels.
    assert set(res.predictions) == {"churn", "stay"}
    np.testing.assert_array_equal(res.predictions, oracle_predictions(expected, X))


def test_set_output_pandas_into_hist_gradient_boosting_from_dtype(workdir):
    X, y = mixed_frame()
    y = y.astype("category")  # categorical labels
    prep = ColumnTransformer([("num", SimpleImputer(), ["age", "income"])], remainder="passthrough",
                             verbose_feature_names_out=False).set_output(transform="pandas")
    X = X.drop(columns=["since", "city", "owner"])
    pipe = Pipeline([("prep", prep), ("hgb", HistGradientBoostingClassifier(categorical_features="from_dtype",
                                                                          max_iter=15, random_state=0))])
    grid = {"hgb__max_depth": [2, 3], "hgb__learning_rate": [0.1, 0.3]}
    outer, inner = KFold(3, shuffle=True, random_state=1), KFold(3)
    Experiment(pipe, cv=outer, param_grid=grid, inner_cv=inner, scoring="roc_auc").write(X, y, workdir)
    run(workdir, n_jobs=2, progress=False)
    res = load_results(workdir)
    expected = oracle(pipe, grid, X, y, cv=outer, inner_cv=inner, scoring="roc_auc")
    assert_same_as_sklearn(res, expected, ["roc_auc"])
    np.testing.assert_array_equal(res.predictions, oracle_predictions(expected, X))


def weights(n, seed=3):
    return np.random.RandomState(seed).uniform(0.2, 3.0, n)


def test_sample_weight_without_routing_goes_to_fit_and_inner_scorers(workdir):
    """GridSearchCV passes sample_weight to its scorers that take it; cross_validate's outer
    scorers get nothing: the inner and outer scores differ accordingly."""
    X, y = mixed_frame()
    X = X[["age", "income", "children"]].fillna(0)
    w = weights(len(X))
    grid = {"C": [0.001, 0.01, 0.1, 1.0]}
    outer, inner = StratifiedKFold(3, shuffle=True, random_state=0), StratifiedKFold(3)
    scoring = ["accuracy", "roc_auc"]
    exp = Experiment(LogisticRegression(), cv=outer, param_grid=grid, inner_cv=inner, scoring=scoring,
                     refit="accuracy")
    exp.write(X, y, workdir, params={"sample_weight": w})
    run(workdir, n_jobs=2, progress=False)
    res = load_results(workdir)
    expected = oracle(LogisticRegression(), grid, X, y, cv=outer, inner_cv=inner, scoring=scoring,
                      refit="accuracy", params={"sample_weight": w})
    assert_same_as_sklearn(res, expected, scoring)
    for o, search in enumerate(expected["estimator"]):
        np.testing.assert_allclose(res.inner_scores["accuracy"][o],
                                   np.array([search.cv_results_[f"split{i}_test_accuracy"] for i in range(3)]).T,
                                   rtol=0, atol=1e-12)
    # The weights mattered: unweighted fits give other scores.
    unweighted = oracle(LogisticRegression(), grid, X, y, cv=outer, inner_cv=inner, scoring=scoring,
                        refit="accuracy")
    assert not np.allclose(unweighted["estimator"][0].cv_results_["mean_test_accuracy"],
                           expected["estimator"][0].cv_results_["mean_test_accuracy"])


def test_pipeline_step_fit_param_without_routing(workdir):
    X, y = mixed_frame()
    pipe, grid = column_transformer_pipeline(), {"logit__C": [0.01, 0.1, 1.0]}
    w = weights(len(X), seed=4)
    outer, inner = StratifiedKFold(3, shuffle=True, random_state=2), StratifiedKFold(3)
    Experiment(pipe, cv=outer, param_grid=grid, inner_cv=inner, scoring="accuracy").write(
        X, y, workdir, params={"logit__sample_weight": w})
    run(workdir, n_jobs=2, progress=False)
    expected = oracle(pipe, grid, X, y, cv=outer, inner_cv=inner, scoring="accuracy",
                      params={"logit__sample_weight": w})
    assert_same_as_sklearn(load_results(workdir), expected, ["accuracy"])


@pytest.fixture
def routing():
    with sklearn.config_context(enable_metadata_routing=True):
        yield


def routed_case():
    X, y = mixed_frame()
    prep = column_transformer_pipeline().steps[0][1]
    prep.set_params(num__standardscaler=StandardScaler().set_fit_request(sample_weight=False))
    pipe = Pipeline([("prep", prep),
                     ("logit", LogisticRegression(max_iter=500).set_fit_request(sample_weight=True))])
    scoring = {"weighted": make_scorer(accuracy_score).set_score_request(sample_weight=True),
               "plain": make_scorer(accuracy_score).set_score_request(sample_weight=False)}
    return X, y, pipe, {"logit__C": [0.01, 0.1, 1.0, 10.0]}, scoring, weights(len(X), seed=5)


def test_sample_weight_with_metadata_routing_to_fit_and_requesting_scorers(routing, workdir):
    X, y, pipe, grid, scoring, w = routed_case()
    outer, inner = StratifiedKFold(3, shuffle=True, random_state=0), StratifiedKFold(3)
    Experiment(pipe, cv=outer, param_grid=grid, inner_cv=inner, scoring=scoring, refit="weighted").write(
        X, y, workdir, params={"sample_weight": w})
    doc = json.loads((workdir / "experiment.json").read_text())
    assert doc["params"]["fit"] == {"sample_weight": "sample_weight"}
    assert doc["params"]["outer_score"] == {"weighted": {"sample_weight": "sample_weight"}, "plain": {}}
    run(workdir, n_jobs=2, progress=False)
    res = load_results(workdir)
    expected = oracle(pipe, grid, X, y, cv=outer, inner_cv=inner, scoring=scoring, refit="weighted",
                      params={"sample_weight": w})
    assert_same_as_sklearn(res, expected, ["weighted", "plain"])
    assert not np.allclose(res.test_scores["weighted"], res.test_scores["plain"])


def test_commands_by_hand_equal_sklearn(routing, workdir):
    """The task commands, run one by one in fresh processes, routing and all."""
    X, y, pipe, grid, scoring, w = routed_case()
    outer, inner = StratifiedKFold(3, shuffle=True, random_state=0), StratifiedKFold(2)
    Experiment(pipe, cv=outer, param_grid=grid, inner_cv=inner, scoring=scoring, refit="weighted",
               grid_chunk_size=2).write(X, y, workdir, params={"sample_weight": w})
    for task in load_workflow(workdir).tasks:
        subprocess.run(task.command, cwd=workdir, check=True, capture_output=True)
    expected = oracle(pipe, grid, X, y, cv=outer, inner_cv=inner, scoring=scoring, refit="weighted",
                      params={"sample_weight": w})
    assert_same_as_sklearn(load_results(workdir), expected, ["weighted", "plain"])


# -- bad input: at write(), naming the column and the fix ----------------------------------------

def test_object_column_of_mixed_python_objects(workdir):
    X, y = mixed_frame(20)
    X["mixed"] = pd.Series(["a", 1, 2.5, "b"] * 5, dtype=object, index=X.index)
    with pytest.raises(ValueError, match=r"X\['mixed'\]: an object column must hold strings .* it holds float, "
                                         r"int, str \(mixed-integer\); convert it, e\.g\. X\['mixed'\] = "
                                         r"X\['mixed'\]\.astype\(str\)"):
        Experiment(LogisticRegression(), cv=2).write(X, y, workdir)
    assert not workdir.exists()


def test_duplicate_and_non_string_column_names(workdir):
    X, y = mixed_frame(20)
    with pytest.raises(ValueError, match=r"X: column names must be unique, \['age'\] appear more than once"):
        Experiment(LogisticRegression(), cv=2).write(pd.concat([X, X[["age"]]], axis=1), y, workdir)
    with pytest.raises(ValueError, match=r"X: column names must be strings .* got 0 \(int\); rename them, "
                                         r"e\.g\. X\.columns = X\.columns\.astype\(str\)"):
        Experiment(LogisticRegression(), cv=2).write(pd.DataFrame(np.zeros((20, 2))), y, workdir)


def test_params_of_the_wrong_length_or_kind(workdir):
    X, y = mixed_frame(20)
    exp = Experiment(LogisticRegression(), cv=2)
    with pytest.raises(ValueError, match=r"params\['sample_weight'\]: 19 values, expected one per sample "
                                         r"\(n_samples=20\)"):
        exp.write(X, y, workdir, params={"sample_weight": np.ones(19)})
    with pytest.raises(ValueError, match=r"params\['sample_weight'\]: expected an array of one value per sample "
                                         r"\(20\), got float"):
        exp.write(X, y, workdir, params={"sample_weight": 1.0})
    with pytest.raises(ValueError, match=r"params\['groups'\]: pass group labels as write\(\.\.\., groups=groups\)"):
        exp.write(X, y, workdir, params={"groups": np.arange(20)})
    assert not workdir.exists()


def test_params_nobody_requests_with_routing(routing, workdir):
    X, y = mixed_frame(30)
    X = X[["age", "income"]].fillna(0)
    with pytest.raises(Exception, match=r"sample_weight.*(requested|request)"):
        Experiment(LogisticRegression(), cv=2, param_grid={"C": [1.0]}, inner_cv=2).write(
            X, y, workdir, params={"sample_weight": np.ones(30)})
    assert not workdir.exists()


def test_index_that_does_not_pair_rows(workdir):
    X, y = mixed_frame(20)
    exp = Experiment(LogisticRegression(), cv=2)
    with pytest.raises(ValueError, match=r"y: its index has the labels of X's in another order.*"
                                         r"y = y\.loc\[X\.index\]"):
        exp.write(X, y.sample(frac=1, random_state=0), workdir)
    duplicated = X.set_axis(np.repeat(np.arange(10), 2))
    with pytest.raises(ValueError, match=r"X: its index has duplicate labels \(e\.g\. .*0\)\) and y's index differs"):
        exp.write(duplicated, y, workdir)
    # Duplicates alone do not matter (the index is reset); y as an array pairs by position.
    exp.write(duplicated, y.to_numpy(), workdir)


def test_reading_without_pyarrow_says_which_extra(tmp_path):
    X, y = mixed_frame(20)
    workdir = Experiment(LogisticRegression(), cv=2).write(X, y, tmp_path / "w")
    code = ("import sys; sys.modules['pyarrow'] = None\n"
            "from mempamal.workdir.layout import TaskId\n"
            "from mempamal.tasks import run_task\n"
            "run_task('.', TaskId('refit', outer=0))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True)
    assert out.returncode != 0
    assert "needs pyarrow: pip install 'mempamal[tabular]' (pandas and pyarrow)" in out.stderr
