"""Tests of mempamal.encoding against real scikit-learn (no mocks)."""

import functools
import importlib.util
import json
import math
import subprocess
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.decomposition import PCA
from sklearn.ensemble import StackingRegressor, VotingClassifier
from sklearn.feature_selection import SelectFromModel, SelectKBest, f_classif
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel
from sklearn.linear_model import Lasso, LogisticRegression, Ridge
from sklearn.metrics import check_scoring, fbeta_score, get_scorer, make_scorer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils import all_estimators

from mempamal.experiment import encoding
from mempamal.experiment.encoding import DEFAULT_PACKAGES, DecodingError, EncodingError, decode, encode, packages_of


def roundtrip(obj, **decode_kwargs):
    text = json.dumps(encode(obj), allow_nan=False)
    return decode(json.loads(text), **decode_kwargs)


def assert_same(a, b):
    """Recursive equality: same types, arrays with dtype, nan == nan, estimators by params."""
    assert type(a) is type(b), (a, b)
    if hasattr(a, "get_params") and not isinstance(a, type):
        pa, pb = a.get_params(deep=False), b.get_params(deep=False)
        assert pa.keys() == pb.keys()
        for key in pa:
            assert_same(pa[key], pb[key])
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        if a.dtype.kind == "O":
            for x, y in zip(a.ravel(), b.ravel()):
                assert_same(x, y)
        else:
            assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (float, np.floating)) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


# --------------------------------------------------------------------------- all_estimators
_X_DICT = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, -0.5]])
# Classes whose constructor needs arguments: the simplest meaningful ones.
SPECIAL = {
    "ClassifierChain": lambda: dict(estimator=LogisticRegression()),
    "ColumnTransformer": lambda: dict(transformers=[
        ("num", StandardScaler(), [0, 1]), ("cat", OneHotEncoder(), ["c"]),
        ("other", "drop", slice(2, 4))]),
    "FeatureUnion": lambda: dict(transformer_list=[("pca", PCA(2)), ("scale", StandardScaler())]),
    "FixedThresholdClassifier": lambda: dict(estimator=LogisticRegression(), threshold=0.3),
    "FrozenEstimator": lambda: dict(estimator=LogisticRegression()),
    "GridSearchCV": lambda: dict(estimator=SVC(), param_grid={"C": [0.1, 1.0], "kernel": ["rbf"]}),
    "MultiOutputClassifier": lambda: dict(estimator=LogisticRegression()),
    "MultiOutputRegressor": lambda: dict(estimator=Ridge()),
    "OneVsOneClassifier": lambda: dict(estimator=LogisticRegression()),
    "OneVsRestClassifier": lambda: dict(estimator=LogisticRegression()),
    "OutputCodeClassifier": lambda: dict(estimator=LogisticRegression()),
    "Pipeline": lambda: dict(steps=[("scale", StandardScaler()), ("logit", LogisticRegression())]),
    "RFE": lambda: dict(estimator=LogisticRegression()),
    "RFECV": lambda: dict(estimator=LogisticRegression()),
    "RandomizedSearchCV": lambda: dict(estimator=Ridge(),
                                       param_distributions={"alpha": [0.1, 1.0]}),
    "RegressorChain": lambda: dict(estimator=Ridge()),
    "SelectFromModel": lambda: dict(estimator=Lasso()),
    "SequentialFeatureSelector": lambda: dict(estimator=LogisticRegression()),
    "SparseCoder": lambda: dict(dictionary=_X_DICT),
    "StackingClassifier": lambda: dict(estimators=[("lr", LogisticRegression()), ("svc", SVC())]),
    "StackingRegressor": lambda: dict(estimators=[("ridge", Ridge()), ("lasso", Lasso())]),
    "TunedThresholdClassifierCV": lambda: dict(estimator=LogisticRegression()),
    "VotingClassifier": lambda: dict(estimators=[("lr", LogisticRegression()),
                                                 ("tree", DecisionTreeClassifier())]),
    "VotingRegressor": lambda: dict(estimators=[("ridge", Ridge()), ("lasso", Lasso())]),
}
CANNOT_BUILD = {}  # class name -> reason; every class of all_estimators() is built today

ALL_ESTIMATORS = [cls for name, cls in all_estimators() if name not in CANNOT_BUILD]


