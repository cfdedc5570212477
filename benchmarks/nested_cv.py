"""mempamal's local back-end against scikit-learn's own nested cross-validation.

For each case, in one process and alternating the implementations on every
repetition (so that load on a shared machine hits both alike), it times:

- scikit-learn serial: ``cross_validate(GridSearchCV(pipe, grid, cv=inner, n_jobs=1), X, y, cv=outer)``
  on one BLAS thread (joblib caps its workers' threads in the parallel runs; uncapped, a serial run on a
  busy machine oversubscribes the cores and looks several times slower);
- scikit-learn with ``GridSearchCV(n_jobs=N)`` (the way scikit-learn parallelises nested CV);
- mempamal: ``Experiment.write`` + ``run(backend="local", n_jobs=N)`` + ``load_results``
  (the whole user-visible cost, files included; with N=1 on one BLAS thread too),

checks that the outer test scores are identical, and prints the median wall
times, the ratio mempamal / scikit-learn (same N) and mempamal's parallel
efficiency, scikit-learn serial / (N x mempamal).

Run::

    python benchmarks/nested_cv.py --n-jobs 2                # all cases, 3 repetitions
    python benchmarks/nested_cv.py --n-jobs 1 --cases iris
    python benchmarks/nested_cv.py --cases iris wide --repeat 1

Not a test: nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def case_digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    X, y = load_digits(return_X_y=True)
    pipe = Pipeline([("scaler", StandardScaler()), ("svc", SVC())])
    grid = {"svc__C": np.logspace(-2, 3, 6), "svc__gamma": np.logspace(-4, -1, 4)}
    return X, y, pipe, grid, StratifiedKFold(5, shuffle=True, random_state=0), StratifiedKFold(5), "accuracy"


def case_iris():
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_iris(return_X_y=True)
    pipe = Pipeline([("scaler", StandardScaler()), ("logit", LogisticRegression())])
    grid = {"logit__C": np.logspace(-4, 5, 10)}
    return X, y, pipe, grid, StratifiedKFold(5, shuffle=True, random_state=0), StratifiedKFold(5), "f1_weighted"


def case_wide():
    from sklearn.datasets import make_regression
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = make_regression(2000, 200, noise=10, random_state=0)
    pipe = Pipeline([("scaler", StandardScaler()), ("ridge", Ridge())])
    grid = {"ridge__alpha": np.logspace(-3, 3, 200)}
    return X, y, pipe, grid, KFold(5, shuffle=True, random_state=0), KFold(5), "neg_mean_squared_error"


CASES = {"digits": case_digits, "iris": case_iris, "wide": case_wide}
LABELS = {"digits": "A digits", "iris": "B iris", "wide": "C wide grid"}


def run_sklearn(case, n_jobs: int) -> np.ndarray:
    from sklearn.model_selection import GridSearchCV, cross_validate
    from threadpoolctl import threadpool_limits

    X, y, pipe, grid, outer, inner, scoring = case
    search = GridSearchCV(pipe, grid, cv=inner, scoring=scoring, n_jobs=n_jobs)
    # The serial run on one BLAS thread (the parallel runs' workers are capped by joblib): uncapped, it
    # oversubscribes a busy machine, looks several times slower and would flatter the efficiency.
    with threadpool_limits(limits=1 if n_jobs == 1 else None):
        return cross_validate(search, X, y, cv=outer, scoring=scoring)["test_score"]


def run_mempamal(case, n_jobs: int, workdir: Path) -> np.ndarray:
    from mempamal import Experiment, load_results, run

    X, y, pipe, grid, outer, inner, scoring = case
    Experiment(pipe, cv=outer, param_grid=grid, inner_cv=inner, scoring=scoring).write(X, y, workdir)
    # The same thread budget as scikit-learn's runs: one BLAS thread per core in use.
    run(workdir, backend="local", n_jobs=n_jobs, threads_per_task=1 if n_jobs == 1 else None, progress=False)
    return load_results(workdir).test_scores[scoring]


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def bench_case(name: str, n_jobs: int, repeat: int, serial: bool, scratch: Path) -> dict:
    case = CASES[name]()
    times: dict[str, list[float]] = {"sklearn_serial": [], "sklearn": [], "mempamal": []}
    max_diff = 0.0
    for r in range(repeat):
        # Alternate who goes first, so that a burst of load elsewhere does not favour one side.
        order = ["sklearn", "mempamal"] if r % 2 == 0 else ["mempamal", "sklearn"]
        if serial and n_jobs != 1:
            order.insert(r % 2 * 2, "sklearn_serial")
        scores = {}
        for who in order:
            if who == "mempamal":
                workdir = scratch / f"{name}-{r}"
                t, scores[who] = timed(run_mempamal, case, n_jobs, workdir)
                shutil.rmtree(workdir)
            else:
                t, scores[who] = timed(run_sklearn, case, 1 if who == "sklearn_serial" else n_jobs)
            times[who].append(t)
        diff = float(np.max(np.abs(np.asarray(scores["mempamal"]) - scores["sklearn"])))
        max_diff = max(max_diff, diff)
        if diff > 1e-12:
            raise AssertionError(f"{name}: mempamal's scores differ from scikit-learn's by {diff}")
        print(f"  {name} rep {r + 1}/{repeat}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items() if v),
              flush=True)
    med = {k: statistics.median(v) for k, v in times.items() if v}
    if n_jobs == 1:
        med["sklearn_serial"] = med["sklearn"]
    out = {"case": name, "n_jobs": n_jobs, "max_diff": max_diff, **med,
           "ratio": med["mempamal"] / med["sklearn"]}
    if "sklearn_serial" in med:
        out["efficiency"] = med["sklearn_serial"] / (n_jobs * med["mempamal"])
    return out


def warm_up(n_jobs: int, scratch: Path) -> None:
    """Start both implementations' worker processes once, untimed (each keeps its own warm pool)."""
    case = case_iris()
    run_sklearn(case, n_jobs)
    run_mempamal(case, n_jobs, scratch / "warm-up")
    shutil.rmtree(scratch / "warm-up")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-jobs", type=int, default=2, help="cores for both implementations (default 2)")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES),
                        help="cases to run (default: all)")
    parser.add_argument("--repeat", type=int, default=3, help="alternating repetitions per case (default 3)")
    parser.add_argument("--no-serial", dest="serial", action="store_false",
                        help="skip scikit-learn's serial run (no parallel efficiency then)")
    args = parser.parse_args(argv)
    print(f"mempamal vs scikit-learn nested CV, n_jobs={args.n_jobs}, {os.cpu_count()} cores, "
          f"{args.repeat} repetitions, median wall times")
    scratch = Path(tempfile.mkdtemp(prefix="mempamal-bench-"))
    try:
        warm_up(args.n_jobs, scratch)
        rows = [bench_case(name, args.n_jobs, args.repeat, args.serial, scratch) for name in args.cases]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    print(f"{'case':<12} {'sklearn n_jobs=1':>16} {f'sklearn n_jobs={args.n_jobs}':>16} "
          f"{f'mempamal n_jobs={args.n_jobs}':>17} {'ratio':>6} {'efficiency':>10}  scores")
    for row in rows:
        serial = f"{row['sklearn_serial']:.2f}s" if "sklearn_serial" in row else "-"
        eff = f"{row['efficiency']:.2f}" if "efficiency" in row else "-"
        print(f"{LABELS[row['case']]:<12} {serial:>16} {row['sklearn']:>15.2f}s {row['mempamal']:>16.2f}s "
              f"{row['ratio']:>6.2f} {eff:>10}  equal (max diff {row['max_diff']:.1g})")


if __name__ == "__main__":
    main()
