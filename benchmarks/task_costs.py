"""What one task costs, and what generation costs at scale.

Four measurements (each a subcommand; ``all`` runs them in turn)::

    python benchmarks/task_costs.py startup      # a map command's start-up vs importing the estimator's modules
    python benchmarks/task_costs.py generate     # write() of 10 x 10 folds x 1,000 grid points, chunk 1
    python benchmarks/task_costs.py scheduling   # local back-end overhead per near-empty task
    python benchmarks/task_costs.py memory --mb 1000   # peak memory of a map task vs a direct fit
    python benchmarks/task_costs.py memory --mb 1000 --frame   # the same with X a pandas DataFrame

Not a test: nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def _iris_workdir(workdir: Path, grid_chunk_size=None) -> Path:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from mempamal import Experiment

    X, y = load_iris(return_X_y=True)
    pipe = Pipeline([("scaler", StandardScaler()), ("logit", LogisticRegression())])
    return Experiment(pipe, cv=StratifiedKFold(5, shuffle=True, random_state=0),
                      param_grid={"logit__C": np.logspace(-4, 5, 10)}, inner_cv=StratifiedKFold(5),
                      scoring="f1_weighted", grid_chunk_size=grid_chunk_size).write(X, y, workdir)


def _wall(argv: list[str], cwd: Path) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of a command."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=ENV, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def startup(args, scratch: Path) -> None:
    """``python -m mempamal task map`` (case B, one map of 10 fits) against bare imports."""
    from mempamal.workdir.layout import TaskId
    from mempamal.tasks import run_task

    workdir = _iris_workdir(scratch / "iris")
    py = sys.executable
    commands = {
        "python -c pass": [py, "-c", "pass"],
        "import estimator modules": [py, "-c", "import sklearn.pipeline, sklearn.preprocessing, "
                                     "sklearn.linear_model"],
        "import estimator + scorer modules": [py, "-c", "import sklearn.pipeline, sklearn.preprocessing, "
                                              "sklearn.linear_model, sklearn.metrics"],
        "import mempamal task modules": [py, "-c", "import mempamal.cli, mempamal.tasks"],
        "mempamal task map (one map, 10 fits)": [py, "-m", "mempamal", "task", "map", ".", "--outer", "0",
                                                 "--inner", "0", "--chunk", "0"],
    }
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in commands}
    warm = "same map task in a warm process"
    times[warm] = []
    run_task(workdir, TaskId("map", outer=0, inner=0, chunk=0))  # imports, untimed
    for _ in range(args.repeat):
        for name, argv in commands.items():  # interleaved, so that load elsewhere hits all alike
            times[name].append(_wall(argv, workdir))
        start, start_cpu = time.perf_counter(), time.process_time()
        run_task(workdir, TaskId("map", outer=0, inner=0, chunk=0))
        times[warm].append((time.perf_counter() - start, time.process_time() - start_cpu))
    print(f"start-up ({args.repeat} interleaved repetitions, medians)")
    med = {}
    for name, runs in times.items():
        med[name] = [statistics.median(r[k] for r in runs) for k in (0, 1)]
        print(f"  {name:<40} wall {med[name][0] * 1000:6.0f} ms   CPU {med[name][1] * 1000:6.0f} ms")
    for k, what in ((0, "wall"), (1, "CPU")):
        cmd = med["mempamal task map (one map, 10 fits)"][k] - med[warm][k]
        for base in ("import estimator modules", "import estimator + scorer modules"):
            print(f"  {what}: command start-up (command - warm task) minus '{base}': "
                  f"{(cmd - med[base][k]) * 1000:+.0f} ms")


def generate(args, scratch: Path) -> None:
    """write() of 10 outer x 10 inner folds x 1,000 grid points, one grid point per map task."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from mempamal import Experiment

    rng = np.random.RandomState(0)
    X, y = rng.randn(500, 5), rng.randn(500)
    pipe = Pipeline([("scaler", StandardScaler()), ("ridge", Ridge())])
    grid = {"ridge__alpha": np.logspace(-3, 3, 1000)}
    times, cpu = [], []
    for r in range(args.repeat):
        workdir = scratch / f"gen-{r}"
        start, start_cpu = time.perf_counter(), time.process_time()
        Experiment(pipe, cv=KFold(10), param_grid=grid, inner_cv=KFold(10),
                   grid_chunk_size=1).write(X, y, workdir)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        size = (workdir / "workflow.json").stat().st_size
        shutil.rmtree(workdir)
    print(f"generation: 100,000 map tasks + 10 refits + gather: write() median {statistics.median(times):.2f} s "
          f"over {args.repeat} (CPU time {statistics.median(cpu):.2f} s), workflow.json {size / 1e6:.1f} MB")


