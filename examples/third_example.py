"""Third example: estimators that are not scikit-learn's.

    python examples/third_example.py [WORKDIR] [--small] [--plot]

Your own estimator (``SimpleElasticNet`` in examples/elastic_net.py, on a 2-D
grid) and a library from PyPI (imbalanced-learn: ``pip install
imbalanced-learn``), each by nested 5 x 5 cross-validation. ``--small``: nested
2 x 2 and smaller grids. ``--plot``: also save the heat maps of the 2-D grid as
WORKDIR/elastic_net.png.

The cells below (``# %%``) are also third_example.ipynb, written by
examples/make_notebooks.py.
"""
# %% [markdown]
# # Third example: estimators that are not scikit-learn's
#
# mempamal runs anything that follows scikit-learn's conventions:
#
# 1. **your own estimator**: `SimpleElasticNet` in `elastic_net.py` beside this notebook, an elastic net written
#    in numpy, selected on a 2-D grid (alpha x l1_ratio) on the diabetes data (r2);
# 2. **a library from PyPI**: [imbalanced-learn](https://imbalanced-learn.org), whose Pipeline resamples the
#    training folds only (`pip install imbalanced-learn`).
#
# The tasks run in other processes (or machines) and import the estimators there. A class defined in a notebook
# or a script's `__main__` cannot be imported by them (mempamal refuses it with a message saying so): put it in
# a module, installed or on `PYTHONPATH`.

# %% active="py"
import argparse
import os
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("workdir", nargs="?", default="runs/third_example", help="where to write (default: %(default)s)")
parser.add_argument("--small", action="store_true", help="a smaller problem, to check that it runs")
parser.add_argument("--plot", action="store_true", help="save the heat maps as WORKDIR/elastic_net.png")
args = parser.parse_args()
workdir, small = args.workdir, args.small
here = str(Path(__file__).resolve().parent)  # where elastic_net.py is

# %% active="ipynb"
# import os
#
# small = os.environ.get("MEMPAMAL_EXAMPLE_SMALL") == "1"  # the tests run a smaller problem
# workdir = os.environ.get("MEMPAMAL_EXAMPLE_WORKDIR", "runs/third_example")
# here = os.getcwd()  # where elastic_net.py is

# %%
import sys

# elastic_net.py: importable here, and by every task process through PYTHONPATH.
sys.path.insert(0, here)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))

from elastic_net import SimpleElasticNet

# %%
import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.model_selection import KFold

from mempamal import Experiment, load_results, run

n_outer, n_inner = (2, 2) if small else (5, 5)
X, y = load_diabetes(return_X_y=True)
grid = {"alpha": np.logspace(-5, 0, 4 if small else 11),
        "l1_ratio": [0.1, 0.9] if small else [0.1, 0.3, 0.5, 0.7, 0.9]}
exp = Experiment(SimpleElasticNet(), cv=KFold(n_outer, shuffle=True, random_state=0), param_grid=grid,
                 inner_cv=KFold(n_inner), scoring="r2")
exp.write(X, y, os.path.join(workdir, "elastic_net"), overwrite=True)
run(os.path.join(workdir, "elastic_net"), backend="local", n_jobs=2)
enet = load_results(os.path.join(workdir, "elastic_net"))

# %% active="py"
print(enet.summary())

# %% active="ipynb"
# enet.summary()

# %% [markdown]
# A 2-D grid gives a heat map of the inner scores per outer fold (★: the selected point):

# %% active="py"
if args.plot:
    enet.plot().savefig(os.path.join(workdir, "elastic_net.png"))

# %% active="ipynb"
# %matplotlib inline
# enet.plot()

# %% [markdown]
# Now a third-party library: imbalanced-learn's Pipeline undersamples each training set, never the test set, on
# an imbalanced classification.

# %%
from imblearn.pipeline import make_pipeline
from imblearn.under_sampling import RandomUnderSampler
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

X, y = make_classification(n_samples=300, n_features=10, weights=[0.9], random_state=0)
pipe = make_pipeline(StandardScaler(), RandomUnderSampler(random_state=0), LogisticRegression())
exp = Experiment(pipe, cv=StratifiedKFold(n_outer, shuffle=True, random_state=0),
                 param_grid={"logisticregression__C": np.logspace(-3, 2, 3 if small else 6)},
                 inner_cv=StratifiedKFold(n_inner), scoring="balanced_accuracy")
exp.write(X, y, os.path.join(workdir, "imbalanced"), overwrite=True)
run(os.path.join(workdir, "imbalanced"), backend="local", n_jobs=2)
imbalanced = load_results(os.path.join(workdir, "imbalanced"))

# %% active="py"
print()
print(imbalanced.summary())

# %% active="ipynb"
# imbalanced.summary()
