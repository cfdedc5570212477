"""The experiment, before anything runs: what the user describes and how it is written down.

:class:`Experiment` (parameters and validation), then what ``Experiment.write()``
does in three steps: validate (experiment), compile (compile: the document and
arrays, in memory), store (store: the files). Beside them, what tasks use too to
decode what was written: the encoding of estimators and scorers as JSON,
scoring, per-sample parameter routing, folds and permutations.
"""
__all__ = ["Experiment"]


def __getattr__(name):
    # Lazy: a task imports encoding, folds or routing from this package, never the writing steps.
    if name == "Experiment":
        from .experiment import Experiment

        return Experiment
    raise AttributeError(f"module 'mempamal.experiment' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
