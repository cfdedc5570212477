"""The Dask back-end on real Dask clusters: a LocalCluster, and a scheduler and two workers
started as separate processes on loopback. Results must equal the local back-end's."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import mempamal
from mempamal.workdir.workflow import load_workflow
from mempamal import Experiment, load_results, run
from mempamal.backends import DONE, FAILED, NOT_RUN, WorkflowError
from mempamal.workdir.folds import Folds

from conftest import assert_same_results

distributed = pytest.importorskip("distributed")

ROOT = Path(mempamal.__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
# Workers import mempamal and this module (KillsItsWorkerOnce): both on their path.
WORKER_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}


class KillsItsWorkerOnce(LogisticRegression):
    """A LogisticRegression whose first fit (anywhere) kills its own process, as the OOM killer would."""

    def __init__(self, marker="", C=1.0):
        super().__init__(C=C)
        self.marker = marker

    def fit(self, X, y, **params):
        try:  # created atomically: of two fits at once on two workers, exactly one kills its worker
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return super().fit(X, y, **params)
        os.kill(os.getpid(), signal.SIGKILL)


class KillsItsWorkerOnRow(LogisticRegression):
    """A LogisticRegression that kills its process whenever its training set holds ``row``."""

    def __init__(self, row=(), C=1.0):
        super().__init__(C=C)
        self.row = row

    def fit(self, X, y, **params):
        if (np.asarray(X) == np.asarray(self.row)).all(axis=1).any():
            os.kill(os.getpid(), signal.SIGKILL)
        return super().fit(X, y, **params)


def iris_experiment(**kwargs):
    X, y = load_iris(return_X_y=True)
    pipe = Pipeline([("scaler", StandardScaler()), ("logit", LogisticRegression())])
    options = dict(cv=StratifiedKFold(3, shuffle=True, random_state=0), param_grid={"logit__C": [0.01, 0.1, 1, 10]},
                   inner_cv=StratifiedKFold(3), scoring="f1_weighted")
    options.update(kwargs)
    return Experiment(pipe, **options), X, y


def dask_worker_processes():
    """This process's children that are Dask workers (a LocalCluster's)."""
    import multiprocessing

    return [p for p in multiprocessing.active_children() if "Dask" in p.name]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The iris experiment run by the local back-end: the reference."""
    exp, X, y = iris_experiment()
    workdir = exp.write(X, y, tmp_path_factory.mktemp("local") / "run")
    run(workdir, backend="local", progress=False)
    return exp, X, y, workdir


@pytest.fixture(scope="module")
def client():
    """A LocalCluster shared by the tests that pass a client in; a killed worker is retried once."""
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           host="127.0.0.1", dashboard_address=None,
                                           scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    with cluster, distributed.Client(cluster, set_as_default=False) as c:
        yield c


def _stop(proc, timeout=15):
    """Terminate a process and the children of its session (a nanny's worker), by its PID."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:  # the group outlives its leader if a child lingers
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _scheduler_address(scheduler_file, scheduler, log, timeout=60):
    """The address in the scheduler file, once it is whole: the scheduler creates the file, then writes it
    (not atomically), so a file that exists may still be empty or cut short."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return json.loads(scheduler_file.read_text())["address"]
        except (FileNotFoundError, ValueError, KeyError):
            assert scheduler.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"the scheduler did not write {scheduler_file} in {timeout} s"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def scheduler_address(tmp_path_factory):
    """`dask scheduler` and two `dask worker` processes on loopback, stopped at the end."""
    tmp = tmp_path_factory.mktemp("dask-cluster")
    scheduler_file = tmp / "scheduler.json"
    procs = []

    def start(*args, log):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "dask", *args], env=WORKER_ENV, cwd=tmp, start_new_session=True,
            stdout=open(tmp / log, "w"), stderr=subprocess.STDOUT))
        return procs[-1]

    try:
        scheduler = start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                          "--scheduler-file", str(scheduler_file), log="scheduler.log")
        address = _scheduler_address(scheduler_file, scheduler, tmp / "scheduler.log")
        for i in range(2):
            # --death-timeout: a worker whose scheduler vanished exits by itself.
            start("worker", address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1",
                  "--death-timeout", "60", "--local-directory", str(tmp / f"w{i}"), log=f"worker{i}.log")
        with distributed.Client(address, set_as_default=False, timeout=60) as c:
            c.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for proc in reversed(procs):  # workers first: they leave the scheduler cleanly
            _stop(proc)


