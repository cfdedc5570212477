"""Third example: estimators that are not scikit-learn's.

mempamal runs anything that follows scikit-learn's conventions. Two cases:

1. your own estimator: ``SimpleElasticNet`` in ``examples/elastic_net.py``, an
   elastic net written in numpy, selected on a 2-D grid (alpha x l1_ratio) by
   nested cross-validation on the diabetes data (r2);
2. a third-party library from PyPI: imbalanced-learn (``pip install
   imbalanced-learn``), whose Pipeline resamples the training folds only,
   on an imbalanced classification (balanced accuracy).

The tasks run in other processes (or on other machines) and import the
estimators there: your own module must be importable by them, installed or on
PYTHONPATH (this script puts ``examples/`` on it).

    python examples/third_example.py [WORKDIR]

MEMPAMAL_EXAMPLE_SMALL=1: a smaller grid and fewer folds, to check that it runs.
"""
import os
import sys
from pathlib import Path

import numpy as np
from imblearn.pipeline import make_pipeline
from imblearn.under_sampling import RandomUnderSampler
from sklearn.datasets import load_diabetes, make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.preprocessing import StandardScaler

from mempamal import Experiment, load_results, run

# Where elastic_net.py is: importable here, and by every task process through PYTHONPATH.
here = str(Path(__file__).resolve().parent)
sys.path.insert(0, here)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
from elastic_net import SimpleElasticNet  # noqa: E402

workdir = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/third_example")
small = os.environ.get("MEMPAMAL_EXAMPLE_SMALL") == "1"
n_outer, n_inner = (2, 2) if small else (5, 5)

# 1. Your own estimator, a 2-D grid.
X, y = load_diabetes(return_X_y=True)
grid = {"alpha": np.logspace(-5, 0, 4 if small else 11),
        "l1_ratio": [0.1, 0.9] if small else [0.1, 0.3, 0.5, 0.7, 0.9]}
exp = Experiment(SimpleElasticNet(), cv=KFold(n_outer, shuffle=True, random_state=0), param_grid=grid,
                 inner_cv=KFold(n_inner), scoring="r2")
exp.write(X, y, workdir / "elastic_net", overwrite=True)
run(workdir / "elastic_net", backend="local", n_jobs=2)
enet = load_results(workdir / "elastic_net")
print(enet.summary())

# 2. A library from PyPI: imbalanced-learn's Pipeline undersamples each training set, never the test set.
X, y = make_classification(n_samples=300, n_features=10, weights=[0.9], random_state=0)
pipe = make_pipeline(StandardScaler(), RandomUnderSampler(random_state=0), LogisticRegression())
exp = Experiment(pipe, cv=StratifiedKFold(n_outer, shuffle=True, random_state=0),
                 param_grid={"logisticregression__C": np.logspace(-3, 2, 3 if small else 6)},
                 inner_cv=StratifiedKFold(n_inner), scoring="balanced_accuracy")
exp.write(X, y, workdir / "imbalanced", overwrite=True)
run(workdir / "imbalanced", backend="local", n_jobs=2)
print()
print(load_results(workdir / "imbalanced").summary())

if os.environ.get("MEMPAMAL_EXAMPLE_PLOT") == "1":  # the heat maps of the 2-D grid
    enet.plot().savefig(workdir / "elastic_net.png")
