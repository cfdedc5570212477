"""The cache of workdirs behind :mod:`mempamal.model_selection`'s functions.

A call without ``workdir=`` writes its experiment in a directory of the cache named by
its fingerprint, the one :meth:`Experiment.write` computes and compares (the experiment's
document, the data, the folds and permutations), computed in memory before anything is
written: the same call again, after an interruption or in a new process, finds the same
directory, where storing rewrites nothing and :func:`mempamal.run` resumes (a finished
workdir runs nothing).

The cache folder is ``$MEMPAMAL_CACHE_DIR`` if set, else the platform's cache directory:
``$XDG_CACHE_HOME/mempamal`` or ``~/.cache/mempamal`` (Linux), ``~/Library/Caches/mempamal``
(macOS), ``%LOCALAPPDATA%\\mempamal\\Cache`` (Windows).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..experiment.compile import Compiled, check_data, compile_experiment
from ..experiment.experiment import Experiment
from ..experiment.store import store
from ..workdir.files import write_json
from ..workdir.layout import EXPERIMENT, LOCK, RESULTS_JSON
from ..workdir.lock import Holder

ENV = "MEMPAMAL_CACHE_DIR"
ENTRY = "cache-entry.json"  # marks a directory as a cache entry: clear_cache() removes only those
_KEY_LENGTH = 32  # hex digits of the digest naming an entry (128 bits)


def cache_dir() -> Path:
    """The folder holding the cached workdirs (not created here).

    Returns
    -------
    pathlib.Path
        ``$MEMPAMAL_CACHE_DIR`` when set, else the platform's cache directory followed by
        ``mempamal``.

    See Also
    --------
    list_cache : What it holds.
    clear_cache : Empty it.

    Examples
    --------
    >>> import os
    >>> from mempamal.model_selection import cache_dir
    >>> os.environ["MEMPAMAL_CACHE_DIR"] = "/scratch/me/mempamal-cache"  # else ~/.cache/mempamal (Linux)
    >>> print(cache_dir())
    /scratch/me/mempamal-cache
    """
    override = os.environ.get(ENV)
    if override:
        return Path(override).expanduser()
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "mempamal"
    if os.name == "nt":
        local = os.environ.get("LOCALAPPDATA")
        return (Path(local) if local else home / "AppData" / "Local") / "mempamal" / "Cache"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else home / ".cache") / "mempamal"


@dataclass
class CacheEntry:
    """One cached workdir, as :func:`list_cache` describes it.

    Parameters
    ----------
    path : Path
        The workdir.
    call : str
        The function and estimator that wrote it.
    estimator : str
        The repr of the estimator evaluated (a search's own estimator).
    n_samples : int or None
        The number of samples of its data.
    finished : bool
        Whether its results are written (the same call returns them at once).
    size : int
        Its size on disk, in bytes.
    modified : float
        The last change of any of its files, in seconds since the epoch.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mempamal.model_selection import cache_dir, cross_val_score, list_cache
    >>> os.environ["MEMPAMAL_CACHE_DIR"] = tempfile.mkdtemp()  # an empty cache, for this example
    >>> X, y = load_iris(return_X_y=True)
    >>> scores = cross_val_score(LogisticRegression(), X, y, cv=3, progress=False)
    >>> [entry] = list_cache()
    >>> entry.path.parent == cache_dir(), entry.finished, entry.size > 0
    (True, True, True)
    """

    path: Path
    call: str          # the function and estimator that wrote it
    estimator: str     # the repr of the estimator that was evaluated (the search's own estimator)
    n_samples: int | None
    finished: bool     # its results are written (a call returns them at once)
    size: int          # bytes on disk
    modified: float    # the last change of any of its files (seconds since the epoch)


def list_cache() -> list[CacheEntry]:
    """The cached workdirs, the least recently changed first.

    Returns
    -------
    list of CacheEntry
        Each entry's path, the call that wrote it, its estimator, number of samples,
        whether it is finished, its size in bytes and when it last changed.

    See Also
    --------
    clear_cache : Remove them.

    Examples
    --------
    A call of :mod:`mempamal.model_selection` without ``workdir=`` writes its experiment
    in the cache:

    >>> import os, tempfile
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mempamal.model_selection import cross_val_score, list_cache
    >>> os.environ["MEMPAMAL_CACHE_DIR"] = tempfile.mkdtemp()  # an empty cache, for this example
    >>> X, y = load_iris(return_X_y=True)
    >>> scores = cross_val_score(LogisticRegression(), X, y, cv=3, progress=False)
    >>> [(entry.call, entry.estimator, entry.n_samples, entry.finished) for entry in list_cache()]
    [('cross_val_score(estimator)', 'LogisticRegression()', 150, True)]
    """
    root = cache_dir()
    entries = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if not (path / ENTRY).is_file():
            continue
        files = [p for p in path.rglob("*") if p.is_file()]
        stats = [p.stat() for p in files]
        experiment = _read(path / EXPERIMENT)
        entries.append(CacheEntry(
            path=path, call=_read(path / ENTRY).get("call", "?"),
            estimator=experiment.get("estimator_repr", "?"), n_samples=experiment.get("n_samples"),
            finished=(path / RESULTS_JSON).is_file(), size=sum(s.st_size for s in stats),
            modified=max((s.st_mtime for s in stats), default=0.0)))
    return sorted(entries, key=lambda e: e.modified)


def clear_cache() -> list[Path]:
    """Remove every cached workdir, except those a live run holds (their ``run.lock``).

    Only directories marked as cache entries are removed: anything else in the cache folder
    (``MEMPAMAL_CACHE_DIR`` may point anywhere) is left alone.

    Returns
    -------
    list of pathlib.Path
        The directories removed.

    Warns
    -----
    UserWarning
        For each entry kept because a run holds it.

    See Also
    --------
    list_cache : What it would remove.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mempamal.model_selection import clear_cache, cross_val_score, list_cache
    >>> os.environ["MEMPAMAL_CACHE_DIR"] = tempfile.mkdtemp()  # an empty cache, for this example
    >>> X, y = load_iris(return_X_y=True)
    >>> scores = cross_val_score(LogisticRegression(), X, y, cv=3, progress=False)
    >>> [entry.path for entry in list_cache()] == clear_cache()
    True
    >>> list_cache()
    []
    """
    removed = []
    for entry in list_cache():
        holder = _lock_holder(entry.path)
        if holder is not None and holder.alive() is not False:
            warnings.warn(f"{entry.path}: kept, a run holds it ({holder})", UserWarning, stacklevel=2)
            continue
        shutil.rmtree(entry.path)
        removed.append(entry.path)
    return removed


def cache_command(clear: bool = False) -> str:
    """What ``mempamal cache [--clear]`` prints: the entries, one a line, or those removed."""
    root = cache_dir()
    if clear:
        removed = clear_cache()
        return f"mempamal: removed {len(removed)} cached workdirs from {root}"
    entries = list_cache()
    lines = [f"{root}: {len(entries)} cached workdirs, {sum(e.size for e in entries) / 1e6:.1f} MB "
             "(mempamal cache --clear removes them)"]
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.modified))
        estimator = " ".join(e.estimator.split())
        lines.append(f"{e.path.name}  {when}  {'finished' if e.finished else 'unfinished'}  "
                     f"{e.size / 1e6:.1f} MB  {e.n_samples} samples  {e.call}: "
                     f"{estimator[:60] + '...' if len(estimator) > 60 else estimator}")
    return "\n".join(lines)


def compile_call(exp: Experiment, X, y, groups, params: dict | None) -> Compiled:
    """What ``exp.write(X, y, ...)`` would write, in memory: its steps before the files (validate, compile)."""
    checked = exp._validate()
    data = check_data(X, y, groups, params, estimator=exp.estimator, per_target=exp.per_target)
    return compile_experiment(exp, checked, *data)


def cached_workdir(exp: Experiment, compiled: Compiled, call: str) -> Path:
    """Store a compiled experiment in its cache entry (nothing is written when it is there); return the entry.

    The entry is named by the experiment's fingerprint (the document, the data, the folds and
    permutations: what write() compares), the interpreter of its commands and scikit-learn's version.
    """
    import sklearn

    unseeded = _unseeded(exp)
    if unseeded:
        warnings.warn(f"{', '.join(unseeded)}: not seeded, so each call draws anew: this call gets a cache entry "
                      "of its own, and an interrupted call cannot resume; give an int random_state for "
                      "reproducible, resumable calls", UserWarning, stacklevel=3)
    key = hashlib.sha256("\n".join([compiled.doc["fingerprint"], sys.executable, sklearn.__version__]).encode())
    workdir = cache_dir() / key.hexdigest()[:_KEY_LENGTH]
    # The name says which experiment this is: anything else found there is a write that was interrupted.
    store(compiled, workdir, python=sys.executable, overwrite=True)
    if not (workdir / ENTRY).exists():
        write_json(workdir / ENTRY, {"call": call, "created": time.time(), "mempamal_version": __version__})
    return workdir


def _unseeded(exp: Experiment) -> list[str]:
    """The random draws of ``exp`` that differ at each call (no int seed)."""
    found = []
    with_search = exp.param_grid is not None or exp.param_distributions is not None
    for name, cv in (("cv", exp.cv), ("inner_cv", exp.inner_cv if with_search else None)):
        if getattr(cv, "random_state", 0) is None and getattr(cv, "shuffle", True):
            found.append(f"{name}={cv!r}")
    if exp.param_distributions is not None and exp.random_state is None:
        found.append("RandomizedSearchCV(random_state=None)")
    if exp.n_permutations and exp.permutation_random_state is None:
        found.append("permutation random_state=None")
    return found


def _read(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def _lock_holder(workdir: Path) -> Holder | None:
    doc = _read(workdir / LOCK)
    try:
        return Holder.from_json(doc) if doc else None
    except (KeyError, TypeError, ValueError):
        return None
