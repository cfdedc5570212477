"""The cluster routes on a real SLURM: a single-node cluster on 127.0.0.1 started for this session.

Tests marked ``slurm`` need root (they start munged, MariaDB, slurmdbd, slurmctld
and slurmd, and install them with apt-get when missing); elsewhere they are
skipped with the reason (MEMPAMAL_TEST_SLURM=0 turns them off). A cluster that
fails to start is an error, not a skip.
Every daemon is stopped by its pid at the end of the session, whatever happened.
Each sbatch job costs about a second: the experiments are small (iris, 2 x 2 folds).
"""
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mempamal import Experiment, load_results, run
from mempamal.export import export
from mempamal.export.slurm import needs_sacct_wrapper, stage_resources, write_sacct_wrapper

from conftest import assert_same_as_sklearn, assert_same_results, sklearn_nested

GRID = {"logit__C": [0.01, 1.0, 100.0]}


def iris_experiment():
    X, y = load_iris(return_X_y=True)
    pipe = Pipeline([("scaler", StandardScaler()), ("logit", LogisticRegression())])
    outer, inner = StratifiedKFold(2, shuffle=True, random_state=0), StratifiedKFold(2)
    return X, y, pipe, outer, inner, Experiment(pipe, cv=outer, param_grid=GRID, inner_cv=inner,
                                                scoring="f1_weighted")


def wait_for_jobs(ids, timeout=240):
    """Until none of the jobs ``ids`` is pending or running."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        out = subprocess.run(["squeue", "-h", "-o", "%i %T", "-j", ",".join(ids)], capture_output=True, text=True)
        if not out.stdout.strip():
            return
        time.sleep(0.5)
    raise TimeoutError(f"jobs {ids} still queued after {timeout} s:\n{out.stdout}")


def submit(script):
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd="/", timeout=60)
    assert out.returncode == 0, out.stderr
    return [tuple(line.split()) for line in out.stdout.splitlines()]  # (stage, job id) per array


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    """The iris experiment run by the local back-end, and scikit-learn's oracle."""
    X, y, pipe, outer, inner, exp = iris_experiment()
    workdir = tmp_path_factory.mktemp("local") / "run"
    exp.write(X, y, workdir)
    run(workdir, backend="local", progress=False)
    oracle = sklearn_nested(pipe, GRID, X, y, cv=outer, inner_cv=inner, scoring="f1_weighted")
    return load_results(workdir), oracle


def assert_same_as_local_and_sklearn(workdir, local_reference):
    local, oracle = local_reference
    res = load_results(workdir)
    assert_same_as_sklearn(res, oracle, ["f1_weighted"])
    assert_same_results(res, local)


@pytest.mark.slurm
def test_export_job_arrays_then_resubmit_only_the_missing_tasks(slurm, tmp_path, local_reference):
    X, y, *_, exp = iris_experiment()
    workdir = tmp_path / "run"
    exp.write(X, y, workdir)
    # 4 maps in arrays of at most 3 (split as beyond MaxArraySize), 2 refits, 1 gather.
    script = export(workdir, "slurm", tmp_path / "submit.sh", mem="500M", time="00:10:00", partition="debug",
                    max_array_size=3, batch_size=1)
    # A real failure of one map: its output path is a directory, so its atomic rename fails.
    (workdir / "maps" / "o1-i0-c0.npz").mkdir(parents=True)
    arrays = submit(script)
    assert [stage for stage, _ in arrays] == ["map", "map", "refit", "gather"]
    wait_for_jobs([job for _, job in arrays])
    assert not (workdir / "results.json").exists() and not list((workdir / "outer").glob("*.npz"))
    assert "IsADirectoryError" in (workdir / "logs" / "map-o1-i0-c0.log").read_text()
    done_log = workdir / "logs" / "map-o0-i0-c0.log"
    done_mtime = done_log.stat().st_mtime_ns

    (workdir / "maps" / "o1-i0-c0.npz").rmdir()
    script = export(workdir, "slurm", tmp_path / "submit.sh", batch_size=1)
    lists = {s: (workdir / "slurm" / f"{s}.tasks").read_text().splitlines() for s in ("map", "refit", "gather")}
    assert [line.split("\t")[0] for line in lists["map"]] == ["map-o1-i0-c0"]
    assert [line.split("\t")[0] for line in lists["refit"]] == ["refit-o0", "refit-o1"]
    arrays = submit(script)
    assert [stage for stage, _ in arrays] == ["map", "refit", "gather"]
    wait_for_jobs([job for _, job in arrays])
    assert done_log.stat().st_mtime_ns == done_mtime  # a complete map was not run again
    assert_same_as_local_and_sklearn(workdir, local_reference)


