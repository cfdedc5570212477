"""mempamal: Means for EMbarrassingly PArallel MAchine Learning.

Nested cross-validation of scikit-learn estimators as files and commands::

    exp = Experiment(pipe, cv=5, param_grid={...}, inner_cv=5, scoring="f1_weighted")
    exp.write(X, y, "runs/iris")
    run("runs/iris", backend="local", n_jobs=2)
    res = load_results("runs/iris")

Or handed over without blocking, and found again from the workdir alone (after a restart)::

    submit("runs/iris", backend="slurm", cpus=2, time="01:00:00")
    s = attach("runs/iris"); s.status(); s.results(partial=True); s.wait()
"""
__version__ = "0.1.0"

__all__ = ["Experiment", "run", "submit", "attach", "load_results", "__version__"]

from . import _moved

_moved.install()

# Lazy: a task command imports mempamal before anything else, and must start fast.
_LAZY = {
    "Experiment": "mempamal.experiment",
    "run": "mempamal.running",
    "submit": "mempamal.submission",
    "attach": "mempamal.submission",
    "load_results": "mempamal.results",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mempamal' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
