"""Fifth example: is the score better than chance, for every target, corrected for all of them?

Four targets measured on the same 80 samples: two that the 10 features predict (a
strong and a weak one) and two that are pure noise. Each target gets its own nested
cross-validation (StandardScaler + Ridge, 6 values of alpha, 5 x 5 folds), and so does
each of 200 permutations of the samples, the same permutations for every target. The
p-value of a target counts the permutations that score at least as well as the real
data; the family-wise corrected one compares each target with the best of all targets
in each permutation (the maximum statistic), so that testing four targets does not
give four chances of a false discovery.

    python examples/fifth_example.py [WORKDIR] [--small]

``--small`` (or MEMPAMAL_EXAMPLE_SMALL=1): 10 permutations and 3 x 3 folds, to check
that it runs.
"""
import os
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import make_regression
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mempamal import Experiment, load_results, run

args = [a for a in sys.argv[1:] if a != "--small"]
small = "--small" in sys.argv[1:] or os.environ.get("MEMPAMAL_EXAMPLE_SMALL") == "1"
workdir = Path(args[0] if args else "runs/fifth_example")
n_permutations, n_folds = (10, 3) if small else (200, 5)

X, signal = make_regression(n_samples=80, n_features=10, n_informative=3, n_targets=2, random_state=0)
rng = np.random.RandomState(0)
strong = signal[:, 0] + rng.normal(scale=0.5 * signal[:, 0].std(), size=80)
weak = signal[:, 1] + rng.normal(scale=2.5 * signal[:, 1].std(), size=80)
Y = np.column_stack([strong, weak, rng.standard_normal(80), rng.standard_normal(80)])

pipe = make_pipeline(StandardScaler(), Ridge())
exp = Experiment(pipe, cv=KFold(n_folds, shuffle=True, random_state=0), param_grid={"ridge__alpha": np.logspace(-2, 3, 6)},
                 inner_cv=KFold(n_folds), scoring="r2", n_permutations=n_permutations, per_target=True)
exp.write(X, Y, workdir, overwrite=True)
run(workdir, backend="local", n_jobs=2)

res = load_results(workdir)
print(res.summary())
for t, name in enumerate(["strong", "weak", "noise", "noise"]):
    print(f"target {t} ({name}): r2 {res.observed_score['r2'][t]:.3f}, p = {res.pvalues['r2'][t]:.3f}, "
          f"corrected p = {res.pvalues_fwer['r2'][t]:.3f}")
res.plot().savefig(workdir / "permutations.png")
print(f"null distributions: {workdir / 'permutations.png'}")
