"""Fourth example: nested parallelism on Soma-Workflow.

    python examples/fourth_example.py [WORKDIR] [--small]

The iris measurements plus 10,000 noise features regressed on the class label
by ElasticNetCV (itself parallel: n_jobs=-1, and multithreaded BLAS), outer
5-fold cross-validation (r2), one task at a time on Soma-Workflow's light mode.
``--small``: 100 noise features and 2 outer folds.

The cells below (``# %%``) are also fourth_example.ipynb, written by
examples/make_notebooks.py.
"""
# %% [markdown]
# # Fourth example: nested parallelism
#
# The iris measurements plus 10,000 noise features, regressed on the class label with `ElasticNetCV`, which
# selects its own penalty (10 l1 ratios x 50 alphas) by an internal cross-validation that is itself parallel
# (`n_jobs=-1`, and multithreaded BLAS). The outer 5-fold cross-validation (r2) runs on Soma-Workflow's light
# mode **one task at a time** (`run(..., n_jobs=1)`), each allowed every core's threads: the estimator's own
# parallelism uses the machine and nothing is oversubscribed. Knowing how parallel your estimator already is
# stays your job.

# %% active="py"
import argparse

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("workdir", nargs="?", default="runs/fourth_example", help="where to write (default: %(default)s)")
parser.add_argument("--small", action="store_true", help="a smaller problem, to check that it runs")
args = parser.parse_args()
workdir, small = args.workdir, args.small

# %% active="ipynb"
# import os
#
# small = os.environ.get("MEMPAMAL_EXAMPLE_SMALL") == "1"  # the tests run a smaller problem
# workdir = os.environ.get("MEMPAMAL_EXAMPLE_WORKDIR", "runs/fourth_example")

# %%
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import ElasticNetCV
from sklearn.model_selection import KFold

from mempamal import Experiment, load_results, run

n_noise, n_outer = (100, 2) if small else (10_000, 5)
X, y = load_iris(return_X_y=True)
rng = np.random.RandomState(42)
X = np.hstack([X, rng.standard_normal((X.shape[0], n_noise))])
y = y.astype(float)

enet = ElasticNetCV(l1_ratio=[.05, .1, .2, .3, .4, .5, .6, .7, .8, .9], alphas=50, n_jobs=-1)
exp = Experiment(enet, cv=KFold(n_outer, shuffle=True, random_state=0), scoring="r2")
exp.write(X, y, workdir, overwrite=True)  # the same experiment again keeps its results

# %%
# One job at a time; threads_per_task defaults to all cores divided by n_jobs.
run(workdir, backend="soma-workflow", n_jobs=1)
res = load_results(workdir)

# %% active="py"
print(res.summary())

# %% active="ipynb"
# res.summary()

# %% active="ipynb"
# %matplotlib inline
# res.plot()
