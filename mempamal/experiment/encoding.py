"""JSON encoding of estimators, parameter values, grids and scorers.

``encode`` turns what a user puts in an experiment (estimators, grids, scorers)
into plain JSON; ``decode`` rebuilds it in the worker tasks.  Nothing is ever
pickled: classes and functions are stored by dotted path, and ``decode`` only
imports them from an explicit list of trusted top-level packages, never from the
standard library or a private top-level module (see :func:`refusal`).

Everything JSON cannot say natively is a dict with exactly one key starting
with ``"__"`` (the tag).  User dicts whose keys are all str and none starts
with ``"__"`` stay plain; any other dict is stored as ``{"__dict__": pairs}``,
so a user dict can never be mistaken for a tagged one.
"""

from __future__ import annotations

import functools
import io
import json
import math
import sys
from collections.abc import Iterable

import numpy as np

from ..exceptions import DecodingError, EncodingError
from .allowlist import _SAFE_BUILTINS, DEFAULT_PACKAGES, _resolve, refusal

__all__ = ["DEFAULT_PACKAGES", "DecodingError", "EncodingError", "decode", "encode", "packages_of", "references_of",
           "refusal"]


_TAG_KEYS = {  # tag -> the other keys its dict must have
    "__float__": set(), "__complex__": set(), "__tuple__": set(), "__slice__": set(),
    "__set__": set(), "__frozenset__": set(), "__dict__": set(), "__dtype__": set(),
    "__callable__": set(), "__scalar__": {"value"}, "__ndarray__": {"dtype", "shape"},
    "__estimator__": {"params"}, "__scorer__": {"greater_is_better", "response_method", "kwargs"},
    "__selector__": {"params"},
}
_PATH_TAGS = ("__callable__", "__estimator__", "__scorer__", "__selector__")
# Keys a tagged dict may have besides those of _TAG_KEYS: metadata requests (set_fit_request...).
# And set_output's configuration (output): instance state too.
_OPTIONAL_KEYS = {"__estimator__": {"requests", "output"}, "__scorer__": {"requests"}}


# --------------------------------------------------------------------------- encode
def encode(obj: object, path: str = "") -> object:
    """Return a JSON-able structure for ``obj``.

    Parameters
    ----------
    obj : object
        A JSON value, tuple, set, numpy scalar/array/dtype, estimator,
        scikit-learn scorer, or a function or class from an importable module,
        nested in any way.
    path : str
        Where ``obj`` sits, used in error messages; nested values extend it
        with scikit-learn's ``__`` notation (``"logit__C"``) or ``[i]``/``[key]``.

    Returns
    -------
    object
        A structure for which ``json.dumps(..., allow_nan=False)`` succeeds.

    Raises
    ------
    EncodingError
        If some value cannot be stored; the message names its path and the fix.
    """
    kind = type(obj)
    if obj is None or kind in (bool, int, str):
        return obj
    if kind is float:
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}  # 'nan', 'inf', '-inf'
    if kind is complex:
        return {"__complex__": [encode(obj.real), encode(obj.imag)]}
    if kind is list:
        return [encode(v, f"{path}[{i}]") for i, v in enumerate(obj)]
    if kind is tuple:
        return {"__tuple__": [encode(v, f"{path}[{i}]") for i, v in enumerate(obj)]}
    if kind in (set, frozenset):
        items = [encode(v, f"{path}[{v!r}]") for v in obj]
        items.sort(key=lambda v: json.dumps(v, sort_keys=True))  # deterministic documents
        return {f"__{kind.__name__}__": items}
    if kind is dict:
        return _encode_dict(obj, path)
    if kind is slice:  # ColumnTransformer columns
        return {"__slice__": [encode(v, path) for v in (obj.start, obj.stop, obj.step)]}
    if isinstance(obj, np.generic):
        return _encode_scalar(obj, path)
    if kind is np.ndarray:
        return _encode_array(obj, path)
    if isinstance(obj, np.dtype):
        return {"__dtype__": _dtype_str(obj, path)}
    if isinstance(obj, (np.random.RandomState, np.random.Generator)):
        raise EncodingError(f"{_where(path)}: a {kind.__name__} instance cannot be stored; "
                            "use an int")
    if isinstance(obj, type):
        return {"__callable__": _reference(obj, path)}
    scorer_module = sys.modules.get("sklearn.metrics._scorer")  # a scorer implies sklearn is loaded
    if scorer_module is not None and kind is scorer_module._Scorer:
        return _encode_scorer(obj, path)
    if hasattr(obj, "get_params"):
        return _encode_estimator(obj, path)
    compose = sys.modules.get("sklearn.compose")
    if compose is not None and kind is compose.make_column_selector:  # ColumnTransformer columns by dtype
        return {"__selector__": _reference(kind, path),
                "params": {k: encode(getattr(obj, k), f"{path}.{k}") for k in ("pattern", "dtype_include",
                                                                               "dtype_exclude")}}
    if isinstance(obj, io.IOBase):
        raise EncodingError(f"{_where(path)}: an open file cannot be stored; "
                            "store its path as a str")
    if callable(obj):
        return {"__callable__": _reference(obj, path)}
    raise _cannot_store(obj, path)


