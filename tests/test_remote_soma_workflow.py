"""Soma-Workflow's client-server mode, for real: a remote cluster reached over ssh, on loopback.

Tests marked ``remote`` need root: the session installs openssh-server with apt-get when
missing, makes the cluster account ``mempamal-cluster`` (its own home, and its own venv
with the client's versions of numpy, scipy, scikit-learn, pyzmq and Soma-Workflow, and
mempamal from this checkout), starts an sshd on 127.x.y.z port 22 that accepts that account
with this session's key only, and Soma-Workflow's database server as that account
(tests/remote/remote_up.sh). This process is the client: HOME and SOMA_WORKFLOW_CONFIG point
at the session's client directory (its RSA key, its .soma-workflow.cfg with the resource
``loopback-cluster``); the engine is started over ssh by Soma-Workflow itself, with the
cluster's local scheduler. Elsewhere the tests are skipped with the reason
(MEMPAMAL_TEST_REMOTE=0 turns them off); a cluster that fails to start is an error.
Everything started is stopped by pid at the end of the session (remote_stop.sh).
"""
import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

from mempamal import Experiment, load_results, run
from mempamal.backends import WorkflowError
from mempamal.workdir.status import workflow_status
from mempamal.workdir.trust import ensure_key

from test_soma_workflow import assert_same_results, write_iris_nested

REMOTE = Path(__file__).parent / "remote"
CHECKOUT = Path(__file__).resolve().parent.parent
# The cluster's environment gets the client's versions: the same numbers, bit for bit.
PINNED = ["numpy", "scipy", "scikit-learn", "joblib", "threadpoolctl", "pyzmq", "six", "soma-workflow", "tqdm"]

pytestmark = pytest.mark.remote


@pytest.fixture(scope="session")
def cluster():
    """The loopback cluster's facts (address, login, resource, directories) from STATE_DIR/env."""
    if os.environ.get("MEMPAMAL_TEST_REMOTE") == "0":
        pytest.skip("MEMPAMAL_TEST_REMOTE=0: remote cluster tests turned off")
    if os.geteuid() != 0:
        pytest.skip("remote cluster tests need root: they add an account and start sshd")
    if not Path("/usr/sbin/sshd").exists() and shutil.which("apt-get") is None:
        pytest.skip("remote cluster tests need openssh-server or apt-get to install it")
    pytest.importorskip("paramiko", reason="Soma-Workflow's client-server mode needs paramiko")
    state = Path(tempfile.mkdtemp(prefix="mempamal-remote-"))
    log = state / "remote_up.log"
    started = False
    try:
        requirements = [f"{name}=={version(name)}" for name in PINNED]
        # Output to a file, not a pipe: the servers it starts inherit it.
        with open(log, "w") as f:
            up = subprocess.run(["bash", str(REMOTE / "remote_up.sh"), str(state), str(CHECKOUT), *requirements],
                                stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=600)
        if up.returncode:
            pytest.fail(f"the loopback cluster did not start (remote_up.sh exited {up.returncode}); its output:\n"
                        f"{log.read_text()[-3000:]}\nstate: {state}", pytrace=False)
        facts = dict(line.split("=", 1) for line in (state / "env").read_text().split())
        started = True
        give_signing_key(facts["LOGIN"])
        yield {k: Path(v) if k in ("CLIENT_HOME", "SERVER_DIR", "SHARED", "CLUSTER_VIEW") else v
               for k, v in facts.items()}
        # An engine exits by itself once its client has disconnected and its jobs are over.
        assert engines_end(facts["LOGIN"]), "a Soma-Workflow engine of the cluster account did not exit"
    finally:
        stop = subprocess.run(["bash", str(REMOTE / "remote_stop.sh"), str(state)], capture_output=True,
                              text=True, timeout=120)
        assert stop.returncode == 0, f"remote_stop.sh: {stop.stdout}{stop.stderr}"
        if started:  # kept, with the logs, when the start failed
            shutil.rmtree(state, ignore_errors=True)


