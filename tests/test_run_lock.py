"""One run per workdir (run.lock), and tasks whose process died without a word shown as lost.

Real ``mempamal run`` processes, held mid-task by HeldRidge's gate file, refused, queued,
and killed with SIGKILL; real dead pids (of finished subprocesses) in stale locks and records.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sklearn.datasets import make_regression
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold

from mempamal import Experiment, run
from mempamal.backends import WorkflowError
from mempamal.workdir.lock import LockError, StaleLockWarning, this_host
from mempamal.workdir.status import workflow_status
from mempamal.workdir.workflow import load_workflow

from reliab_helpers import HeldRidge

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}


def mempamal(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "mempamal", *map(str, args)], env=ENV, capture_output=True,
                          text=True, timeout=300, **kwargs)


def dead_pid():
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(workdir, **holder):
    doc = {"host": this_host(), "pid": dead_pid(), "started": time.time() - 60, "pid_start": None,
           "token": "stale", **holder}
    (workdir / "run.lock").write_text(json.dumps(doc))
    return doc


def small(workdir):
    X, y = make_regression(30, 3, noise=1.0, random_state=0)
    Experiment(Ridge(), cv=KFold(2), param_grid={"alpha": [0.1, 1.0]}, inner_cv=2).write(X, y, workdir)
    return len(load_workflow(workdir).tasks)


class HeldRun:
    """A real ``mempamal run -j 1`` whose first map waits at a gate file until released."""

    def __init__(self, tmp_path):
        X, y = make_regression(30, 3, noise=1.0, random_state=0)
        self.gate = tmp_path / "gate"
        self.gate.touch()
        self.workdir = tmp_path / "held"
        Experiment(HeldRidge(hold=True, gate=str(self.gate)), cv=KFold(2), param_grid={"alpha": [0.1, 1.0]},
                   inner_cv=2).write(X, y, self.workdir)
        self.n_tasks = len(load_workflow(self.workdir).tasks)
        self.proc = subprocess.Popen([sys.executable, "-m", "mempamal", "run", str(self.workdir), "-j", "1", "-q"],
                                     env=ENV, start_new_session=True, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("gate.held-*")):
            assert self.proc.poll() is None, self.proc.communicate()
            assert time.monotonic() < deadline, "the run never reached the gate"
            time.sleep(0.05)
        self.worker = int(next(tmp_path.glob("gate.held-*")).name.rpartition("-")[2])

    def release(self):
        self.gate.unlink(missing_ok=True)
        out, err = self.proc.communicate(timeout=300)
        return self.proc.returncode, out, err

    def kill(self):
        os.killpg(self.proc.pid, signal.SIGKILL)  # the run and its workers: one process group
        self.proc.communicate()
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{self.worker}") and time.monotonic() < deadline:
            with open(f"/proc/{self.worker}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.05)


@pytest.fixture
def held(tmp_path):
    h = HeldRun(tmp_path)
    yield h
    if h.proc.poll() is None:
        h.kill()


def test_second_run_refuses_at_once_naming_the_holder(held):
    start = time.monotonic()
    out = mempamal("run", held.workdir, "-q")
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
    assert f"another run is in progress (host {this_host()}, pid {held.proc.pid}, started " in out.stderr
    assert str(held.workdir / "run.lock") in out.stderr and "--wait" in out.stderr
    assert time.monotonic() - start < 30  # at once: not after the first run
    assert held.proc.poll() is None
    with pytest.raises(LockError, match=rf"pid {held.proc.pid}, started"):
        run(held.workdir, progress=False)
    code, stdout, _ = held.release()
    assert code == 0 and f"{held.n_tasks} done" in stdout
    assert not (held.workdir / "run.lock").exists()  # released at the end


def test_wait_queues_behind_the_run_and_runs_nothing_twice(held):
    second = subprocess.Popen([sys.executable, "-m", "mempamal", "run", str(held.workdir), "-q", "--wait"],
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = second.stderr.readline()  # printed once, when it starts waiting
        assert f"waiting for the run holding {held.workdir / 'run.lock'} (host {this_host()}, pid " \
               f"{held.proc.pid}" in line, line
        assert second.poll() is None
        code, stdout, _ = held.release()
        assert code == 0 and f"{held.n_tasks} tasks: {held.n_tasks} done" in stdout
        out, err = second.communicate(timeout=300)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, err
    # Every task ran once, in the first run: the second found them all complete.
    assert f"{held.n_tasks} tasks: 0 done, 0 failed, 0 not run, {held.n_tasks} skipped" in out
    assert not (held.workdir / "run.lock").exists()


def test_lock_of_a_dead_run_of_this_host_is_taken_over(tmp_path):
    workdir = tmp_path / "run"
    n = small(workdir)
    stale = write_lock(workdir)
    out = mempamal("run", workdir, "-q")
    assert out.returncode == 0, out.stderr
    assert f"took over the lock of a run that is no longer alive (host {this_host()}, pid {stale['pid']}" \
           in out.stderr
    assert f"{n} done" in out.stdout and not (workdir / "run.lock").exists()
    # A live pid that started after the lock was written is another process (a reused pid).
    write_lock(workdir, pid=os.getpid(), pid_start=1)
    with pytest.warns(StaleLockWarning, match=rf"pid {os.getpid()}"):
        assert len(run(workdir, progress=False).skipped) == n


def test_lock_of_another_host_is_refused_with_the_file_to_delete(tmp_path):
    workdir = tmp_path / "run"
    small(workdir)
    doc = write_lock(workdir, host="node-elsewhere", pid=os.getpid())
    out = mempamal("run", workdir, "-q")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "locked by a run on another host (host node-elsewhere, pid" in out.stderr
    assert f"delete {workdir / 'run.lock'} and run again" in out.stderr
    assert json.loads((workdir / "run.lock").read_text()) == doc  # untouched
    assert not (workdir / "maps").exists()


def test_lock_is_released_on_ctrl_c(held):
    lock = held.workdir / "run.lock"
    assert json.loads(lock.read_text())["pid"] == held.proc.pid
    os.kill(held.proc.pid, signal.SIGINT)  # KeyboardInterrupt in the run, its worker still held
    deadline = time.monotonic() + 60
    while lock.exists():
        assert time.monotonic() < deadline, "the interrupted run kept its lock"
        time.sleep(0.05)
    code, _, err = held.release()
    assert code != 0 and "KeyboardInterrupt" in err


def test_lock_is_released_when_the_run_fails(tmp_path):
    X, y = make_regression(30, 3, random_state=0)
    workdir = tmp_path / "run"
    Experiment(LogisticRegression(), cv=2, param_grid={"C": [-1.0]}, inner_cv=2,
               error_score="raise").write(X, (y > 0).astype(int), workdir)
    with pytest.raises(WorkflowError):
        run(workdir, progress=False)
    assert not (workdir / "run.lock").exists()


TAKER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from mempamal.lock import run_lock
    workdir, go = Path(sys.argv[1]), Path(sys.argv[2])
    while not go.exists():
        time.sleep(0.001)
    with run_lock(workdir, wait=True):
        holders = workdir / "holders"
        (holders / str(os.getpid())).touch()
        seen = [len(os.listdir(holders))]
        time.sleep(0.3)
        seen.append(len(os.listdir(holders)))
        (holders / str(os.getpid())).unlink()
    print(max(seen))
""")


