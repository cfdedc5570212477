"""Fourth example: nested parallelism on Soma-Workflow.

The iris measurements plus 10,000 noise features, regressed on the class
label with ElasticNetCV, which selects its own penalty (10 l1 ratios x 50
alphas) by an internal cross-validation that is itself parallel (n_jobs=-1,
and multithreaded BLAS). The outer 5-fold cross-validation (r2) runs on
Soma-Workflow's light mode with one job at a time, each allowed every core's
threads: the estimator's own parallelism uses the machine, nothing is
oversubscribed.

    python examples/fourth_example.py [WORKDIR] [--small]

``--small`` (or MEMPAMAL_EXAMPLE_SMALL=1): 100 noise features and 2 outer
folds, to check that it runs.
"""
import os
import sys

import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import ElasticNetCV
from sklearn.model_selection import KFold

from mempamal import Experiment, load_results, run

args = [a for a in sys.argv[1:] if a != "--small"]
small = "--small" in sys.argv[1:] or os.environ.get("MEMPAMAL_EXAMPLE_SMALL") == "1"
workdir = args[0] if args else "runs/fourth_example"
n_noise, n_outer = (100, 2) if small else (10_000, 5)

X, y = load_iris(return_X_y=True)
rng = np.random.RandomState(42)
X = np.hstack([X, rng.standard_normal((X.shape[0], n_noise))])
y = y.astype(float)

enet = ElasticNetCV(l1_ratio=[.05, .1, .2, .3, .4, .5, .6, .7, .8, .9], alphas=50, n_jobs=-1)
exp = Experiment(enet, cv=KFold(n_outer, shuffle=True, random_state=0), scoring="r2")
exp.write(X, y, workdir, overwrite=True)
# One job at a time; threads_per_task defaults to all cores divided by n_jobs.
run(workdir, backend="soma-workflow", n_jobs=1)
print(load_results(workdir).summary())