def give_signing_key(login):
    """The cluster account holds this session's signing key (its tasks refuse workdirs not signed by the
    key they hold): as a user copies their key into their cluster home when it is not the same home.
    At the default place (~/.config/mempamal/key), mode 600, the account's own."""
    key = ensure_key()  # the session's (conftest), created now if no workdir was written yet
    home = Path(pwd.getpwnam(login).pw_dir)
    for d in (home / ".config", home / ".config" / "mempamal"):
        subprocess.run(["install", "-d", "-m", "700", "-o", login, "-g", login, str(d)], check=True)
    subprocess.run(["install", "-m", "600", "-o", login, "-g", login, str(key),
                    str(home / ".config" / "mempamal" / "key")], check=True)


@pytest.fixture
def client(cluster, monkeypatch):
    """This process as the client: its home (ssh key) and Soma-Workflow configuration."""
    monkeypatch.setenv("HOME", str(cluster["CLIENT_HOME"]))
    monkeypatch.setenv("SOMA_WORKFLOW_CONFIG", str(cluster["CLIENT_HOME"] / ".soma-workflow.cfg"))
    return cluster


def engines_end(login, timeout=60):
    """Whether the cluster account's Soma-Workflow engines have all exited within timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ps = subprocess.run(["ps", "-u", login, "-o", "args="], capture_output=True, text=True).stdout
        if "soma_workflow.start_workflow_engine" not in ps:
            return True
        time.sleep(0.5)
    return False


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The experiment run by the local back-end: the reference."""
    workdir = tmp_path_factory.mktemp("local") / "run"
    write_iris_nested(workdir)
    run(workdir, backend="local", progress=False)
    return workdir


def files(workdir):
    """The workdir's files, but what only Soma-Workflow's jobs write: their stdout files (logs/*.out),
    the batches' task lists (batches/) and the batch jobs' own output (logs/batches/)."""
    workdir = Path(workdir)
    return sorted(p.relative_to(workdir).as_posix() for p in workdir.rglob("*")
                  if p.is_file() and not (p.parent.name == "logs" and p.suffix == ".out")
                  and p.relative_to(workdir).parts[0] != "batches" and p.parent != workdir / "logs" / "batches")


