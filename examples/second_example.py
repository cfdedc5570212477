"""Second example: model selection, nested 5 x 5 cross-validation.

The first example with a 10-point logarithmic grid of C, selected in an inner
stratified 5-fold cross-validation of each outer training set.
"""
import sys

import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mempamal import Experiment, load_results, run

workdir = sys.argv[1] if len(sys.argv) > 1 else "runs/second_example"

X, y = load_iris(return_X_y=True)
pipe = Pipeline([("scaler", StandardScaler()), ("logit", LogisticRegression())])
exp = Experiment(pipe,
                 cv=StratifiedKFold(5, shuffle=True, random_state=0),
                 param_grid={"logit__C": np.logspace(-4, 5, 10)},
                 inner_cv=StratifiedKFold(5),
                 scoring="f1_weighted")
exp.write(X, y, workdir)
run(workdir, backend="local", n_jobs=2)
res = load_results(workdir)
print(res.summary())
