"""Second example: model selection, nested 5 x 5 cross-validation.

    python examples/second_example.py [WORKDIR] [--small]

The first example with a 10-point logarithmic grid of C, selected in an inner
stratified 5-fold cross-validation of each outer training set. ``--small``:
nested 2 x 2, a 4-point grid.

The cells below (``# %%``) are also second_example.ipynb, written by
examples/make_notebooks.py.
"""
# %% [markdown]
# # Second example: model selection by nested cross-validation
#
# The first example with a 10-point logarithmic grid of `C`, selected by an inner stratified 5-fold
# cross-validation of each outer training set (nested 5 x 5). The results equal scikit-learn's
# `cross_validate(GridSearchCV(...))` on the same folds.

# %% active="py"
import argparse

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("workdir", nargs="?", default="runs/second_example", help="where to write (default: %(default)s)")
parser.add_argument("--small", action="store_true", help="a smaller problem, to check that it runs")
args = parser.parse_args()
workdir, small = args.workdir, args.small

# %% active="ipynb"
# import os
#
# small = os.environ.get("MEMPAMAL_EXAMPLE_SMALL") == "1"  # the tests run a smaller problem
# workdir = os.environ.get("MEMPAMAL_EXAMPLE_WORKDIR", "runs/second_example")

# %%
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mempamal import Experiment, load_results, run

n_outer, n_inner, n_grid = (2, 2, 4) if small else (5, 5, 10)
X, y = load_iris(return_X_y=True)
pipe = Pipeline([("scaler", StandardScaler()), ("logit", LogisticRegression())])
exp = Experiment(pipe,
                 cv=StratifiedKFold(n_outer, shuffle=True, random_state=0),
                 param_grid={"logit__C": np.logspace(-4, 5, n_grid)},
                 inner_cv=StratifiedKFold(n_inner),
                 scoring="f1_weighted")
exp.write(X, y, workdir, overwrite=True)  # the same experiment again keeps its results

# %% [markdown]
# One `map` task per (outer fold, inner fold) fits and scores the grid; one `refit` per outer fold selects as
# `GridSearchCV` does, refits and tests. From a shell, `mempamal status WORKDIR` counts the tasks done, running,
# pending and failed while this runs.

# %%
run(workdir, backend="local", n_jobs=2)
res = load_results(workdir)

# %% active="py"
print(res.summary())

# %% active="ipynb"
# res.summary()

# %% [markdown]
# The inner search of outer fold 0, in the shape of `GridSearchCV.cv_results_`:

# %% active="ipynb"
# import pandas as pd
#
# pd.DataFrame(res.cv_results(outer=0))[["param_logit__C", "mean_test_score", "std_test_score", "rank_test_score"]]

# %% [markdown]
# The outer-fold scores and the inner validation curve of each fold (log axis for the log grid);
# `mempamal report WORKDIR -o report.html` writes the same as one self-contained file.

# %% active="ipynb"
# %matplotlib inline
# res.plot()
