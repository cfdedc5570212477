"""Stacked columns: many targets and permutations fitted as the columns of one y (issue 18).

The original project's workload: a cross-validated score for each of T targets and each of N
permutations of y, then max-T p-values. StandardScaler + Ridge over ``np.logspace(-2, 4, 10)``,
outer ``KFold(5, shuffle=True, random_state=0)``, inner ``KFold(5)``, r2, ``per_target=True``,
X of n samples x p features (Gaussian), targets with some signal.

Cases (each prints its figures and the load average beside them):

- ``speedup``: the same experiment written twice, ``stack_columns=True`` and ``False``, run one
  after the other with ``n_jobs`` workers (write + run + load_results each), checked equal
  (scores, permutation scores, p-values, max-T p-values within 1e-9), and the ratio;
- ``paper``: stacked only, at the paper's size: wall time of write and run, tasks, and the peak
  resident memory of a worker process (the largest task it ran);
- ``himalaya``: the same columns and splits with himalaya's ``RidgeCV`` (one SVD per split reused
  across alphas and targets; ``local_alpha``: one alpha per column), the scaler fitted on each
  outer training set (not inside the inner folds: its numbers differ slightly), on one core,
  and the ratio to ``paper``'s run when both are asked.

Run::

    python benchmarks/columns.py speedup --targets 10 --permutations 100
    python benchmarks/columns.py paper himalaya --targets 20 --permutations 1000 --n 500 --p 1000

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


def workload(n: int, p: int, n_targets: int):
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.RandomState(0)
    X = rng.randn(n, p)
    Y = X[:, :n_targets] * 0.5 + rng.randn(n, n_targets)
    pipe = make_pipeline(StandardScaler(), Ridge())
    return X, Y, pipe, {"ridge__alpha": np.logspace(-2, 4, 10)}, KFold(5, shuffle=True, random_state=0), KFold(5)


def experiment(case, n_permutations: int, stack: bool):
    from mempamal import Experiment

    X, Y, pipe, grid, outer, inner = case
    return Experiment(pipe, cv=outer, inner_cv=inner, param_grid=grid, scoring="r2", per_target=True,
                      n_permutations=n_permutations, stack_columns=stack)


def timed_run(case, n_permutations: int, stack: bool, n_jobs: int, root: Path):
    from mempamal import load_results, run
    from mempamal.workdir.workflow import load_workflow

    workdir = root / ("stacked" if stack else "per-column")
    start = time.perf_counter()
    experiment(case, n_permutations, stack).write(case[0], case[1], workdir)
    written = time.perf_counter() - start
    n_tasks = len(load_workflow(workdir).tasks)
    run(workdir, n_jobs=n_jobs, progress=False)
    results = load_results(workdir)
    return results, written, time.perf_counter() - start, n_tasks


def load() -> str:
    return "load average %.1f %.1f %.1f" % os.getloadavg()


def speedup(args, root: Path) -> None:
    case = workload(args.n, args.p, args.targets)
    n_columns = args.targets * (args.permutations + 1)
    print(f"speedup: {args.targets} targets x {args.permutations} permutations ({n_columns} columns), "
          f"n={args.n}, p={args.p}, n_jobs={args.n_jobs} ({load()})")
    stacked, w1, t1, k1 = timed_run(case, args.permutations, True, args.n_jobs, root)
    print(f"  stacked:    {t1:8.1f} s (write {w1:.1f} s, {k1} tasks) ({load()})")
    apart, w2, t2, k2 = timed_run(case, args.permutations, False, args.n_jobs, root)
    print(f"  per column: {t2:8.1f} s (write {w2:.1f} s, {k2} tasks), {t2 / n_columns:.2f} s per column ({load()})")
    worst = 0.0
    for name in ("permutation_scores", "pvalues", "pvalues_fwer", "test_scores"):
        worst = max(worst, float(np.max(np.abs(np.asarray(getattr(stacked, name)["r2"], dtype=float)
                                               - np.asarray(getattr(apart, name)["r2"], dtype=float)))))
    assert worst <= 1e-9, worst
    assert stacked.best_params == apart.best_params
    print(f"  equal within {worst:.1e}; stacked is {t2 / t1:.1f}x faster")


class PeakMemory:
    """The largest resident memory of any child process (a worker, with the tasks it runs), sampled
    every 0.2 s while the run goes on: a worker's peak bounds the peak of each task it ran."""

    def __enter__(self) -> "PeakMemory":
        import threading

        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.2):
            for child in me.children(recursive=True):
                try:
                    self.peak = max(self.peak, child.memory_info().rss)
                except psutil.Error:
                    pass

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def paper(args, root: Path) -> float:
    case = workload(args.n, args.p, args.targets)
    n_columns = args.targets * (args.permutations + 1)
    print(f"paper: {args.targets} targets x {args.permutations} permutations ({n_columns} columns), "
          f"n={args.n}, p={args.p}, n_jobs={args.n_jobs} ({load()})")
    with PeakMemory() as memory:
        results, written, total, n_tasks = timed_run(case, args.permutations, True, args.n_jobs, root)
    print(f"  stacked: {total:.1f} s (write {written:.1f} s, {n_tasks} tasks), peak memory of a worker "
          f"{memory.peak / 2**20:.0f} MB ({load()})")
    print(f"  smallest max-T p-value {np.min(results.pvalues_fwer['r2']):.4f}")
    return total


def himalaya(args) -> float:
    """The same columns and splits with himalaya's RidgeCV on one core: one outer fold at a time."""
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    from mempamal.experiment.permutations import permutation_indices

    set_backend("numpy")
    X, Y, _, grid, outer, inner = workload(args.n, args.p, args.targets)
    indices = permutation_indices(X.shape[0], None, args.permutations, 0)
    columns = np.column_stack([Y[:, t] if p < 0 else Y[indices[p], t]
                               for t in range(args.targets) for p in range(-1, args.permutations)])
    start = time.perf_counter()
    scores = []
    with threadpool_limits(1):
        for train, test in outer.split(X):
            scaler = StandardScaler().fit(X[train])
            model = RidgeCV(alphas=grid["ridge__alpha"], cv=inner, solver_params={"local_alpha": True})
            model.fit(scaler.transform(X[train]), columns[train])
            scores.append(r2_score(columns[test], model.predict(scaler.transform(X[test])), multioutput="raw_values"))
    elapsed = time.perf_counter() - start
    print(f"himalaya RidgeCV, one core: {elapsed:.1f} s for {columns.shape[1]} columns ({load()})")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="+", choices=["speedup", "paper", "himalaya"])
    parser.add_argument("--targets", type=int, default=10)
    parser.add_argument("--permutations", type=int, default=100)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--p", type=int, default=200)
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mempamal-columns-"))
    try:
        times = {}
        for case in args.cases:
            if case == "speedup":
                speedup(args, root)
            elif case == "paper":
                times["paper"] = paper(args, root)
            else:
                times["himalaya"] = himalaya(args)
        if len(times) == 2:
            print(f"mempamal stacked ({args.n_jobs} workers) / himalaya (one core): "
                  f"{times['paper'] / times['himalaya']:.1f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