def _cannot_store(obj: object, path: str) -> EncodingError:
    return EncodingError(f"{_where(path)}: a {type(obj).__qualname__} instance cannot be stored; "
                         "use a JSON value, a numpy array, an estimator, or a function or "
                         "class from an importable module")


def _where(path: str) -> str:
    return path or "<root>"


def _join(prefix: str, name: str) -> str:
    return f"{prefix}__{name}" if prefix else name


def _encode_dict(obj: dict, path: str) -> object:
    if all(type(k) is str and not k.startswith("__") for k in obj):
        return {k: encode(v, f"{path}[{k!r}]") for k, v in obj.items()}
    return {"__dict__": [[encode(k, f"{path}[{k!r}]"), encode(v, f"{path}[{k!r}]")]
                         for k, v in obj.items()]}


def _dtype_str(dtype: np.dtype, path: str) -> str:
    if dtype.fields is not None or dtype.subdtype is not None:
        raise EncodingError(f"{_where(path)}: structured dtype {dtype} cannot be stored; "
                            "use a plain dtype")
    return dtype.str


def _encode_scalar(obj: np.generic, path: str) -> dict:
    value = obj.item()
    # .item() of e.g. longdouble or datetime64 is not a value that rebuilds the same scalar
    if obj.dtype.kind not in "biufcU" or isinstance(value, np.generic):
        raise EncodingError(f"{_where(path)}: a numpy {obj.dtype} scalar cannot be stored; "
                            "convert it to a float64, int64, bool or str value")
    return {"__scalar__": _dtype_str(obj.dtype, path), "value": encode(value, path)}


def _encode_array(arr: np.ndarray, path: str) -> dict:
    if arr.dtype.kind not in "biufcUO" or arr.dtype == np.longdouble:
        raise EncodingError(f"{_where(path)}: a numpy {arr.dtype} array cannot be stored; "
                            "convert it to a float64, int64, bool, str or object array")
    data = arr.ravel().tolist()
    if arr.dtype.kind not in "biu" and not (arr.dtype.kind == "f" and np.isfinite(arr).all()):
        data = [encode(v, f"{path}[{i}]") for i, v in enumerate(data)]  # nan, complex, str, objects
    return {"__ndarray__": data, "dtype": _dtype_str(arr.dtype, path), "shape": list(arr.shape)}


def _encode_estimator(est: object, path: str) -> dict:
    params = {}
    for name, value in est.get_params(deep=False).items():
        is_steps = type(value) in (list, tuple) and len(value) > 0 and all(
            type(step) is tuple and len(step) >= 2 and type(step[0]) is str for step in value)
        if is_steps:
            steps = [_encode_step(step, i, path, _join(path, name)) for i, step in enumerate(value)]
            params[name] = steps if type(value) is list else {"__tuple__": steps}
        else:
            params[name] = encode(value, _join(path, name))
    doc = {"__estimator__": _reference(type(est), path), "params": params}
    requests = _requests(est, path)
    if requests:
        doc["requests"] = requests
    output = {k: v for k, v in (vars(est).get("_sklearn_output_config") or {}).items() if v is not None}
    if output:  # set_output(transform="pandas"): ColumnTransformer and HistGradientBoosting rely on it
        doc["output"] = {k: encode(v, f"{path}.set_output({k})") for k, v in output.items()}
    return doc


