"""Nested parallelism on Soma-Workflow's light mode: jobs at once x threads per job.

The fourth example's experiment (iris plus noise features, ElasticNetCV with
n_jobs=-1 over 10 l1 ratios x 50 alphas, outer k-fold, r2) run with
``backend="soma-workflow"`` in an isolated light mode under three settings,
alternated on every repetition (so that load on a shared machine hits all
alike):

- ``1 job x C threads``: one job at a time, each with every core's BLAS/OpenMP
  threads (the fourth example's choice: the estimator is parallel itself);
- ``C jobs x 1 thread``: as many jobs as cores, BLAS capped to one thread each;
- ``C jobs x C threads``: as many jobs as cores, uncapped (oversubscribed).

It checks that the outer scores are identical and prints the median wall
times. Run::

    python benchmarks/nested_parallelism.py                  # 2,000 noise features, 5 folds, 1 repetition
    python benchmarks/nested_parallelism.py --noise 10000 --repeat 3

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

# Run from a checkout without installing: here and in the jobs' `python -m mempamal task` commands.
ROOT = str(Path(__file__).resolve().parents[1])
sys.path.insert(0, ROOT)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise", type=int, default=2000, help="noise features added to iris (default 2000)")
    parser.add_argument("--folds", type=int, default=5, help="outer folds (default 5)")
    parser.add_argument("--repeat", type=int, default=1, help="repetitions of each setting (default 1)")
    args = parser.parse_args()

    from joblib import cpu_count
    from sklearn.datasets import load_iris
    from sklearn.linear_model import ElasticNetCV
    from sklearn.model_selection import KFold

    from mempamal import Experiment, load_results, run

    cores = cpu_count()
    X, y = load_iris(return_X_y=True)
    X = np.hstack([X, np.random.RandomState(42).standard_normal((X.shape[0], args.noise))])
    y = y.astype(float)
    enet = ElasticNetCV(l1_ratio=[.05, .1, .2, .3, .4, .5, .6, .7, .8, .9], alphas=50, n_jobs=-1)
    settings = {
        f"1 job x {cores} threads": dict(n_jobs=1, threads_per_task=cores),
        f"{cores} jobs x 1 thread": dict(n_jobs=cores, threads_per_task=1),
        f"{cores} jobs x {cores} threads": dict(n_jobs=cores, threads_per_task=cores),
    }
    times: dict[str, list[float]] = {name: [] for name in settings}
    scores = {}
    root = Path(tempfile.mkdtemp(prefix="mempamal-bench-"))
    try:
        for r in range(args.repeat):
            for name, options in settings.items():
                workdir = root / f"run-{r}-{len(times[name])}-{options['n_jobs']}-{options['threads_per_task']}"
                start = time.perf_counter()
                Experiment(enet, cv=KFold(args.folds, shuffle=True, random_state=0), scoring="r2").write(X, y, workdir)
                run(workdir, backend="soma-workflow", isolated_light_mode=root / "soma-workflow", progress=False,
                    **options)
                result = load_results(workdir).test_scores["r2"]
                times[name].append(time.perf_counter() - start)
                scores[name] = result
                print(f"{name}: {times[name][-1]:.1f} s", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    first = next(iter(scores.values()))
    for name, s in scores.items():
        np.testing.assert_allclose(s, first, rtol=0, atol=1e-12, err_msg=name)
    print(f"\niris + {args.noise} noise features, ElasticNetCV(n_jobs=-1), outer {args.folds}-fold, "
          f"{cores} cores, median of {args.repeat}:")
    for name, t in times.items():
        print(f"  {name:<22} {statistics.median(t):8.1f} s")
    print(f"  mean r2 {first.mean():.4f} (identical in every setting)")


if __name__ == "__main__":
    main()
