"""Back-ends, registered by name.

A back-end module is imported only when asked for, so that an optional
scheduler (Dask) costs nothing to those who do not use it. :func:`mempamal.run`
(in :mod:`mempamal.running`) creates one with :func:`create_backend`.
"""
from __future__ import annotations

import importlib

from .base import DONE, FAILED, NOT_RUN, Backend, Option, RunReport, Status, TaskOutcome, WorkflowError

__all__ = ["Backend", "Option", "RunReport", "TaskOutcome", "WorkflowError", "Status", "DONE", "FAILED", "NOT_RUN",
           "register_backend", "available_backends", "get_backend", "create_backend"]

_BACKENDS: dict[str, str] = {
    "local": "mempamal.backends.local:LocalBackend",
    "dask": "mempamal.backends.dask:DaskBackend",
    "soma-workflow": "mempamal.backends.soma_workflow:SomaWorkflowBackend",
    "slurm": "mempamal.backends.slurm:SlurmBackend",
}


def register_backend(name: str, path: str) -> None:
    """Register a back-end by name.

    Parameters
    ----------
    name : str
        The name that :func:`run` and ``mempamal run --backend`` take.
    path : str
        ``"module:Class"``, a :class:`Backend` subclass imported when first used;
        its ``options`` become flags of ``mempamal run``.

    Raises
    ------
    ValueError
        When ``path`` is not ``"module:Class"``.

    See Also
    --------
    Backend : What the class implements (its example registers and runs one).

    Examples
    --------
    The module is imported only when the back-end is first used:

    >>> from mempamal.backends import available_backends, register_backend
    >>> register_backend("my-cluster", "my_package.backends:MyCluster")
    >>> "my-cluster" in available_backends()
    True
    """
    module, colon, cls = path.partition(":")
    if not colon or not module or not cls:
        raise ValueError(f"path: expected 'module:Class', got {path!r}")
    _BACKENDS[name] = path


def available_backends() -> list[str]:
    """The names of the registered back-ends, sorted.

    Returns
    -------
    names : list of str
        ``"dask"``, ``"local"``, ``"slurm"``, ``"soma-workflow"`` and those :func:`register_backend` added.

    Examples
    --------
    >>> from mempamal.backends import available_backends
    >>> available_backends()
    ['dask', 'local', 'slurm', 'soma-workflow']
    """
    return sorted(_BACKENDS)


def get_backend(name: str) -> type[Backend]:
    """The back-end class registered as ``name`` (its module imported now).

    Parameters
    ----------
    name : str
        A name of :func:`available_backends`.

    Returns
    -------
    cls : type
        The :class:`Backend` subclass.

    Raises
    ------
    ValueError
        For an unknown name, naming the registered ones.

    Examples
    --------
    >>> from mempamal.backends import Backend, get_backend
    >>> local = get_backend("local")
    >>> issubclass(local, Backend), local.name
    (True, 'local')
    >>> get_backend("condor")
    Traceback (most recent call last):
    ...
    ValueError: backend: unknown back-end 'condor'; choose one of ['dask', 'local', 'slurm', 'soma-workflow']
    """
    try:
        module, _, cls = _BACKENDS[name].partition(":")
    except KeyError:
        raise ValueError(f"backend: unknown back-end {name!r}; choose one of {available_backends()}") from None
    return getattr(importlib.import_module(module), cls)


def create_backend(name: str, **options) -> Backend:
    """The back-end ``name`` built with ``options``, each checked against its declaration first.

    Parameters
    ----------
    name : str
        A name of :func:`available_backends`.
    **options
        The back-end's options, as its ``options`` declare them (``n_jobs``, ``threads_per_task``...).

    Returns
    -------
    backend : Backend
        The back-end, ready to execute a workflow.

    Raises
    ------
    ValueError
        For an unknown back-end, or an option the back-end does not declare (named, with the
        ones it takes) before its constructor runs.

    Examples
    --------
    >>> from mempamal.backends import create_backend
    >>> backend = create_backend("local", n_jobs=2)
    >>> backend.name
    'local'
    >>> create_backend("local", cores=2)
    Traceback (most recent call last):
    ...
    ValueError: backend 'local' has no option 'cores'; its options: n_jobs, threads_per_task
    """
    cls = get_backend(name)
    known = [o.name for o in cls.options]
    for option in options:
        if option not in known:
            raise ValueError(f"backend {name!r} has no option {option!r}; its options: "
                             f"{', '.join(known) or 'none'}")
    return cls(**options)