def _requests(obj: object, path: str) -> dict:
    """The metadata requests set on ``obj`` (``set_fit_request(sample_weight=True)``...), per method:
    instance state that get_params does not return, so stored beside the parameters."""
    request = vars(obj).get("_metadata_request") if hasattr(obj, "__dict__") else None
    if request is None:
        return {}
    out = {}
    for method in ("fit", "partial_fit", "predict", "predict_proba", "predict_log_proba", "decision_function",
                   "score", "split", "transform", "inverse_transform"):
        mine = getattr(request, method, None)
        if mine is None:
            continue
        # None is every request's default (an error if passed): only what the user set is stored.
        changed = {k: v for k, v in mine.requests.items() if v is not None}
        if changed:
            out[method] = {k: encode(v, f"{path}.set_{method}_request({k})") for k, v in changed.items()}
    return out


def _set_requests(obj: object, requests: dict) -> object:
    """Apply stored metadata requests (set_*_request exist only while routing is enabled)."""
    if requests:
        import sklearn

        with sklearn.config_context(enable_metadata_routing=True):
            for method, values in _expect(requests, dict, "requests").items():
                getattr(obj, f"set_{method}_request")(**_expect(values, dict, "requests"))
    return obj


def _encode_step(step: tuple, i: int, owner: str, param: str) -> dict:
    """(name, estimator[, columns]) of a Pipeline-like list: scikit-learn calls the estimator
    "<owner>__<name>" (as in get_params(deep=True)), not "<param>[i][1]"."""
    return {"__tuple__": [encode(v, _join(owner, step[0]) if j == 1 else f"{param}[{i}][{j}]")
                          for j, v in enumerate(step)]}


def _encode_scorer(scorer: object, path: str) -> dict:
    extra = set(vars(scorer)) - {"_score_func", "_sign", "_kwargs", "_response_method", "_metadata_request"}
    if extra:
        raise EncodingError(f"{_where(path)}: a scorer with extra state {sorted(extra)} cannot be "
                            "stored; use a plain make_scorer(...) scorer or a scoring name")
    doc = {"__scorer__": _reference(scorer._score_func, path),
           "greater_is_better": scorer._sign > 0,
           "response_method": encode(scorer._response_method, path),
           "kwargs": encode(dict(scorer._kwargs), path)}
    requests = _requests(scorer, path)
    if requests:
        doc["requests"] = requests
    return doc


def _reference(obj: object, path: str) -> str:
    """Dotted path under which a function or class imports back, or EncodingError."""
    for dotted, builtin in _SAFE_BUILTINS.items():
        if obj is builtin:
            return dotted
    where, name = _where(path), getattr(obj, "__name__", None)
    if isinstance(obj, functools.partial):
        raise EncodingError(f"{where}: a functools.partial cannot be stored; define a function "
                            "in an importable module (or use estimator parameters)")
    if not isinstance(name, str):  # a callable instance
        raise _cannot_store(obj, path)
    qualname = getattr(obj, "__qualname__", None) or name
    module = getattr(obj, "__module__", None)
    if name == "<lambda>":
        raise EncodingError(f"{where}: a lambda cannot be stored; "
                            "define a function in an importable module")
    if "<locals>" in qualname:
        raise EncodingError(f"{where}: {qualname!r} is defined inside a function and cannot be "
                            "stored; define it at the top level of an importable module")
    if module == "__main__":
        raise EncodingError(f"{where}: {name!r} is defined in __main__, which worker tasks cannot "
                            "import; move it into an importable module")
    if module is None and isinstance(obj, np.ufunc):  # scipy.special ufuncs have no __module__
        module = next((m for m in ("numpy", "scipy.special")
                       if getattr(sys.modules.get(m), name, None) is obj), None)
    if not isinstance(module, str):
        raise EncodingError(f"{where}: {name!r} has no module to import it from; "
                            "define it in an importable module")
    dotted = _public_path(obj, module, qualname)
    try:
        found = _resolve(dotted, DEFAULT_PACKAGES | {dotted.split(".")[0]})
    except DecodingError as exc:
        raise EncodingError(f"{where}: {name!r} cannot be stored: {exc}") from None
    if found is not obj:
        raise EncodingError(f"{where}: {dotted!r} does not import back to the same object; "
                            "define it under its own name in an importable module")
    return dotted