def scheduling(args, scratch: Path) -> None:
    """Local back-end: wall time per near-empty task, minus the same tasks run in one process."""
    from sklearn.dummy import DummyClassifier

    from mempamal import Experiment, run
    from mempamal.workdir.layout import TaskId
    from mempamal.tasks import run_task
    from mempamal.workdir.workflow import load_workflow

    X, y = np.zeros((20, 2)), np.arange(20) % 2
    exp = Experiment(DummyClassifier(), cv=2, param_grid={"strategy": ["prior"] * 50}, inner_cv=2,
                     grid_chunk_size=1, scoring="accuracy")
    workdir = exp.write(X, y, scratch / "empty")
    tasks = load_workflow(workdir).tasks
    run(workdir, n_jobs=args.n_jobs, progress=False, resume=False)  # warm the workers, untimed
    in_process, backend = [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        for task in tasks:
            run_task(workdir, task.id, log=task.log)
        in_process.append((time.perf_counter() - start) / len(tasks))
        start = time.perf_counter()
        run(workdir, n_jobs=args.n_jobs, progress=False, resume=False)
        backend.append((time.perf_counter() - start) / len(tasks))
    a, b = statistics.median(in_process), statistics.median(backend)
    print(f"scheduling: {len(tasks)} near-empty tasks, local back-end n_jobs={args.n_jobs}, median of "
          f"{args.repeat}: {b * 1000:.1f} ms wall per task; the same tasks run one after the other in this "
          f"process: {a * 1000:.1f} ms each; overhead per task: {(b * args.n_jobs - a) * 1000:.1f} ms "
          f"(wall x n_jobs - in-process; with n_jobs > 1 it assumes n_jobs idle cores)")


# -- memory ----------------------------------------------------------------------------------------

DIRECT = """
import sys, numpy as np
from sklearn.linear_model import Ridge
from sklearn.metrics import get_scorer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
X = np.load(sys.argv[1], mmap_mode="r")
train, test = np.load(sys.argv[2]), np.load(sys.argv[3])
y = np.load(sys.argv[4])
X_train, X_test = np.asarray(X[train]), np.asarray(X[test])
del X
scorer = get_scorer("neg_mean_squared_error")
for alpha in (0.1, 1.0, 10.0):
    pipe = Pipeline([("scaler", StandardScaler()), ("ridge", Ridge(alpha=alpha))]).fit(X_train, y[train])
    scorer(pipe, X_test, y[test])
"""


# The same fits with X a DataFrame, holding privately only X[train] and X[test], each one consolidated
# block built from the memory-mapped Arrow file's columns (the least a direct fit can hold).
DIRECT_FRAME = """
import sys, numpy as np, pandas as pd, pyarrow as pa, pyarrow.ipc
from sklearn.linear_model import Ridge
from sklearn.metrics import get_scorer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
table = pa.ipc.open_file(pa.memory_map(sys.argv[1])).read_all()
train, test = np.load(sys.argv[2]), np.load(sys.argv[3])
y = np.load(sys.argv[4])
def rows(indices):
    block = np.empty((len(indices), table.num_columns))
    for j, column in enumerate(table.columns):
        np.take(column.to_numpy(), indices, out=block[:, j])
    return pd.DataFrame(block, columns=table.column_names, copy=False)
X_train, X_test = rows(train), rows(test)
del table
scorer = get_scorer("neg_mean_squared_error")
for alpha in (0.1, 1.0, 10.0):
    pipe = Pipeline([("scaler", StandardScaler()), ("ridge", Ridge(alpha=alpha))]).fit(X_train, y[train])
    scorer(pipe, X_test, y[test])
"""


def _peak(argv: list[str], cwd: Path) -> dict[str, float]:
    """Peak anonymous (private) and file-backed resident memory of a child process, in MB."""
    proc = subprocess.Popen(argv, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL)
    peak = {"RssAnon": 0, "RssFile": 0, "VmHWM": 0}

    def poll():
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as f:
                    for line in f:
                        key, _, value = line.partition(":")
                        if key in peak:
                            peak[key] = max(peak[key], int(value.split()[0]))
            except (OSError, ValueError):
                pass
            time.sleep(0.005)

    thread = threading.Thread(target=poll)
    thread.start()
    start = time.perf_counter()
    proc.wait()
    thread.join()
    if proc.returncode:
        raise RuntimeError(f"{argv} failed")
    return {k: v / 1024 for k, v in peak.items()} | {"wall": time.perf_counter() - start}


def memory(args, scratch: Path) -> None:
    """Peak memory of one map task (3 grid points) on a large X vs the same fits done directly."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from mempamal import Experiment
    from mempamal.experiment.folds import Folds

    n_features = 100
    n_samples = int(args.mb * 1e6 / 8 / n_features)
    rng = np.random.RandomState(0)
    X = rng.standard_normal((n_samples, n_features))
    y = X[:, :10].sum(axis=1) + rng.standard_normal(n_samples)
    if args.frame:
        import pandas as pd

        X = pd.DataFrame(X, columns=[f"x{j}" for j in range(n_features)], copy=False)
    pipe = Pipeline([("scaler", StandardScaler()), ("ridge", Ridge())])
    workdir = Experiment(pipe, cv=KFold(5), param_grid={"ridge__alpha": [0.1, 1.0, 10.0]}, inner_cv=KFold(5),
                         scoring="neg_mean_squared_error").write(X, y, scratch / "big")
    del X
    train, test = Folds(workdir).inner(0, 0)
    for name, a in (("train", train), ("test", test)):
        np.save(scratch / f"{name}.npy", a)
    py = sys.executable
    x_file = "X.arrow" if args.frame else "X.npy"
    direct = [py, "-c", DIRECT_FRAME if args.frame else DIRECT, str(workdir / "data" / x_file),
              str(scratch / "train.npy"),
              str(scratch / "test.npy"), str(workdir / "data" / "y.npy")]
    task = [py, "-m", "mempamal", "task", "map", ".", "--outer", "0", "--inner", "0", "--chunk", "0"]
    results = {"direct fit on X[train]": [], "mempamal map task": []}
    for _ in range(args.repeat):
        results["direct fit on X[train]"].append(_peak(direct, workdir))
        results["mempamal map task"].append(_peak(task, workdir))
    print(f"memory: X {'DataFrame (Arrow IPC file)' if args.frame else 'array'} float64 {n_samples} x {n_features} = {n_samples * n_features * 8 / 1e6:.0f} MB, "
          f"X[train] {len(train) * n_features * 8 / 1e6:.0f} MB, StandardScaler + Ridge, 3 grid points; "
          f"peaks in MB (median of {args.repeat}):")
    med = {}
    for name, runs in results.items():
        med[name] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        m = med[name]
        print(f"  {name:<24} private (RssAnon) {m['RssAnon']:7.0f}   file-backed shared (RssFile) "
              f"{m['RssFile']:7.0f}   VmHWM {m['VmHWM']:7.0f}   wall {m['wall']:.1f} s")
    a, b = med["mempamal map task"]["RssAnon"], med["direct fit on X[train]"]["RssAnon"]
    print(f"  private peak ratio mempamal / direct: {a / b:.3f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["startup", "generate", "scheduling", "memory", "all"])
    parser.add_argument("--repeat", type=int, default=5, help="repetitions (default 5)")
    parser.add_argument("--n-jobs", type=int, default=1, help="local back-end workers for 'scheduling' (default 1)")
    parser.add_argument("--mb", type=float, default=1000, help="size of X for 'memory', MB (default 1000)")
    parser.add_argument("--frame", action="store_true", help="'memory' with X a pandas DataFrame")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="mempamal-costs-"))
    try:
        for what in ["startup", "generate", "scheduling", "memory"] if args.what == "all" else [args.what]:
            globals()[what](args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
