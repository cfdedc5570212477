"""The rule deciding whether an experiment's columns are fitted together (mempamal.experiment.stacking)."""
import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.cross_decomposition import PLSRegression
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestRegressor
from sklearn.feature_selection import SelectKBest, f_regression
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import ElasticNet, LinearRegression, MultiTaskLasso, Ridge
from sklearn.model_selection import GroupKFold, KFold, ShuffleSplit, StratifiedKFold
from sklearn.multioutput import MultiOutputRegressor, RegressorChain
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline, make_union
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVR

from mempamal.experiment import stacking
from mempamal.experiment.stacking import blocking_step, decide, splitter_ignores_y

R2 = {"r2": "r2"}


@pytest.mark.parametrize("estimator", [
    Ridge(), KernelRidge(), LinearRegression(), ElasticNet(), KNeighborsRegressor(), MultiOutputRegressor(SVR()),
    make_pipeline(StandardScaler(), PCA(3), Ridge()),
    make_pipeline(ColumnTransformer([("num", StandardScaler(), [0, 1]), ("cat", OneHotEncoder(), [2])]), Ridge()),
    make_pipeline(make_union(StandardScaler(), PCA(2)), "passthrough", Ridge()),
])
def test_separable(estimator):
    assert blocking_step(estimator) is None


@pytest.mark.parametrize("estimator, words", [
    (MultiTaskLasso(), "MultiTaskLasso"),
    (PLSRegression(), "PLSRegression"),
    (RandomForestRegressor(), "RandomForestRegressor"),
    (RegressorChain(Ridge()), "RegressorChain"),
    (make_pipeline(SelectKBest(f_regression, k=2), Ridge()), "step 'selectkbest' (SelectKBest)"),
    (make_pipeline(ColumnTransformer([("sel", SelectKBest(f_regression, k=1), [0, 1])]), Ridge()),
     "transformer 'sel' (SelectKBest)"),
    (Ridge(alpha=np.array([1.0, 2.0])), "one alpha per target"),
])
def test_blocking_step_named(estimator, words):
    reason = blocking_step(estimator)
    assert reason is not None and words in reason, reason
    assert "\n" not in reason


def test_user_registration():
    class MyScaler(TransformerMixin, BaseEstimator):
        def fit(self, X, y=None):
            return self

        def transform(self, X):
            return X

    class MyRegressor(RegressorMixin, BaseEstimator):
        def fit(self, X, y):
            return self

    pipe = make_pipeline(MyScaler(), MyRegressor())
    assert "mempamal.experiment.stacking.register_y_ignoring(MyScaler)" in blocking_step(pipe)
    stacking.register_y_ignoring(MyScaler)
    assert "mempamal.experiment.stacking.register_column_separable(MyRegressor)" in blocking_step(pipe)
    stacking.register_column_separable(MyRegressor)
    assert blocking_step(pipe) is None
    with pytest.raises(TypeError, match="expected a class"):
        stacking.register_y_ignoring(MyScaler())


@pytest.mark.parametrize("cv, classifier, ok", [
    (5, False, True), (None, False, True), (5, True, False),
    (KFold(5), False, True), (KFold(5, shuffle=True, random_state=0), False, True),
    (KFold(5, shuffle=True), False, False), (GroupKFold(3), False, True),
    (ShuffleSplit(3, random_state=1), False, True), (ShuffleSplit(3), False, False),
    (StratifiedKFold(3), False, False), ([(np.arange(5), np.arange(5, 10))], False, True),
])
def test_splitters(cv, classifier, ok):
    assert (splitter_ignores_y(cv, classifier) is None) == ok


def test_decide():
    grid = [{"alpha": 1.0}, {"alpha": 10.0}]
    d = decide(Ridge(), grid, KFold(5), KFold(3), R2, classifier=False, n_columns=10)
    assert d.stacked and d.reason.startswith("stacked: 10 columns")
    d = decide(Ridge(), grid, KFold(5), KFold(3), R2, classifier=False, n_columns=1)
    assert not d.stacked and "one analysis" in d.reason
    d = decide(Ridge(), grid, KFold(5), KFold(3), R2, classifier=False, n_columns=10, mode=False)
    assert not d.stacked and "stack_columns=False" in d.reason
    d = decide(Ridge(), grid, KFold(5), ShuffleSplit(3), R2, classifier=False, n_columns=10)
    assert not d.stacked and "inner_cv=ShuffleSplit" in d.reason
    with pytest.raises(ValueError, match="stack_columns=True.*inner_cv=ShuffleSplit"):
        decide(Ridge(), grid, KFold(5), ShuffleSplit(3), R2, classifier=False, n_columns=10, mode=True)


def test_decide_candidates_replace_steps():
    pipe = make_pipeline(StandardScaler(), Ridge())
    grid = [{"standardscaler": StandardScaler()}, {"standardscaler": SelectKBest(f_regression, k=1)}]
    d = decide(pipe, grid, 5, 5, R2, classifier=False, n_columns=4)
    assert not d.stacked and "candidate 1" in d.reason and "SelectKBest" in d.reason


def test_decide_scoring_none():
    assert decide(Ridge(), None, 5, None, {"score": None}, classifier=False, n_columns=3).stacked

    class OwnScore(Ridge):
        def score(self, X, y, sample_weight=None):
            return 0.0

    stacking.register_column_separable(OwnScore)
    d = decide(OwnScore(), None, 5, None, {"score": None}, classifier=False, n_columns=3)
    assert not d.stacked and "OwnScore.score" in d.reason