def _public_path(obj: object, module: str, qualname: str) -> str:
    """Prefer the shortest public parent package exposing obj (sklearn.linear_model.X)."""
    parts = module.split(".")
    for i in range(1, len(parts)):
        if parts[i - 1].startswith("_"):
            break
        found = sys.modules.get(".".join(parts[:i]))
        for attr in qualname.split("."):
            found = getattr(found, attr, None)
        if found is obj:
            return f"{'.'.join(parts[:i])}.{qualname}"
    return f"{module}.{qualname}"


# --------------------------------------------------------------------------- decode
def decode(doc: object, allowed_packages: Iterable[str] | None = None) -> object:
    """Rebuild the object that :func:`encode` turned into ``doc``.

    Parameters
    ----------
    doc : object
        A structure returned by :func:`encode` (typically after a JSON round trip).
    allowed_packages : iterable of str, optional
        Top-level packages whose classes and functions may be imported, in
        addition to ``DEFAULT_PACKAGES``.  The standard library (``os``,
        ``subprocess``, ``pickle``, ``_pickle``...), private top-level modules
        and packages that load pickles or code are refused even if listed here.

    Returns
    -------
    object
        The rebuilt value; estimators are built with ``cls(**params)``.

    Raises
    ------
    DecodingError
        If ``doc`` is malformed or names something outside the allowed
        packages; nothing is imported before the package has been checked.
    """
    if isinstance(allowed_packages, str):
        allowed_packages = [allowed_packages]
    extra = list(allowed_packages or ())
    for name in extra:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"allowed_packages must hold top-level package names, not {name!r}")
    return _decode(doc, DEFAULT_PACKAGES | frozenset(extra))


def _decode(doc: object, allowed: frozenset) -> object:
    if doc is None or type(doc) in (bool, int, float, str):
        return doc
    if type(doc) is list:
        return [_decode(v, allowed) for v in doc]
    if type(doc) is not dict:
        raise DecodingError(f"unexpected {type(doc).__name__} in document: {doc!r:.80}")
    if not all(type(k) is str for k in doc):
        raise DecodingError(f"document dict keys must be str: {doc!r:.80}")
    tags = [k for k in doc if k.startswith("__")]
    if not tags:
        return {k: _decode(v, allowed) for k, v in doc.items()}
    tag = tags[0]
    if len(tags) > 1 or tag not in _TAG_KEYS or not (
            {tag} | _TAG_KEYS[tag] <= set(doc) <= {tag} | _TAG_KEYS[tag] | _OPTIONAL_KEYS.get(tag, set())):
        raise DecodingError(f"malformed tagged dict (unknown tag or wrong keys): {doc!r:.80}")
    try:
        return _decode_tagged(tag, doc, allowed)
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:
        if isinstance(exc, DecodingError):
            raise
        raise DecodingError(f"malformed {tag} in document: {exc}") from exc


_SEQUENCE_TAGS = {  # tag -> how to build the value from its decoded list of items
    "__tuple__": tuple, "__set__": set, "__frozenset__": frozenset,
    "__slice__": lambda items: slice(*items), "__complex__": lambda items: complex(*items),
}