def test_local_cluster_equals_local_backend(local_run, tmp_path):
    exp, X, y, reference = local_run
    workdir = exp.write(X, y, tmp_path / "run")
    report = run(workdir, backend="dask", n_jobs=2, progress=False)
    assert set(report.names(DONE)) == {t.name for t in load_workflow(workdir).tasks}
    assert_same_results(workdir, reference)
    assert "no such" not in (workdir / "logs" / "gather.log").read_text()
    assert not dask_worker_processes(), "the LocalCluster that run() started must be closed"


def test_local_cluster_leaves_the_environment_as_it_was(local_run, tmp_path, monkeypatch):
    """distributed's nannies set OMP_NUM_THREADS=1 (...) in their parent's os.environ for good."""
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "12345")
    exp, X, y, _ = local_run
    run(exp.write(X, y, tmp_path / "run"), backend="dask", n_jobs=1, progress=False)
    assert [os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")] == [None] * 3
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "12345"


def test_external_scheduler_equals_local_backend(local_run, scheduler_address, tmp_path):
    exp, X, y, reference = local_run
    workdir = exp.write(X, y, tmp_path / "run")
    run(workdir, backend="dask", scheduler_address=scheduler_address, progress=False)
    assert_same_results(workdir, reference)
    # The same through the command line, resuming nothing.
    out = subprocess.run([sys.executable, "-m", "mempamal", "run", str(workdir), "--backend", "dask",
                          "--scheduler-address", scheduler_address, "--no-resume", "-q"],
                         env=WORKER_ENV, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    n = len(load_workflow(workdir).tasks)
    assert out.stdout == f"mempamal: {n} tasks: {n} done, 0 failed, 0 not run, 0 skipped (already complete)\n"
    assert_same_results(workdir, reference)


def test_failing_task_is_reported_and_client_stays_open(client, tmp_path):
    # C=-1 makes LogisticRegression raise, and error_score="raise" makes the map task fail.
    exp, X, y = iris_experiment(param_grid={"logit__C": [-1.0, 1.0]}, error_score="raise")
    workdir = exp.write(X, y, tmp_path / "run")
    with pytest.raises(WorkflowError) as info:
        run(workdir, backend="dask", client=client, progress=False)
    report, message = info.value.report, str(info.value)
    assert sorted(report.names(FAILED)) == [f"map-o{o}-i{i}-c0" for o in range(3) for i in range(3)]
    assert sorted(report.names(NOT_RUN)) == ["gather", "refit-o0", "refit-o1", "refit-o2"]
    assert "task map-o0-i0-c0 failed: InvalidParameterError" in message
    assert "logs/map-o0-i0-c0.log" in message and "not run because" in message
    assert "InvalidParameterError" in (workdir / "logs" / "map-o0-i0-c0.log").read_text()
    assert not (workdir / "logs" / "refit-o0.log").exists(), "a dependent of a failed task must not run"
    assert client.status == "running" and client.submit(sum, [1, 2]).result(timeout=30) == 3


def test_progress_counts_every_task(client, tmp_path):
    from mempamal.backends.dask import DaskBackend
    from mempamal.backends.progress import Progress
    from mempamal.workdir.workflow import load_workflow

    exp, X, y = iris_experiment(param_grid={"logit__C": [-1.0, 1.0]}, error_score="raise", cv=2, inner_cv=2)
    workdir = exp.write(X, y, tmp_path / "run").resolve()
    workflow = load_workflow(workdir)
    progress = Progress(len(workflow.tasks), enabled=False)
    outcomes = DaskBackend(client=client).execute(workdir, workflow, workflow.tasks, progress)
    assert (progress.done, progress.failed) == (0, len(workflow.tasks)) == (0, len(outcomes))


def test_killed_worker_task_is_retried(client, tmp_path):
    marker = tmp_path / "killed-once"
    exp = Experiment(KillsItsWorkerOnce(marker=str(marker)), cv=2, scoring="accuracy")
    X, y = load_iris(return_X_y=True)
    workdir = exp.write(X, y, tmp_path / "run")
    report = run(workdir, backend="dask", client=client, progress=False)
    assert marker.exists(), "a worker must have been killed"
    assert not report.names(FAILED) and len(report.names(DONE)) == 3
    np.testing.assert_array_equal(load_results(workdir).test_scores["accuracy"],
                                  [LogisticRegression().fit(X[tr], y[tr]).score(X[te], y[te])
                                   for tr, te in map(Folds(workdir).outer, range(2))])


def test_task_that_always_kills_its_worker_fails(client, tmp_path):
    X, y = load_iris(return_X_y=True)
    # Only the training set of outer fold 1 holds row 0: refit-o1 kills every worker that runs it.
    exp = Experiment(KillsItsWorkerOnRow(row=X[0].tolist()), cv=StratifiedKFold(2), scoring="accuracy")
    workdir = exp.write(X, y, tmp_path / "run")
    with pytest.raises(WorkflowError) as info:
        run(workdir, backend="dask", client=client, progress=False)
    outcomes = info.value.report.outcomes
    assert outcomes["refit-o0"].status == DONE
    assert outcomes["refit-o1"].status == FAILED and "KilledWorker" in outcomes["refit-o1"].error
    assert outcomes["gather"].status == NOT_RUN
    assert "task refit-o1 failed: KilledWorker" in str(info.value)


def test_unreachable_scheduler_is_named(workdir):
    import socket

    import dask

    exp, X, y = iris_experiment(param_grid=None)
    exp.write(X, y, workdir)
    # A port bound but never listened on, held for the whole test: connecting to it is refused. Released
    # before the run, another process (another test's scheduler or worker) could take it, and the client's
    # retries could even connect to themselves from that very port (TCP's simultaneous open).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
        with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
            with pytest.raises(ConnectionError,
                               match=f"scheduler_address: cannot reach a Dask scheduler at {address}"):
                run(workdir, backend="dask", scheduler_address=address, progress=False)


def test_a_task_dask_recomputes_after_it_finished_is_not_run_again(local_run):
    # Dask recomputes a finished task whose result was on a worker that died; its outputs are there.
    from mempamal.backends.dask import _run_on_worker
    from mempamal.workdir.workflow import load_workflow

    workdir = local_run[3]
    task = load_workflow(workdir).by_name["refit-o0"]
    log = workdir / task.log
    before = log.stat().st_mtime_ns
    _run_on_worker(str(workdir), task.id.to_json(), 1)
    assert log.stat().st_mtime_ns == before


def test_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match="scheduler_address, client"):
        mempamal.backends.get_backend("dask")(scheduler_address="tcp://127.0.0.1:1", client=object())
    with pytest.raises(ValueError, match="n_jobs: sets the workers of the LocalCluster"):
        mempamal.backends.get_backend("dask")(scheduler_address="tcp://127.0.0.1:1", n_jobs=2)
    with pytest.raises(ValueError, match="client: expected a distributed.Client"):
        mempamal.backends.get_backend("dask")(client="tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="threads_per_task"):
        mempamal.backends.get_backend("dask")(threads_per_task=0)


def test_without_dask_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # what `import distributed` does when absent
    with pytest.raises(ImportError, match=r"pip install mempamal\[dask\]"):
        mempamal.backends.get_backend("dask")()