@pytest.mark.parametrize("cls", ALL_ESTIMATORS, ids=lambda cls: cls.__name__)
def test_all_estimators_round_trip(cls):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = cls(**SPECIAL.get(cls.__name__, dict)())
        text = json.dumps(encode(est), allow_nan=False)
        assert packages_of(json.loads(text)) <= DEFAULT_PACKAGES
        rebuilt = decode(json.loads(text))
        assert_same(rebuilt, est)
        assert json.dumps(encode(rebuilt), allow_nan=False) == text  # stable documents


def test_special_cases_are_needed():
    classes = dict(all_estimators())
    for name in SPECIAL:
        with pytest.raises(TypeError, match="required positional argument"):
            classes[name]()


# --------------------------------------------------------------------------- values
@pytest.mark.parametrize("value", [
    None, True, 0, -3, 2**70, "text", 1.5, -0.0, float("nan"), float("inf"), float("-inf"), 1 + 2j,
    [1, [2, "a"]], (1, (2.0, None)), (), {"a": 1, "b": [1, 2]}, {0: 1.0, 1: 2.0}, {(0, 1): "pair"},
    {"__tuple__": [1]}, {"a": 1, "__class__": "os.system"}, {1, 2, "x"}, frozenset({1.5}),
    np.float32(1.5), np.float16(np.nan), np.int8(-3), np.uint64(2**63), np.bool_(True),
    np.complex64(1j), np.str_("s"), np.array([[1.0, np.nan], [np.inf, -np.inf]], dtype=np.float32),
    np.arange(6, dtype=np.int16).reshape(2, 3, 1), np.array([True, False]), np.array(["a", "bc"]),
    np.array(3.0), np.zeros((0, 2)), np.array([1 + 1j, np.nan]),
    np.array([None, (1, 2), LogisticRegression()], dtype=object), np.dtype("float32"),
    np.dtype("<U3"), slice(1, None), slice(None, -1, 2), np.float64, np.int32,
    float, int, bool, str, complex, object, f_classif, np.log1p, np.mean, pearsonr,
    LogisticRegression, [LogisticRegression(C=0.1), Ridge(alpha=2.0)],
], ids=repr)
def test_value_round_trip_keeps_types(value):
    assert_same(roundtrip(value), value)


def test_scipy_special_ufunc_has_a_path():
    from scipy.special import expit

    assert encode(expit) == {"__callable__": "scipy.special.expit"}
    assert roundtrip(expit) is expit


def test_plain_and_tagged_dicts_cannot_be_confused():
    assert encode({"a": 1}) == {"a": 1}
    assert encode({"__tuple__": [1]}) == {"__dict__": [["__tuple__", [1]]]}
    assert encode({0: 1.0}) == {"__dict__": [[0, 1.0]]}


def test_public_paths_and_private_module_decoding():
    doc = encode(LogisticRegression())
    assert doc["__estimator__"] == "sklearn.linear_model.LogisticRegression"
    assert encode(f_classif) == {"__callable__": "sklearn.feature_selection.f_classif"}
    assert encode(pearsonr) == {"__callable__": "scipy.stats.pearsonr"}
    doc = {"__estimator__": "sklearn.linear_model._logistic.LogisticRegression",
           "params": {"C": 2.0}}
    assert_same(decode(doc), LogisticRegression(C=2.0))


def test_nested_meta_estimators_round_trip():
    kernel = ConstantKernel(2.0) * RBF(length_scale=np.array([1.0, 2.0]))
    est = Pipeline([
        ("ct", ColumnTransformer([("num", StandardScaler(), [0, 1]),
                                  ("cat", OneHotEncoder(), [2])])),
        ("union", FeatureUnion([("pca", PCA(1)), ("kbest", SelectKBest(f_classif, k=1))])),
        ("select", SelectFromModel(estimator=Lasso(alpha=0.1))),
        ("vote", VotingClassifier([("lr", LogisticRegression(class_weight={0: 1.0, 1: 2.0})),
                                   ("gp", GaussianProcessRegressor(kernel=kernel))])),
    ])
    rebuilt = roundtrip(est)
    assert_same(rebuilt, est)
    assert type(rebuilt.steps[0]) is tuple and type(rebuilt.steps) is list
    stack = StackingRegressor([("ridge", Ridge())], final_estimator=Lasso())
    assert_same(roundtrip(stack), stack)


