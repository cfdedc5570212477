"""Permutation inference: mempamal against a loop of scikit-learn's permutation_test_score per target.

The workload of the issue: iris, StandardScaler + LogisticRegression, a 10-point grid of C,
nested StratifiedKFold 5 x 5, N permutations of y, for T targets (the iris labels, then null
targets: the labels shuffled once each, as a phenotype with no signal). In one process, on the
same cores, it times:

- scikit-learn serial: for each target, ``permutation_test_score(GridSearchCV(pipe, grid, cv=inner),
  X, y_t, cv=outer, n_permutations=N, n_jobs=1)`` on one BLAS thread;
- scikit-learn parallel: the same loop with ``n_jobs=J`` (permutations in parallel);
- mempamal: ``Experiment(..., n_permutations=N, per_target=True).write`` + ``run(n_jobs=J)`` +
  ``load_results`` (the whole user-visible cost, files included),

checks that every score, permutation score and p-value is equal (1e-12), and prints the wall
times, the ratio mempamal / scikit-learn parallel, and the parallel efficiencies
(scikit-learn serial / (J x wall time)).

Run::

    python benchmarks/permutations.py                      # 20 permutations, 2 targets, 2 cores
    python benchmarks/permutations.py --permutations 20 --targets 1

Not a test: nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def workload(n_targets: int):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_iris(return_X_y=True)
    rng = np.random.RandomState(42)
    Y = np.column_stack([y] + [rng.permutation(y) for _ in range(n_targets - 1)])
    pipe = Pipeline([("scaler", StandardScaler()), ("logit", LogisticRegression())])
    grid = {"logit__C": np.logspace(-4, 5, 10)}
    return X, Y, pipe, grid, StratifiedKFold(5, shuffle=True, random_state=0), StratifiedKFold(5), "accuracy"


def run_sklearn(case, n_permutations: int, n_jobs: int):
    from sklearn.model_selection import GridSearchCV, permutation_test_score
    from threadpoolctl import threadpool_limits

    X, Y, pipe, grid, outer, inner, scoring = case
    out = []
    # The serial run on one BLAS thread, as joblib caps its workers' threads in the parallel run.
    with threadpool_limits(limits=1 if n_jobs == 1 else None):
        for t in range(Y.shape[1]):
            search = GridSearchCV(pipe, grid, cv=inner, scoring=scoring)
            out.append(permutation_test_score(search, X, Y[:, t], cv=outer, n_permutations=n_permutations,
                                              random_state=0, scoring=scoring, n_jobs=n_jobs))
    return out


def run_mempamal(case, n_permutations: int, n_jobs: int, workdir: Path):
    from mempamal import Experiment, load_results, run

    X, Y, pipe, grid, outer, inner, scoring = case
    Experiment(pipe, cv=outer, param_grid=grid, inner_cv=inner, scoring=scoring, n_permutations=n_permutations,
               permutation_random_state=0, per_target=True).write(X, Y, workdir)
    run(workdir, backend="local", n_jobs=n_jobs, threads_per_task=1 if n_jobs == 1 else None, progress=False)
    res = load_results(workdir)
    return [(res.observed_score[scoring][t], res.permutation_scores[scoring][t], res.pvalues[scoring][t])
            for t in range(Y.shape[1])]


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def max_difference(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x, dtype=float) - np.asarray(y, dtype=float))))
               for ra, rb in zip(a, b) for x, y in zip(ra, rb))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--permutations", type=int, default=20, help="permutations of y (default 20)")
    parser.add_argument("--targets", type=int, default=2, help="targets: iris, then null ones (default 2)")
    parser.add_argument("--n-jobs", type=int, default=2, help="cores for both implementations (default 2)")
    parser.add_argument("--no-serial", dest="serial", action="store_false",
                        help="skip scikit-learn's serial loop (no efficiencies then)")
    args = parser.parse_args(argv)
    case = workload(args.targets)
    print(f"permutation inference: iris nested 5 x 5, 10-point grid, {args.permutations} permutations, "
          f"{args.targets} target(s), n_jobs={args.n_jobs}, {os.cpu_count()} cores; load {os.getloadavg()}",
          flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="mempamal-bench-"))
    try:
        # Warm both implementations' worker pools once, untimed.
        run_mempamal(workload(1), 1, args.n_jobs, scratch / "warm-up")
        run_sklearn(workload(1), 1, args.n_jobs)
        times, results = {}, {}
        names = (["sklearn_serial"] if args.serial else []) + ["sklearn", "mempamal"]
        for who in names:
            if who == "mempamal":
                times[who], results[who] = timed(run_mempamal, case, args.permutations, args.n_jobs,
                                                 scratch / "run")
            else:
                times[who], results[who] = timed(run_sklearn, case, args.permutations,
                                                 1 if who == "sklearn_serial" else args.n_jobs)
            print(f"  {who}: {times[who]:.1f}s", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    diff = max_difference(results["mempamal"], results["sklearn"])
    if diff > 1e-12:
        raise AssertionError(f"mempamal's scores differ from scikit-learn's by {diff}")
    print()
    print(f"{'scikit-learn serial':>20} {f'scikit-learn n_jobs={args.n_jobs}':>20} "
          f"{f'mempamal n_jobs={args.n_jobs}':>18} {'ratio':>6} {'eff. sklearn':>12} {'eff. mempamal':>13}")
    serial = times.get("sklearn_serial")
    eff = (lambda t: f"{serial / (args.n_jobs * t):.2f}") if serial else (lambda t: "-")
    print(f"{(f'{serial:.1f}s' if serial else '-'):>20} {times['sklearn']:>19.1f}s {times['mempamal']:>17.1f}s "
          f"{times['mempamal'] / times['sklearn']:>6.2f} {eff(times['sklearn']):>12} {eff(times['mempamal']):>13}")
    print(f"scores, permutation scores and p-values equal (max difference {diff:.1g}); load {os.getloadavg()}")


if __name__ == "__main__":
    main()