@pytest.mark.slurm
def test_soma_workflow_slurm_scheduler(slurm, tmp_path, local_reference):
    X, y, *_, exp = iris_experiment()
    workdir = tmp_path / "run"
    exp.write(X, y, workdir)
    before = set(Path.home().iterdir())
    if needs_sacct_wrapper():  # Debian 12's Slurm 22.05: Soma-Workflow's sacct call fails as is
        assert subprocess.run(["sacct", "-o", "jobid,stdout"], capture_output=True).returncode != 0
    # The sacct wrapper goes first on PATH for the run (automatic), and only then.
    path = os.environ["PATH"]
    report = run(workdir, backend="soma-workflow", scheduler="slurm", batch_size=1, progress=False)
    assert os.environ["PATH"] == path
    assert len(report.names("done")) == 7
    assert_same_as_local_and_sklearn(workdir, local_reference)
    jobs = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "jobname,state", "-S", "now-1hour"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert {"map-o0-i0-c0|COMPLETED", "refit-o0|COMPLETED", "refit-o1|COMPLETED"} <= set(jobs), jobs  # sbatch jobs
    assert set(Path.home().iterdir()) == before  # nothing left in the home directory


SLURM_WORKERS = dict(queue="debug", cores=1, memory="500MB", walltime="00:10:00", interface="lo",
                     scheduler_options={"dashboard_address": "127.0.0.1:0"}, job_name="mempamal-dask")


