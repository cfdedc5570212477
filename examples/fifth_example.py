"""Fifth example: is the score better than chance, for every target, corrected for all of them?

    python examples/fifth_example.py [WORKDIR] [--small]

Four targets on the same 80 samples (two predictable, two noise), each by
nested 5 x 5 cross-validation (StandardScaler + Ridge, 6 alphas), and so each
of 200 permutations of the samples; p-values per target and family-wise
corrected ones (max-T). Prints them and saves the null distributions as
WORKDIR/permutations.png. ``--small``: 10 permutations and 3 x 3 folds.

The cells below (``# %%``) are also fifth_example.ipynb, written by
examples/make_notebooks.py.
"""
# %% [markdown]
# # Fifth example: is the score better than chance, for every target, corrected for all of them?
#
# Four targets measured on the same 80 samples: two that the 10 features predict (a strong and a weak one) and
# two that are pure noise. Each target gets its own nested cross-validation (`StandardScaler` + `Ridge`, 6 values
# of alpha, 5 x 5 folds), and so does each of 200 permutations of the samples, the same permutations for every
# target (`per_target=True`). A target's p-value counts the permutations that score at least as well as the real
# data, as scikit-learn's `permutation_test_score` does; the family-wise corrected one (max-T) compares each
# target with the best of all targets in each permutation, so that four targets do not give four chances of a
# false discovery.

# %% active="py"
import argparse
import os

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("workdir", nargs="?", default="runs/fifth_example", help="where to write (default: %(default)s)")
parser.add_argument("--small", action="store_true", help="a smaller problem, to check that it runs")
args = parser.parse_args()
workdir, small = args.workdir, args.small

# %% active="ipynb"
# import os
#
# small = os.environ.get("MEMPAMAL_EXAMPLE_SMALL") == "1"  # the tests run a smaller problem
# workdir = os.environ.get("MEMPAMAL_EXAMPLE_WORKDIR", "runs/fifth_example")

# %%
import numpy as np
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
exp.write(X, Y, workdir, overwrite=True)  # the same experiment again keeps its results

# %% [markdown]
# Each permutation task runs whole analyses (inner search, selection, refit, test) of a chunk of permutations on
# one outer fold; they need nothing of the unpermuted analysis and run beside it.

# %%
run(workdir, backend="local", n_jobs=2)
res = load_results(workdir)

# %% active="py"
print(res.summary())
for t, name in enumerate(["strong", "weak", "noise", "noise"]):
    print(f"target {t} ({name}): r2 {res.observed_score['r2'][t]:.3f}, p = {res.pvalues['r2'][t]:.3f}, "
          f"corrected p = {res.pvalues_fwer['r2'][t]:.3f}")

# %% active="ipynb"
# res.summary()

# %% active="ipynb"
# res.pvalues["r2"], res.pvalues_fwer["r2"]

# %% [markdown]
# The null distribution of each target's score, with the observed score (beyond six targets, `plot()` draws
# -log10(p) per target instead):

# %% active="py"
res.plot().savefig(os.path.join(workdir, "permutations.png"))
print(f"null distributions: {os.path.join(workdir, 'permutations.png')}")

# %% active="ipynb"
# %matplotlib inline
# res.plot()
