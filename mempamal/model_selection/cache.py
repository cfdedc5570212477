"""The cache of workdirs behind :mod:`mempamal.model_selection`'s functions.

A call without ``workdir=`` writes its experiment in a directory of the cache, named by a
digest of the experiment (estimator, candidates, scoring, splitters, permutations) and of
the data (X, y, groups, params): the same call again, after an interruption or in a new
process, finds the same directory, where :meth:`Experiment.write` recognises its own
experiment by its fingerprint (and keeps what is finished) and :func:`mempamal.run`
resumes (a finished workdir runs nothing).

The cache folder is ``$MEMPAMAL_CACHE_DIR`` if set, else the platform's cache directory:
``$XDG_CACHE_HOME/mempamal`` or ``~/.cache/mempamal`` (Linux), ``~/Library/Caches/mempamal``
(macOS), ``%LOCALAPPDATA%\\mempamal\\Cache`` (Windows).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..experiment import Experiment
from ..experiment.encoding import encode
from ..experiment.experiment import _fingerprint
from ..experiment.scoring import describe_scoring
from ..workdir.data import as_array
from ..workdir.files import write_json
from ..workdir.layout import EXPERIMENT, LOCK, RESULTS_JSON, WORKFLOW
from ..workdir.lock import Holder
from ..workdir.tabular import is_frame

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
    """One cached workdir, as :func:`list_cache` describes it."""

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


def cached_workdir(exp: Experiment, X, y, groups, params: dict | None, call: str) -> Path:
    """Write ``exp`` into its cache entry (a no-op when the entry already holds it); return the entry.

    The entry's name only finds the directory: whether it holds this very experiment is
    decided by write() from the full fingerprint (data and folds included). An entry holding
    another one (a splitter or permutations not seeded draw other folds each call) is replaced.
    """
    workdir = cache_dir() / cache_key(exp, X, y, groups, params)
    try:
        exp.write(X, y, workdir, groups, params=params)
    except FileExistsError:
        holder = _lock_holder(workdir)
        if holder is not None and holder.alive() is not False:
            raise RuntimeError(f"{workdir}: a run of another draw of this experiment holds it ({holder}); "
                               "wait for it to end, or pass workdir=") from None
        if (workdir / WORKFLOW).exists():  # else a write that was interrupted: nothing to say
            warnings.warn(
                f"{workdir}: this call's folds or permutations differ from those of the previous same call "
                "(an unseeded random_state in cv, the search or the permutations?); its cached results are "
                "replaced, and an interrupted call cannot resume: seed them for reproducible, resumable "
                "calls", UserWarning, stacklevel=3)
        exp.write(X, y, workdir, groups, params=params, overwrite=True)
    if not (workdir / ENTRY).exists():
        write_json(workdir / ENTRY, {"call": call, "created": time.time(), "mempamal_version": __version__})
    return workdir


def cache_key(exp: Experiment, X, y, groups, params: dict | None) -> str:
    """A digest of the experiment's description and of the data, naming its cache entry."""
    import sklearn

    search = exp.param_grid
    if exp.param_distributions is not None:  # distributions have no stable form: their sample has
        from sklearn.model_selection import ParameterSampler

        search = list(ParameterSampler(exp.param_distributions, exp.n_iter, random_state=exp.random_state))
    description = {
        # What else decides the results, and the interpreter written into the task commands.
        "versions": [__version__, sklearn.__version__], "python": sys.executable,
        "routing": bool(sklearn.get_config().get("enable_metadata_routing")),
        "estimator": encode(exp.estimator, "estimator"),
        "search": encode(search, "param_grid"),
        "scoring": describe_scoring(exp.scoring, exp.refit),
        "error_score": encode(exp.error_score),
        "cv": _splitter_key(exp.cv), "inner_cv": _splitter_key(exp.inner_cv) if search is not None else None,
        "permutations": [exp.n_permutations, exp.permutation_random_state],
    }
    description["params"] = sorted(params or {})
    data = [X, y, groups] + [params[k] for k in description["params"]]
    return _fingerprint(description, [_hashable(a) for a in data], [])[:_KEY_LENGTH]


def _hashable(value):
    """What the fingerprint digests: frames and sparse matrices as they are, the rest as arrays."""
    import scipy.sparse as sp

    if value is None or is_frame(value) or sp.issparse(value):
        return value
    return as_array(value, "data")


def _splitter_key(cv):
    """A splitter's parameters (its repr, without memory addresses, which change every process), an
    int, or the digest of a list of (train, test) splits."""
    if cv is None or isinstance(cv, int):
        return cv
    if hasattr(cv, "split"):
        return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(cv))
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for split in cv:  # a list (the caller made one of a generator: it is read twice)
        for indices in split:
            digest.update(np.ascontiguousarray(indices, dtype=np.int64).view(np.uint8))
            digest.update(b"|")
    return digest.hexdigest()


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