def dask_jobs_end(timeout=60):
    """Whether the SLURM jobs of dask workers are all gone (cancelled jobs complete first) within timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        out = subprocess.run(["squeue", "-h", "-n", "mempamal-dask", "-o", "%i"], capture_output=True, text=True)
        if not out.stdout.split():
            return True
        time.sleep(0.5)
    return False


@pytest.mark.slurm
def test_dask_slurm_cluster_option_then_client(slurm, tmp_path, local_reference):
    X, y, *_, exp = iris_experiment()
    workdir = tmp_path / "run"
    exp.write(X, y, workdir)
    report = run(workdir, backend="dask", slurm={**SLURM_WORKERS, "jobs": 2}, progress=False)
    assert len(report.names("done")) == 7
    assert_same_as_local_and_sklearn(workdir, local_reference)
    assert dask_jobs_end()  # the run's SLURMCluster was closed: its jobs were cancelled
    # Worker output goes to the workdir's logs; a job still pending when the run ends writes none.
    assert 1 <= len(list((workdir / "logs" / "dask-slurm").glob("*.out"))) <= 2

    # A Client of the caller's own SLURMCluster: used, and left open.
    from dask_jobqueue import SLURMCluster
    from distributed import Client

    workdir = tmp_path / "client"
    exp.write(X, y, workdir)
    with SLURMCluster(**SLURM_WORKERS, log_directory=str(tmp_path / "logs")) as cluster, \
            Client(cluster) as client:
        cluster.scale(jobs=1)
        run(workdir, backend="dask", client=client, progress=False)
        assert_same_as_local_and_sklearn(workdir, local_reference)
        assert client.status == "running"
    assert dask_jobs_end()


def test_dask_slurm_option_errors():
    from mempamal.backends.dask import DaskBackend

    with pytest.raises(ValueError, match="slurm: starts the run's own SLURMCluster"):
        DaskBackend(slurm={}, n_jobs=2)
    with pytest.raises(ValueError, match=r"slurm\['jobs'\]: expected a positive int"):
        DaskBackend(slurm={"jobs": 0})


def test_sacct_wrapper_asks_for_workdir_instead_of_stdout(tmp_path):
    # The real sacct stands as a program that prints its arguments.
    wrapper = write_sacct_wrapper(tmp_path / "bin", real_sacct=shutil.which("echo"))
    out = subprocess.run([str(wrapper), "-j", "12", "-o", "jobid,state,stdout,ncpus", "--format=stdout,x",
                          "-ostdout", "--name", "stdout"], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["-j", "12", "-o", "jobid,state,workdir,ncpus", "--format=workdir,x", "-oworkdir",
                           "--name", "stdout"]


def test_export_script_resources_threads_and_split(tmp_path):
    X, y, *_, exp = iris_experiment()
    workdir = tmp_path / "run"
    exp.write(X, y, workdir)
    script = export(workdir, "slurm", tmp_path / "submit.sh", cpus=2, mem="1G", time="01:00:00",
                    sbatch_args=["--qos=short"], stages={"gather": {"cpus": 1, "partition": "io"}},
                    max_array_size=3, batch_size=1)
    text = script.read_text()
    assert text.count("slurm/map.sbatch") == 2 and "--array=0-2 slurm/map.sbatch 0" in text
    assert "--array=0-0 slurm/map.sbatch 3" in text
    assert "--dependency=afterok:$map_0:$map_1 slurm/refit.sbatch 0" in text
    map_job = (workdir / "slurm" / "map.sbatch").read_text()
    for line in ("#SBATCH --cpus-per-task=2", "#SBATCH --mem=1G", "#SBATCH --time=01:00:00", "#SBATCH --qos=short",
                 "export OMP_NUM_THREADS=2", "export OPENBLAS_NUM_THREADS=2"):
        assert line in map_job
    gather_job = (workdir / "slurm" / "gather.sbatch").read_text()
    assert "--cpus-per-task=1" in gather_job and "--partition=io" in gather_job and "OMP_NUM_THREADS=1" in gather_job


def test_array_element_skips_complete_tasks_and_reruns_incomplete_ones(tmp_path):
    """An element run as SLURM would (bash, SLURM_ARRAY_TASK_ID set), here without SLURM."""
    X, y, *_, exp = iris_experiment()
    workdir = tmp_path / "run"
    exp.write(X, y, workdir)
    export(workdir, "slurm", tmp_path / "submit.sh", batch_size=1)
    run(workdir, backend="local", progress=False)

    out = element(workdir, "map", 1, offset=2)  # line 4 of the task list
    assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == "map-o1-i1-c0: complete, skipped"
    log = workdir / "logs" / "map-o1-i1-c0.log"
    assert "Traceback" not in log.read_text()  # a skipped task leaves its log alone
    refit = workdir / "outer" / "o0.npz"
    refit.write_bytes(b"PK\x03\x04 truncated")  # not complete: the one rule is the fingerprinted outputs
    out = element(workdir, "refit", 0)
    assert out.returncode == 0 and "refit-o0: " in out.stdout and "skipped" not in out.stdout, out
    assert refit.read_bytes() != b"PK\x03\x04 truncated"
    from mempamal.workdir.layout import TaskId
    from mempamal.workdir.workflow import is_complete

    assert is_complete(workdir, TaskId("refit", outer=0))
    out = element(workdir, "refit", 5)
    assert out.returncode == 1 and "no task at index 5" in out.stderr


def element(workdir, stage, index, offset=0):
    """Run an array element as SLURM would (bash, SLURM_ARRAY_TASK_ID set), without SLURM."""
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": str(index), "SLURM_JOB_ID": "1", "SLURM_ARRAY_JOB_ID": "1"}
    return subprocess.run(["bash", str(workdir / "slurm" / f"{stage}.sbatch"), str(offset)], env=env,
                          capture_output=True, text=True, cwd="/", timeout=300)


def test_array_element_runs_a_batch(tmp_path, local_reference):
    X, y, *_, exp = iris_experiment()
    workdir = tmp_path / "run"
    exp.write(X, y, workdir)
    export(workdir, "slurm", tmp_path / "submit.sh", batch_size=2)
    lists = {s: (workdir / "slurm" / f"{s}.tasks").read_text().splitlines() for s in ("map", "refit", "gather")}
    assert [line.split("\t")[0] for line in lists["map"]] == ["map-batch0", "map-batch1"]
    assert [line.split("\t")[0] for line in lists["refit"]] == ["refit-batch0"]
    assert lists["gather"][0].split("\t")[1].endswith("task --if-incomplete --log logs/gather.log gather .")
    assert "--array=0-1 slurm/map.sbatch 0" in (tmp_path / "submit.sh").read_text()

    # A real failure of one map of batch 1: its output path is a directory, so its atomic rename fails.
    (workdir / "maps" / "o1-i0-c0.npz").mkdir(parents=True)
    out = element(workdir, "map", 1)
    assert out.returncode == 1
    assert out.stdout.splitlines()[1:] == ["map-o1-i0-c0: running", "map-o1-i1-c0: running", "map-o1-i1-c0: done"]
    assert out.stderr.splitlines()[-1] == "map-batch1: failed with status 1; see the failed tasks' logs/<task>.log"
    assert "IsADirectoryError" in (workdir / "logs" / "map-o1-i0-c0.log").read_text()
    (workdir / "maps" / "o1-i0-c0.npz").rmdir()
    out = element(workdir, "map", 1)  # resubmitted: the complete task skipped, the failed one run
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1:] == ["map-o1-i0-c0: running", "map-o1-i0-c0: done",
                                           "map-o1-i1-c0: complete, skipped"]
    for stage, index in (("map", 0), ("refit", 0), ("gather", 0)):
        out = element(workdir, stage, index)
        assert out.returncode == 0, out.stderr
    assert_same_as_local_and_sklearn(workdir, local_reference)


def test_export_slurm_command_line(tmp_path):
    import sys

    X, y, *_, exp = iris_experiment()
    workdir = tmp_path / "run"
    exp.write(X, y, workdir)
    base = [sys.executable, "-m", "mempamal", "export", str(workdir), "-o", str(tmp_path / "submit.sh")]
    out = subprocess.run(base + ["--format", "slurm", "--mem", "2G", "--stage", "map:cpus=2",
                                 "--stage", "gather:sbatch_args=--qos=io"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "--cpus-per-task=2" in (workdir / "slurm" / "map.sbatch").read_text()
    assert "--cpus-per-task=1" in (workdir / "slurm" / "refit.sbatch").read_text()
    assert "#SBATCH --qos=io" in (workdir / "slurm" / "gather.sbatch").read_text()
    out = subprocess.run(base + ["--format", "slurm", "--batch-size", "3", "--jobs-at-once", "5"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert [line.split("\t")[0] for line in (workdir / "slurm" / "map.tasks").read_text().splitlines()] == [
        "map-batch0", "map-batch1"]
    out = subprocess.run(base + ["--format", "cmd-list", "--batch-size", "0"], capture_output=True, text=True)
    assert out.returncode != 0 and "batch_size: expected a positive int or None" in out.stderr
    out = subprocess.run(base + ["--format", "cmd-list", "--mem", "2G"], capture_output=True, text=True)
    assert out.returncode != 0 and "--mem: options of --format slurm" in out.stderr
    out = subprocess.run(base + ["--format", "slurm", "--stage", "map=2"], capture_output=True, text=True)
    assert out.returncode != 0 and "--stage: expected STAGE:KEY=VALUE" in out.stderr


@pytest.mark.parametrize("kwargs, match", [
    ({"defaults": {"cpus": 0}}, "cpus: expected a positive int"),
    ({"defaults": {"mem": "lots"}}, "mem: expected"),
    ({"defaults": {"time": "1h"}}, "time: expected"),
    ({"defaults": {"sbatch_args": "--qos=x"}}, r"write \['--qos=x'\]"),
    ({"stages": {"mapp": {}}}, "unknown stage 'mapp'"),
    ({"stages": {"map": {"memory": "1G"}}}, r"unknown option\(s\) \['memory'\]"),
])
def test_export_slurm_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        stage_resources(**kwargs)


def test_export_slurm_permute_stage_runs_beside_the_analysis(tmp_path):
    """Permute tasks depend on nothing: their arrays start at once; gather waits for refits and permutes."""
    X, y, pipe, outer, inner, _ = iris_experiment()
    exp = Experiment(pipe, cv=outer, param_grid=GRID, inner_cv=inner, scoring="f1_weighted", n_permutations=2)
    workdir = exp.write(X, y, tmp_path / "run")
    script = export(workdir, "slurm", tmp_path / "submit.sh", batch_size=1).read_text()
    lines = [line for line in script.splitlines() if line.startswith(("map_", "refit_", "permute_", "gather_"))]
    assert [line.split("=", 1)[0] for line in lines] == ["map_0", "refit_0", "permute_0", "gather_0"]
    assert "--dependency" not in lines[2]  # permute: nothing to wait for
    assert "--dependency=afterok:$map_0 " in lines[1]
    assert "--dependency=afterok:$refit_0:$permute_0 " in lines[3]
    tasks = (workdir / "slurm" / "permute.tasks").read_text().splitlines()
    assert [t.split("\t")[0] for t in tasks] == ["permute-p0-o0", "permute-p0-o1", "permute-p1-o0", "permute-p1-o1"]
    assert " task --if-incomplete --log logs/permute-p0-o0.log permute . --perm 0 --outer 0" in tasks[0]
