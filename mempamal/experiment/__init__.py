"""The experiment, before anything runs: what the user describes and how it is written down.

:class:`Experiment` (parameters and validation), the encoding of estimators and
scorers as JSON, per-sample parameter routing, folds and permutations: the code
that runs when ``Experiment.write()`` is called, and that tasks use to decode
what was written.
"""
from .experiment import Experiment

__all__ = ["Experiment"]
