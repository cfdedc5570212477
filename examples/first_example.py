"""First example: a cross-validated F1 score, no model selection.

    python examples/first_example.py [WORKDIR] [--small]

iris, StandardScaler + LogisticRegression, stratified 5-fold cross-validation,
weighted F1, run on the local back-end. ``--small``: 3 folds instead of 5.

The cells below (``# %%``) are also first_example.ipynb, written by
examples/make_notebooks.py.
"""
# %% [markdown]
# # First example: a cross-validated F1 score
#
# iris, `StandardScaler` + `LogisticRegression`, stratified 5-fold cross-validation, weighted F1, no model
# selection. `Experiment.write` turns the experiment into files and commands (nothing is fitted there); `run`
# executes them on a back-end, here the local one with two tasks at once; `load_results` reads the results back.

# %% active="py"
import argparse

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("workdir", nargs="?", default="runs/first_example", help="where to write (default: %(default)s)")
parser.add_argument("--small", action="store_true", help="a smaller problem, to check that it runs")
args = parser.parse_args()
workdir, small = args.workdir, args.small

# %% active="ipynb"
# import os
#
# small = os.environ.get("MEMPAMAL_EXAMPLE_SMALL") == "1"  # the tests run a smaller problem
# workdir = os.environ.get("MEMPAMAL_EXAMPLE_WORKDIR", "runs/first_example")

# %%
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mempamal import Experiment, load_results, run

X, y = load_iris(return_X_y=True)
pipe = Pipeline([("scaler", StandardScaler()), ("logit", LogisticRegression())])
exp = Experiment(pipe, cv=StratifiedKFold(3 if small else 5, shuffle=True, random_state=0), scoring="f1_weighted")
exp.write(X, y, workdir, overwrite=True)  # the same experiment again keeps its results

# %% [markdown]
# The workflow: one `refit` task per outer fold (fit on the training set, score on the test set), then
# `gather`. The bar counts done / failed / total tasks.

# %%
run(workdir, backend="local", n_jobs=2)
res = load_results(workdir)

# %% active="py"
print(res.summary())

# %% active="ipynb"
# res.summary()

# %% [markdown]
# The outer test predictions in sample order, as `cross_val_predict` gives them, and the per-fold results as a
# pandas DataFrame (`pip install 'mempamal[plot]'`):

# %%
from sklearn.metrics import confusion_matrix

print(confusion_matrix(y, res.predictions))

# %% active="ipynb"
# res.to_frame()