# --------------------------------------------------------------------------- refusals and paths
def _pipe(**logit_params):
    return Pipeline([("scale", StandardScaler()), ("logit", LogisticRegression(**logit_params))])


def make_double():
    def double(x):
        return 2 * x
    return double


def helper(x):
    return x


def test_random_state_instance_message_is_exact():
    with pytest.raises(EncodingError) as info:
        encode(_pipe(random_state=np.random.RandomState(0)))
    assert str(info.value) == (
        "logit__random_state: a RandomState instance cannot be stored; use an int")
    assert "logit__random_state" in _pipe().get_params(deep=True)


def test_generator_and_nested_estimator_paths():
    with pytest.raises(EncodingError, match=r"^estimator__random_state: a Generator instance "
                                            r"cannot be stored; use an int$"):
        encode(SelectFromModel(estimator=Lasso(random_state=np.random.default_rng(0))))
    inner = _pipe(random_state=np.random.RandomState(1))
    outer = Pipeline([("ct", ColumnTransformer([("num", inner, [0])]))])
    with pytest.raises(EncodingError, match=r"^ct__num__logit__random_state: a RandomState"):
        encode(outer)
    assert "ct__num__logit__random_state" in outer.get_params(deep=True)


@pytest.mark.parametrize("value, path, message", [
    (lambda x: x, "func",
     r"^func: a lambda cannot be stored; define a function in an importable module$"),
    (make_double(), "",
     r"^<root>: 'make_double.<locals>.double' is defined inside a function.*importable module$"),
    (functools.partial(helper, 1), "f", r"^f: a functools.partial cannot be stored"),
    (object(), "", r"^<root>: a object instance cannot be stored"),
    (print, "g", r"^g: 'print' cannot be stored: 'builtins.print' is not in the allowed packages"),
    (LogisticRegression().fit, "h", r"^h: .* does not import back to the same object"),
    (np.longdouble(1), "x", r"^x: a numpy float128 scalar cannot be stored"),
    (np.array(["2020-01-01"], dtype="datetime64[D]"), "d",
     r"^d: a numpy datetime64\[D\] array cannot"),
], ids=["lambda", "closure", "partial", "object", "builtin-function", "bound-method",
        "longdouble", "datetime"])
def test_unstorable_values_name_path_and_fix(value, path, message):
    if isinstance(value, np.longdouble) and np.dtype(np.longdouble).itemsize == 8:
        pytest.skip("longdouble is float64 on this platform")
    with pytest.raises(EncodingError, match=message):
        encode(value, path=path)


def test_main_module_function_is_refused():
    in_main = types.FunctionType(helper.__code__, {}, "helper")
    in_main.__module__ = "__main__"
    with pytest.raises(EncodingError, match=r"^logit__func: 'helper' is defined in __main__, "
                                            r"which worker tasks cannot import; "
                                            r"move it into an importable module$"):
        encode(FunctionTransformer(func=in_main), path="logit")


def test_open_file_is_refused(tmp_path):
    with open(tmp_path / "f.txt", "w") as handle:
        with pytest.raises(EncodingError, match=r"^logit__C: an open file cannot be stored"):
            encode(_pipe(C=handle))


def test_grid_value_paths_use_the_caller_prefix():
    with pytest.raises(EncodingError, match=r"^param_grid\['logit__C'\]\[1\]: a lambda"):
        encode([1.0, lambda: 2.0], path="param_grid['logit__C']")
    with pytest.raises(EncodingError, match=r"^grid\[0\]__class_weight\[1\]: a RandomState"):
        encode([LogisticRegression(class_weight={1: np.random.RandomState(0)})], path="grid")
    with pytest.raises(EncodingError, match=r"^ct__transformers\[0\]\[2\]: a lambda"):
        encode(Pipeline([("ct", ColumnTransformer([("num", StandardScaler(), lambda X: [0])]))]))


