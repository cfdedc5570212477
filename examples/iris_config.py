"""A config module for ``mempamal generate``: the second example as a file.

    mempamal generate examples/iris_config.py runs/iris
    mempamal run runs/iris -j 2
    mempamal status runs/iris        # from another shell, while it runs
    mempamal results runs/iris
    mempamal report runs/iris -o report.html

A config module defines ``experiment`` (a mempamal.Experiment) and
``load_data()`` returning (X, y) or (X, y, groups). Estimators must be
importable by the tasks: scikit-learn's, an installed library's, or your own
in a module on PYTHONPATH, never a class defined in this file.
"""
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mempamal import Experiment

experiment = Experiment(
    Pipeline([("scaler", StandardScaler()), ("logit", LogisticRegression())]),
    cv=StratifiedKFold(5, shuffle=True, random_state=0),
    param_grid={"logit__C": np.logspace(-4, 5, 10)},
    inner_cv=StratifiedKFold(5),
    scoring="f1_weighted",
)


def load_data():
    return load_iris(return_X_y=True)