def test_transfer_equals_local_then_resumes_from_the_command_line(client, tmp_path, local_run):
    # pytest's temporary directory is root's (0700): the cluster account cannot see it.
    workdir = tmp_path / "run"
    write_iris_nested(workdir)
    report = run(workdir, backend="soma-workflow", resource_id=client["RESOURCE"], transfer=True,
                 progress=False)
    assert len(report.names("done")) == 7
    assert_same_results(workdir, local_run)
    # Every file of a local run is back, and nothing else (no partial transfer left).
    assert files(workdir) == files(local_run)
    assert "InvalidParameterError" not in (workdir / "logs" / "refit-o0.log").read_text()
    assert workflow_status(workdir).counts()["done"] == 7
    assert load_results(workdir).best_params == load_results(local_run).best_params
    # The workdir's copy on the cluster went with the workflow.
    copies = list((client["SERVER_DIR"] / "transfered_files").glob("*/run_*"))
    assert copies == []

    # Resume from the command line: only the missing refit and the gather are sent again.
    (workdir / "outer" / "o1.npz").unlink()
    (workdir / "results.json").unlink()
    out = subprocess.run([sys.executable, "-m", "mempamal", "run", str(workdir), "--backend", "soma-workflow",
                          "--resource-id", client["RESOURCE"], "--transfer", "-q"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "2 done, 0 failed, 0 not run, 5 skipped" in out.stdout
    assert_same_results(workdir, local_run)
    assert files(workdir) == files(local_run)


def test_failure_on_the_cluster_reported_with_its_log(client, tmp_path):
    workdir = tmp_path / "run"
    X, y = load_iris(return_X_y=True)
    # C=-1 makes every fit raise; error_score="raise" lets it fail the task.
    Experiment(LogisticRegression(C=-1.0), cv=KFold(2, shuffle=True, random_state=0),
               error_score="raise").write(X, y, workdir)
    with pytest.raises(WorkflowError) as info:
        run(workdir, backend="soma-workflow", resource_id=client["RESOURCE"], transfer=True, progress=False)
    report = info.value.report
    assert sorted(report.names("failed")) == ["refit-o0", "refit-o1"]
    assert report.names("not run") == ["gather"]
    error = report.outcomes["refit-o0"].error
    # The command as run on the cluster, and the tail of its log, brought back.
    assert f"{client['REMOTE_PYTHON']} -P -m mempamal task refit . --outer 0" in error
    assert "InvalidParameterError" in error and "'C' parameter" in error
    assert "InvalidParameterError" in (workdir / "logs" / "refit-o0.log").read_text()
    # Nothing of a failed task comes back but its logs.
    assert not (workdir / "outer").exists() and not (workdir / "results.json").exists()
    status = workflow_status(workdir)
    assert status.states["refit-o0"] == "failed" and "InvalidParameterError" in status.errors["refit-o0"]


def shared_workdir(cluster, name):
    """A workdir in the directory both sides see, writable by the cluster account."""
    workdir = cluster["SHARED"] / name
    write_iris_nested(workdir)
    (workdir / "logs").mkdir(exist_ok=True)
    subprocess.run(["chown", "-R", cluster["LOGIN"], str(workdir)], check=True)
    return workdir


@contextlib.contextmanager
def one_user_umask():
    """Directories the client makes during the run (the batches' logs/batches/) writable by the cluster
    account too: on a real shared filesystem both sides are the same user; here they are two."""
    saved = os.umask(0)
    try:
        yield
    finally:
        os.umask(saved)


def test_shared_filesystem_same_path(client, local_run):
    workdir = shared_workdir(client, "same-path")
    with one_user_umask():
        report = run(workdir, backend="soma-workflow", resource_id=client["RESOURCE"], progress=False)
    assert len(report.names("done")) == 7
    assert_same_results(workdir, local_run)
    assert files(workdir) == files(local_run)
    # The cluster's interpreter ran the tasks (PYTHON_COMMAND of the resource): their files are the account's.
    assert (workdir / "outer" / "o0.npz").stat().st_uid == int(subprocess.run(
        ["id", "-u", client["LOGIN"]], capture_output=True, text=True, check=True).stdout)


def test_shared_filesystem_path_translation(client, local_run):
    from soma_workflow.client import SharedResourcePath

    from mempamal.backends.soma_workflow import to_soma_workflow
    from mempamal.workdir.workflow import load_workflow

    workdir = shared_workdir(client, "translated")
    shared_path = (client["SHARED"], "mempamal", "workdirs")
    # The jobs name their directory by namespace, uuid and a relative path, not by this side's path:
    # the server translates it to CLUSTER_VIEW/translated (its translation file); an unknown
    # namespace or uuid would fail the jobs.
    job = to_soma_workflow(workdir, load_workflow(workdir), shared_path=shared_path).jobs[0]
    assert isinstance(job.working_directory, SharedResourcePath)
    assert (job.working_directory.relative_path, job.working_directory.namespace,
            job.working_directory.uuid) == ("translated", "mempamal", "workdirs")
    with one_user_umask():
        report = run(workdir, backend="soma-workflow", resource_id=client["RESOURCE"], shared_path=shared_path,
                     progress=False)
    assert len(report.names("done")) == 7
    assert_same_results(workdir, local_run)
    assert files(workdir) == files(local_run)


def test_remote_options_validated():
    from mempamal.backends.soma_workflow import SomaWorkflowBackend

    with pytest.raises(ValueError, match="transfer and shared_path: for a remote resource"):
        SomaWorkflowBackend(transfer=True)
    with pytest.raises(ValueError, match="either shared or transferred"):
        SomaWorkflowBackend("r", transfer=True, shared_path=("/a", "ns", "uuid"))
    with pytest.raises(ValueError, match=r"shared_path: expected \(local_root, namespace, uuid\)"):
        SomaWorkflowBackend("r", shared_path=("/a", "ns"))
    with pytest.raises(ValueError, match="transfer: expected True or False"):
        SomaWorkflowBackend("r", transfer="yes")