def test_encoded_docs_are_strict_json():
    value = {"x": [float("nan"), np.float64("-inf"), np.array([np.nan, np.inf])], "est": _pipe()}
    text = json.dumps(encode(value), allow_nan=False)  # raises on a NaN or infinity left as a float

    def not_json(constant):
        raise AssertionError(f"{constant} is not JSON")

    assert_same(decode(json.loads(text, parse_constant=not_json)), value)  # strict, and nothing is lost


# --------------------------------------------------------------------------- scorers
def _fitted():
    X, y = make_classification(n_samples=80, n_features=5, random_state=0)
    Xr, yr = make_regression(n_samples=80, n_features=5, noise=1.0, random_state=0)
    return (LogisticRegression().fit(X, y), X, y), (Ridge().fit(Xr, yr), Xr, yr)


@pytest.mark.parametrize("scorer, kind", [
    (make_scorer(fbeta_score, beta=2), "clf"),
    (get_scorer("roc_auc"), "clf"),
    (get_scorer("neg_log_loss"), "clf"),
    (get_scorer("neg_mean_squared_error"), "reg"),
], ids=["fbeta2", "roc_auc", "neg_log_loss", "neg_mse"])
def test_scorer_round_trip_gives_same_score(scorer, kind):
    clf, reg = _fitted()
    model, X, y = clf if kind == "clf" else reg
    rebuilt = roundtrip(scorer)
    assert type(rebuilt) is type(scorer) and rebuilt._sign == scorer._sign
    assert rebuilt._kwargs == scorer._kwargs and rebuilt._response_method == scorer._response_method
    assert rebuilt(model, X, y) == scorer(model, X, y)


def test_scorer_dict_and_lambda_metric():
    scoring = {"f2": make_scorer(fbeta_score, beta=2), "acc": "accuracy"}
    assert_same(roundtrip(scoring)["acc"], "accuracy")
    with pytest.raises(EncodingError, match=r"^scoring: a lambda"):
        encode(make_scorer(lambda y, p: 0.0), path="scoring")
    with pytest.raises(EncodingError, match=r"^scoring\['f2'\]: a functools.partial cannot"):
        encode({"f2": make_scorer(functools.partial(fbeta_score, beta=2))}, path="scoring")
    with pytest.raises(EncodingError, match=r"^<root>: a _PassthroughScorer instance cannot"):
        encode(check_scoring(Ridge()))


# --------------------------------------------------------------------------- security
@pytest.mark.parametrize("dotted", [
    "os.system", "subprocess.Popen", "builtins.eval", "builtins.__import__", "json.loads",
    "posix.system", "pickle.loads", "_posixsubprocess.fork_exec"])
@pytest.mark.parametrize("tag", ["__callable__", "__estimator__", "__scorer__"])
def test_refuses_paths_outside_allowed_packages(dotted, tag):
    doc = {tag: dotted, "params": {}} if tag == "__estimator__" else {tag: dotted}
    if tag == "__scorer__":
        doc.update(greater_is_better=True, response_method="predict", kwargs={})
    with pytest.raises(DecodingError, match=rf"^'{dotted}' is not in the allowed packages"):
        decode([1, {"nested": doc}])


def _absent_modules(candidates):
    found = [m for m in candidates
             if m not in sys.modules and importlib.util.find_spec(m) is not None]
    assert found, "no never-imported module left to test with"
    return found


def test_refusal_happens_before_import():
    never_imported = ["antigravity", "this", "tabnanny", "colorsys", "wave", "chunk"]
    for module in _absent_modules(never_imported)[:2]:
        with pytest.raises(DecodingError, match="is not in the allowed packages"):
            decode({"__callable__": f"{module}.anything"})
        assert module not in sys.modules
    # A deny-listed module stays refused, and unimported, even when the caller allows it.
    for module in _absent_modules(["webbrowser", "ftplib", "smtplib", "pty", "shelve", "pdb"])[:2]:
        with pytest.raises(DecodingError, match=f"'{module}' is never allowed"):
            decode({"__callable__": f"{module}.open"}, allowed_packages={module})
        assert module not in sys.modules


