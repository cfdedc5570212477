"""The allow-list of what a document may import, and the import itself.

A class or function path of experiment.json (``sklearn.linear_model.Ridge``) is
imported only if its top-level package is allowed: the default packages, or one
the experiment's own objects came from (recorded at ``write()`` in the signed
experiment.json). Whatever the caller allows, the standard library, private
top-level modules and packages that load pickles or code are refused, from
their name alone, before anything is imported: an allow-list without holes.
"""
from __future__ import annotations

import functools
import importlib
import sys
import types
from collections.abc import Iterable

from ..exceptions import DecodingError

__all__ = ["DEFAULT_PACKAGES", "refusal"]


DEFAULT_PACKAGES: frozenset[str] = frozenset({"sklearn", "numpy", "scipy", "mempamal"})

# Never imported from a document, even if the caller allows them (an allow-list without holes):
# - the whole standard library (sys.stdlib_module_names), whose modules run commands, touch files
#   or the network, or load code and pickles, often under a private twin (_pickle, _posixsubprocess,
#   _io, posix...): listing the bad ones missed some;
# - any top-level module whose name starts with "_" (C twins, importlib's _imp, _frozen_importlib...);
# - third-party packages that load pickles or code.
# The only exceptions are the reviewed _SAFE_BUILTINS below (the builtin scalar types).
_STDLIB = frozenset(sys.stdlib_module_names)
_DENIED = frozenset("""
    joblib cloudpickle dill pip setuptools pkg_resources distutils _distutils_hack wheel virtualenv
    IPython ipykernel jupyter_client pexpect ptyprocess paramiko fabric invoke
""".split())
# Test and build helpers of the default packages run scripts or compilers: never loaded.
_DENIED_SEGMENTS = frozenset({"tests", "testing", "_testing", "f2py", "distutils", "_build_utils"})
_SAFE_BUILTINS = {f"builtins.{t.__name__}": t for t in (float, int, bool, str, complex, object)}


@functools.lru_cache(maxsize=1024)
def _resolve(dotted: str, allowed: frozenset) -> object:
    """Import a class or function by dotted path, checking the package before importing."""
    if dotted in _SAFE_BUILTINS:
        return _SAFE_BUILTINS[dotted]
    parts = dotted.split(".")
    top = parts[0]
    why = refusal(top, allowed)
    if why is not None:
        raise DecodingError(f"{dotted!r} is not in the allowed packages {_shown(allowed)}; {why}")
    if len(parts) < 2 or not all(p.isidentifier() and not p.startswith("__") for p in parts):
        raise DecodingError(f"{dotted!r} is not a dotted path of public names")
    if top in DEFAULT_PACKAGES and _DENIED_SEGMENTS.intersection(parts):
        raise DecodingError(f"{dotted!r}: test and build helpers are never loaded")
    for n_module in range(len(parts), 0, -1):  # longest importable module prefix
        module_name = ".".join(parts[:n_module])
        try:
            obj = importlib.import_module(module_name)
            break
        except ModuleNotFoundError as exc:
            if exc.name and (module_name + ".").startswith(exc.name + "."):
                continue  # not a module: the rest are attributes
            raise DecodingError(f"importing {module_name!r} failed: {exc}") from exc
        except Exception as exc:
            raise DecodingError(f"importing {module_name!r} failed: {exc!r}") from exc
    else:
        raise DecodingError(f"cannot import {dotted!r}: no module {top!r}")
    for attr in parts[n_module:]:
        if attr.startswith("_"):
            raise DecodingError(f"{dotted!r}: private name {attr!r} is refused")
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise DecodingError(f"{dotted!r}: no attribute {attr!r}") from None
        if isinstance(obj, types.ModuleType):  # an alias such as numpy.lib._npyio_impl.os
            raise DecodingError(f"{dotted!r}: {attr!r} is a module imported under another name; "
                                "refused")
    if not callable(obj):  # modules included
        raise DecodingError(f"{dotted!r} is not a class or function")
    owner = getattr(obj, "__module__", None)
    owner_top = owner.split(".")[0] if isinstance(owner, str) else top
    if refusal(owner_top, allowed) is not None:  # re-exported from elsewhere (numpy's C functions of _io...)
        if not any(obj is t for t in _SAFE_BUILTINS.values()):
            raise DecodingError(f"{dotted!r} is {owner}.{getattr(obj, '__qualname__', '?')}, "
                                f"which is not in the allowed packages {_shown(allowed)}")
    return obj


def refusal(top: str, allowed: Iterable[str] = DEFAULT_PACKAGES) -> str | None:
    """Why a document may not import from the top-level module ``top``, or None if it may.

    Decided from the name alone, before anything is imported: the standard library, private
    top-level modules and the packages of ``_DENIED`` are never allowed, whatever ``allowed`` says.
    """
    if top in _STDLIB or top.startswith("_") or top in _DENIED:
        kind = ("part of the standard library" if top in _STDLIB else
                "a private module" if top.startswith("_") else "a package that loads pickles or code")
        return (f"{top!r} is never allowed ({kind}: tasks never import it from a document; "
                "use a function of numpy, scipy, scikit-learn or of your own package)")
    if top not in allowed:
        return f"pass allowed_packages={{{top!r}}} to decode() if you trust it"
    return None


def _shown(allowed: frozenset) -> list[str]:
    return sorted(p for p in allowed if refusal(p, allowed) is None)
