"""Write the example notebooks (examples/*.ipynb) from the cells below, without outputs.

    python examples/make_notebooks.py

Each notebook reads MEMPAMAL_EXAMPLE_SMALL=1 (a smaller problem, as the tests
use) and MEMPAMAL_EXAMPLE_WORKDIR (where to write the workdir).
"""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

class Markdown(str):
    """A markdown cell; plain strings are code cells."""


md = Markdown

SETUP = '''import os

small = os.environ.get("MEMPAMAL_EXAMPLE_SMALL") == "1"  # the tests run a smaller problem
workdir = os.environ.get("MEMPAMAL_EXAMPLE_WORKDIR", "runs/{name}")'''

NOTEBOOKS = {
    "first_example": [
        md("# First example: a cross-validated F1 score\n\n"
        "iris, `StandardScaler` + `LogisticRegression`, stratified 5-fold cross-validation, weighted F1, "
        "no model selection. `Experiment.write` turns the experiment into files and commands (nothing is "
        "fitted there); `run` executes them on a back-end, here the local one with two tasks at once; "
        "`load_results` reads the results back."),
        SETUP,
        '''from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mempamal import Experiment, load_results, run

X, y = load_iris(return_X_y=True)
pipe = Pipeline([("scaler", StandardScaler()), ("logit", LogisticRegression())])
exp = Experiment(pipe, cv=StratifiedKFold(5, shuffle=True, random_state=0), scoring="f1_weighted")
exp.write(X, y, workdir, overwrite=True)''',
        md("The workflow: one `refit` task per outer fold (fit on the training set, score on the test set), "
        "then `gather`. The bar counts done / failed / total tasks."),
        '''report = run(workdir, backend="local", n_jobs=2)
report.summary()''',
        '''res = load_results(workdir)
res.summary()''',
        md("The outer test predictions in sample order, as `cross_val_predict` gives them, "
        "and the per-fold results as a pandas DataFrame (`pip install 'mempamal[plot]'`):"),
        '''from sklearn.metrics import confusion_matrix

confusion_matrix(y, res.predictions)''',
        "res.to_frame()",
    ],
    "second_example": [
        md("# Second example: model selection by nested cross-validation\n\n"
        "The first example with a 10-point logarithmic grid of `C`, selected by an inner stratified 5-fold "
        "cross-validation of each outer training set (nested 5 x 5). The results equal scikit-learn's "
        "`cross_validate(GridSearchCV(...))` on the same folds."),
        SETUP,
        '''import numpy as np
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
exp.write(X, y, workdir, overwrite=True)''',
        md("One `map` task per (outer fold, inner fold) fits and scores the grid; one `refit` per outer fold "
        "selects as `GridSearchCV` does, refits and tests. From a shell, `mempamal status WORKDIR` counts "
        "the tasks done, running, pending and failed while this runs."),
        '''run(workdir, backend="local", n_jobs=2)
res = load_results(workdir)
res.summary()''',
        md("The inner search of outer fold 0, in the shape of `GridSearchCV.cv_results_`:"),
        '''import pandas as pd

pd.DataFrame(res.cv_results(outer=0))[["param_logit__C", "mean_test_score", "std_test_score", "rank_test_score"]]''',
        md("The outer-fold scores and the inner validation curve of each fold (log axis for the log grid); "
        "`mempamal report WORKDIR -o report.html` writes the same as one self-contained file."),
        '''%matplotlib inline
res.plot()''',
    ],
    "third_example": [
        md("# Third example: estimators that are not scikit-learn's\n\n"
        "mempamal runs anything that follows scikit-learn's conventions:\n\n"
        "1. **your own estimator**: `SimpleElasticNet` in `elastic_net.py` beside this notebook, an elastic "
        "net written in numpy, selected on a 2-D grid (alpha x l1_ratio) on the diabetes data (r2);\n"
        "2. **a library from PyPI**: [imbalanced-learn](https://imbalanced-learn.org), whose Pipeline "
        "resamples the training folds only (`pip install imbalanced-learn`).\n\n"
        "The tasks run in other processes (or machines) and import the estimators there. A class defined "
        "in a notebook cannot be imported by them (mempamal refuses it with a message saying so): put it in "
        "a module, installed or on `PYTHONPATH`."),
        SETUP,
        '''import sys

# elastic_net.py is in this directory: make it importable here and by every task process.
here = os.getcwd()
sys.path.insert(0, here)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))

from elastic_net import SimpleElasticNet''',
        '''import numpy as np
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
enet.summary()''',
        md("A 2-D grid gives a heat map of the inner scores per outer fold (★: the selected point):"),
        '''%matplotlib inline
enet.plot()''',
        md("Now a third-party library: imbalanced-learn's Pipeline undersamples each training set, never the "
        "test set, on an imbalanced classification."),
        '''from imblearn.pipeline import make_pipeline
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
load_results(os.path.join(workdir, "imbalanced")).summary()''',
    ],
    "fourth_example": [
        md("# Fourth example: nested parallelism\n\n"
        "The iris measurements plus 10,000 noise features, regressed on the class label with "
        "`ElasticNetCV`, which selects its own penalty (10 l1 ratios x 50 alphas) by an internal "
        "cross-validation that is itself parallel (`n_jobs=-1`, and multithreaded BLAS). The outer 5-fold "
        "cross-validation (r2) runs on Soma-Workflow's light mode **one task at a time** (`run(..., n_jobs=1)`), "
        "each allowed every core's threads: the estimator's own parallelism uses the machine and nothing is "
        "oversubscribed. Knowing how parallel your estimator already is stays your job."),
        SETUP,
        '''import numpy as np
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
exp.write(X, y, workdir, overwrite=True)''',
        '''# One job at a time; threads_per_task defaults to all cores divided by n_jobs.
run(workdir, backend="soma-workflow", n_jobs=1)
res = load_results(workdir)
res.summary()''',
        '''%matplotlib inline
res.plot()''',
    ],
    "fifth_example": [
        md("# Fifth example: is the score better than chance, for every target, corrected for all of them?\n\n"
        "Four targets measured on the same 80 samples: two that the 10 features predict (a strong and a "
        "weak one) and two that are pure noise. Each target gets its own nested cross-validation "
        "(`StandardScaler` + `Ridge`, 6 values of alpha, 5 x 5 folds), and so does each of 200 permutations "
        "of the samples, the same permutations for every target (`per_target=True`). A target's p-value "
        "counts the permutations that score at least as well as the real data, as scikit-learn's "
        "`permutation_test_score` does; the family-wise corrected one (max-T) compares each target with the "
        "best of all targets in each permutation, so that four targets do not give four chances of a false "
        "discovery."),
        SETUP,
        '''import numpy as np
from sklearn.datasets import make_regression
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mempamal import Experiment, load_results, run

n_permutations, n_folds = (10, 3) if small else (200, 5)
X, signal = make_regression(n_samples=80, n_features=10, n_informative=3, n_targets=2, random_state=0)
rng = np.random.RandomState(0)
strong = signal[:, 0] + rng.normal(scale=0.5 * signal[:, 0].std(), size=80)
weak = signal[:, 1] + rng.normal(scale=2.5 * signal[:, 1].std(), size=80)
Y = np.column_stack([strong, weak, rng.standard_normal(80), rng.standard_normal(80)])

pipe = make_pipeline(StandardScaler(), Ridge())
exp = Experiment(pipe, cv=KFold(n_folds, shuffle=True, random_state=0), param_grid={"ridge__alpha": np.logspace(-2, 3, 6)},
                 inner_cv=KFold(n_folds), scoring="r2", n_permutations=n_permutations, per_target=True)
exp.write(X, Y, workdir, overwrite=True)''',
        md("Each permutation task runs whole analyses (inner search, selection, refit, test) of a chunk of "
        "permutations on one outer fold; they need nothing of the unpermuted analysis and run beside it."),
        '''run(workdir, backend="local", n_jobs=2)
res = load_results(workdir)
res.summary()''',
        '''res.pvalues["r2"], res.pvalues_fwer["r2"]''',
        md("The null distribution of each target's score, with the observed score (beyond six targets, "
        "`plot()` draws -log10(p) per target instead):"),
        '''%matplotlib inline
res.plot()''',
    ],
}


def main() -> None:
    here = Path(__file__).resolve().parent
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                   "language": "python"},
                                    "language_info": {"name": "python"}})
        for i, text in enumerate(cells):
            if isinstance(text, Markdown):
                cell = new_markdown_cell(str(text))
            else:
                cell = new_code_cell(text.replace("{name}", name) if text is SETUP else text)
            cell.id = f"{name}-{i}"
            nb.cells.append(cell)
        nbformat.write(nb, here / f"{name}.ipynb")


if __name__ == "__main__":
    main()