@pytest.mark.parametrize("dotted, message", [
    ("numpy.lib._npyio_impl.os.system", "is a module imported under another name"),
    ("sklearn.base.inspect.isclass", "is a module imported under another name"),
    ("sklearn.utils.validation.isclass", "not in the allowed packages"),
    ("sklearn.__builtins__", "not a dotted path of public names"),
    ("numpy.__loader__.exec_module", "not a dotted path of public names"),
    ("sklearn.metrics._scorer._passthrough_scorer", "private name '_passthrough_scorer'"),
    ("sklearn.linear_model", "is not a class or function"),
    ("numpy.pi", "is not a class or function"),
    ("sklearn.no_such_module.Thing", "no attribute 'no_such_module'"),
    ("sklearn", "not a dotted path"),
    ("sklearn.utils._testing.assert_run_python_script_without_output", "test and build helpers"),
    ("numpy.testing.assert_equal", "test and build helpers"),
])
def test_refuses_aliases_dunders_private_names_and_modules(dotted, message):
    with pytest.raises(DecodingError, match=message):
        decode({"__callable__": dotted})


def test_estimator_tag_only_builds_estimator_classes():
    with pytest.raises(DecodingError, match="is not an estimator class"):
        decode({"__estimator__": "numpy.ndarray", "params": {"shape": [10**12]}})
    with pytest.raises(DecodingError, match="cannot rebuild"):
        decode({"__estimator__": "sklearn.linear_model.Ridge", "params": {"no_such_param": 1}})


@pytest.mark.parametrize("doc", [
    {"__nope__": 1}, {"__tuple__": 3}, {"__tuple__": [], "__set__": []}, {"__float__": "zero"},
    {"__estimator__": "sklearn.linear_model.Ridge"}, {"__tuple__": [], "extra": 1},
    {"__ndarray__": [1, 2, 3], "dtype": "<f8", "shape": [2, 2]},
    {"__ndarray__": [1], "dtype": "nope", "shape": [1]},
    {"__ndarray__": [2**70], "dtype": "<i8", "shape": [1]},
    {"__dict__": [[1]]}, {"__dict__": [[[1], 2]]}, {"__scalar__": "<f8", "value": "x"},
    {"__complex__": [1, 2, 3]}, {"__estimator__": "sklearn.linear_model.Ridge", "params": [1]},
    {"__scorer__": "sklearn.metrics.accuracy_score", "greater_is_better": "yes",
     "response_method": "predict", "kwargs": {}}, (1, 2), {1: 2},
], ids=repr)
def test_malformed_documents_raise_decoding_error(doc):
    with pytest.raises(DecodingError):
        decode(doc)


@pytest.fixture
def mypkg(tmp_path, monkeypatch):
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text(
        "from sklearn.base import BaseEstimator\n\n"
        "class Shrink(BaseEstimator):\n"
        "    def __init__(self, factor=1.0, func=None):\n"
        "        self.factor = factor\n"
        "        self.func = func\n\n"
        "def double(x):\n"
        "    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import mypkg

    yield mypkg
    sys.modules.pop("mypkg", None)
    encoding._resolve.cache_clear()


def test_allowed_packages_allows_a_third_party_package(mypkg):
    pipe = Pipeline([("shrink", mypkg.Shrink(factor=0.5, func=mypkg.double)), ("ridge", Ridge())])
    doc = json.loads(json.dumps(encode(pipe)))
    assert packages_of(doc) == {"sklearn", "mypkg"}
    with pytest.raises(DecodingError,
                       match=r"^'mypkg.Shrink' is not in the allowed packages.*allowed_packages="):
        decode(doc)
    rebuilt = decode(doc, allowed_packages={"mypkg"})
    assert_same(rebuilt, pipe)
    assert rebuilt.steps[0][1].func is mypkg.double
    assert_same(decode(doc, allowed_packages="mypkg"), pipe)
    with pytest.raises(ValueError, match="top-level package names"):
        decode(doc, allowed_packages=["mypkg.sub"])


def test_packages_of():
    assert packages_of(encode(_pipe())) == {"sklearn"}
    assert packages_of(encode([FunctionTransformer(np.log1p), float, make_scorer(pearsonr)])) == {
        "sklearn", "numpy", "scipy"}
    assert packages_of(encode({"a": [1, 2.0, "x"]})) == set()


def test_import_does_not_load_sklearn():
    # Through its package (it imports mempamal.exceptions), from the checkout under test.
    root = Path(encoding.__file__).resolve().parents[2]
    code = ("import sys\n"
            "import mempamal.experiment.encoding\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "[]"