def test_concurrent_takeovers_of_one_stale_lock_give_one_holder_at_a_time(tmp_path):
    workdir = tmp_path / "run"
    (workdir / "holders").mkdir(parents=True)
    write_lock(workdir)
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-W", "ignore", "-c", TAKER, str(workdir), str(go)], env=ENV,
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    time.sleep(2)  # all started and polling for the go
    go.touch()
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4
    assert [o.strip() for o in outs] == ["1"] * 4  # each alone while it held the lock
    assert not (workdir / "run.lock").exists()


# -- lost tasks -------------------------------------------------------------------------

def test_task_of_a_killed_run_is_lost_with_its_log_then_run_again_finishes(held):
    records = list((held.workdir / "logs/running").glob("*.json"))
    assert len(records) == 1
    name = records[0].stem
    status = workflow_status(held.workdir)
    assert status.names("running") == [name] and status.names("lost") == []
    held.kill()

    out = mempamal("status", held.workdir)
    assert out.returncode == 1
    task = load_workflow(held.workdir).by_name[name]
    assert f"{held.n_tasks} tasks: 0 done, 0 running, {held.n_tasks - 1} pending, 0 failed, 1 lost" in out.stdout
    assert (f"- lost {name}: its process (pid {held.worker} on {this_host()}) ended without finishing it"
            in out.stdout)
    assert f"  log: {held.workdir / task.log}\n  command: {task.shell_command(held.workdir)}" in out.stdout
    doc = json.loads(mempamal("status", held.workdir, "--json").stdout)
    assert doc["counts"]["lost"] == 1 and doc["running"] == []
    assert doc["lost"] == [{"task": name, "host": this_host(), "pid": held.worker,
                            "log": str(held.workdir / task.log), "command": task.shell_command(held.workdir)}]

    held.gate.unlink()
    # The killed run's lock is taken over (its pid is dead), and every task runs.
    with pytest.warns(StaleLockWarning):
        report = run(held.workdir, progress=False)
    assert len(report.names("done")) == held.n_tasks
    assert workflow_status(held.workdir).counts() == {"done": held.n_tasks, "running": 0, "pending": 0,
                                                      "failed": 0, "lost": 0, "total": held.n_tasks}
    assert list((held.workdir / "logs/running").iterdir()) == []


def test_run_clears_the_stale_records_of_tasks_it_will_redo(tmp_path):
    X, y = make_regression(30, 3, random_state=0)
    workdir = tmp_path / "run"
    # Every map fails: refits and gather are never run, and would stay "lost" with their stale records.
    Experiment(LogisticRegression(), cv=2, param_grid={"C": [-1.0]}, inner_cv=2,
               error_score="raise").write(X, (y > 0).astype(int), workdir)
    (workdir / "logs/running").mkdir(parents=True)
    record = {"task": "gather", "host": this_host(), "pid": dead_pid(), "pid_start": None, "started": time.time()}
    (workdir / "logs/running/gather.json").write_text(json.dumps(record))
    elsewhere = {**record, "task": "refit-o0", "host": "node-elsewhere"}
    (workdir / "logs/running/refit-o0.json").write_text(json.dumps(elsewhere))
    status = workflow_status(workdir)
    assert status.names("lost") == ["gather"] and status.elsewhere() == {"refit-o0": "node-elsewhere"}
    assert "- 1 running on node-elsewhere (cannot be checked from this host)" in str(status)

    with pytest.raises(WorkflowError):
        run(workdir, progress=False)
    status = workflow_status(workdir)
    assert status.states["gather"] == "pending" and status.names("lost") == []
    # Another host's record may be a live task run outside this run: left alone.
    assert status.elsewhere() == {"refit-o0": "node-elsewhere"}