def _decode_tagged(tag: str, doc: dict, allowed: frozenset) -> object:
    payload = doc[tag]
    if tag in _SEQUENCE_TAGS:
        return _SEQUENCE_TAGS[tag](_decode(_expect(payload, list, tag), allowed))
    if tag == "__float__":
        if payload not in ("nan", "inf", "-inf"):
            raise DecodingError(f"__float__ must be 'nan', 'inf' or '-inf', not {payload!r:.80}")
        return float(payload)
    if tag == "__dict__":
        if not all(type(p) is list and len(p) == 2 for p in _expect(payload, list, tag)):
            raise DecodingError(f"__dict__ must be a list of [key, value] pairs: {payload!r:.80}")
        return {_decode(k, allowed): _decode(v, allowed) for k, v in payload}
    if tag == "__dtype__":
        return np.dtype(_expect(payload, str, tag))
    if tag == "__scalar__":
        return np.dtype(_expect(payload, str, tag)).type(_decode(doc["value"], allowed))
    if tag == "__ndarray__":
        return _decode_array(_expect(payload, list, tag), doc["dtype"], doc["shape"], allowed)
    obj = _resolve(_expect(payload, str, tag), allowed)  # __callable__, __estimator__, __scorer__
    if tag == "__callable__":
        return obj
    if tag == "__selector__":
        compose = sys.modules.get("sklearn.compose")
        if compose is None or obj is not compose.make_column_selector:
            raise DecodingError(f"{payload!r} is not sklearn.compose.make_column_selector")
        return obj(**_expect(_decode(doc["params"], allowed), dict, "params"))
    if tag == "__estimator__":
        if not (isinstance(obj, type) and hasattr(obj, "get_params")):
            raise DecodingError(f"{payload!r} is not an estimator class")
        params = _expect(_decode(_expect(doc["params"], dict, "params"), allowed), dict, "params")
        try:
            rebuilt = _set_requests(obj(**params), doc.get("requests"))
            if doc.get("output"):
                rebuilt.set_output(**_expect(_decode(doc["output"], allowed), dict, "output"))
            return rebuilt
        except TypeError as exc:
            raise DecodingError(f"cannot rebuild {payload}: {exc}") from exc
    from sklearn.metrics import make_scorer  # __scorer__

    greater_is_better = _expect(doc["greater_is_better"], bool, "greater_is_better")
    return _set_requests(make_scorer(obj, greater_is_better=greater_is_better,
                                     response_method=_decode(doc["response_method"], allowed),
                                     **_expect(_decode(doc["kwargs"], allowed), dict, "scorer kwargs")),
                         doc.get("requests"))


def _expect(value: object, kind: type, what: str) -> object:
    if type(value) is not kind:
        raise DecodingError(f"{what} must be a {kind.__name__}, not {value!r:.80}")
    return value


def _decode_array(items: list, dtype: object, shape: object, allowed: frozenset) -> np.ndarray:
    dtype, shape = np.dtype(_expect(dtype, str, "dtype")), _expect(shape, list, "shape")
    if not all(type(n) is int and n >= 0 for n in shape) or math.prod(shape) != len(items):
        raise DecodingError(f"__ndarray__ shape {shape} does not match its {len(items)} items")
    items = _decode(items, allowed)
    if dtype.kind != "O":
        return np.array(items, dtype=dtype).reshape(shape)
    arr = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):  # one by one: items may themselves be lists
        arr[i] = item
    return arr.reshape(shape)


# --------------------------------------------------------------------------- packages_of
def packages_of(doc: object) -> set[str]:
    """Top-level packages an encoded document imports from.

    Parameters
    ----------
    doc : object
        A structure returned by :func:`encode`.

    Returns
    -------
    set of str
        E.g. ``{"sklearn"}`` for a pipeline of scikit-learn estimators; the
        safe builtin types are not counted.
    """
    return {dotted.split(".")[0] for dotted in references_of(doc) if dotted not in _SAFE_BUILTINS}


def references_of(doc: object) -> set[str]:
    """The dotted paths of the classes and functions an encoded document imports.

    Parameters
    ----------
    doc : object
        A structure returned by :func:`encode` (or any JSON document: read without importing).

    Returns
    -------
    set of str
        E.g. ``{"sklearn.linear_model.Ridge", "numpy.sqrt"}``.
    """
    found = set()
    if type(doc) is list:
        for item in doc:
            found |= references_of(item)
    elif type(doc) is dict:
        for key, value in doc.items():
            if key in _PATH_TAGS and type(value) is str:
                found.add(value)
            else:
                found |= references_of(value)
    return found
