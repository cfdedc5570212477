"""Estimators for the fault tests, importable by worker processes (tests/ must be on their PYTHONPATH).

They behave as Ridge, except that ``HeldRidge`` blocks its fit while a gate file exists (so a
test can kill a run mid-way without racing the clock) and ``KillOnce`` kills its own process
the first time it fits (a worker dying as under the OOM killer).
"""
import os
import signal
import time
from pathlib import Path

from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import Ridge


class _RidgeLike(RegressorMixin, BaseEstimator):
    def _fit(self, X, y):
        self.ridge_ = Ridge(alpha=self.alpha).fit(X, y)
        return self

    def predict(self, X):
        return self.ridge_.predict(X)


class HeldRidge(_RidgeLike):
    """Ridge whose fit, when ``hold``, waits while the file ``gate`` exists (touching ``gate``.held-PID)."""

    def __init__(self, alpha=1.0, hold=False, gate=""):
        self.alpha = alpha
        self.hold = hold
        self.gate = gate

    def fit(self, X, y):
        if self.hold and self.gate and os.path.exists(self.gate):
            Path(f"{self.gate}.held-{os.getpid()}").touch()
            while os.path.exists(self.gate):
                time.sleep(0.05)
        return self._fit(X, y)


class KillOnce(_RidgeLike):
    """Ridge whose first fit (while the file ``marker`` does not exist) SIGKILLs its own process."""

    def __init__(self, alpha=1.0, marker=""):
        self.alpha = alpha
        self.marker = marker

    def fit(self, X, y):
        if self.marker and not os.path.exists(self.marker):
            Path(self.marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return self._fit(X, y)


class HoldAfter(_RidgeLike):
    """Ridge whose fits, once ``limit`` fits were counted in the directory ``count``, wait while the file
    ``gate`` exists (touching ``gate``.held-PID): some tasks finish, then every worker is held."""

    def __init__(self, alpha=1.0, limit=0, count="", gate=""):
        self.alpha = alpha
        self.limit = limit
        self.count = count
        self.gate = gate

    def fit(self, X, y):
        if self.count and self.gate:
            Path(self.count).mkdir(exist_ok=True)
            Path(self.count, f"{os.getpid()}-{time.monotonic_ns()}").touch()
            if len(os.listdir(self.count)) > self.limit and os.path.exists(self.gate):
                Path(f"{self.gate}.held-{os.getpid()}").touch()
                while os.path.exists(self.gate):
                    time.sleep(0.05)
        return self._fit(X, y)


def kill_run_once_held(workdir, gate, held=2, timeout=120):
    """Start ``mempamal run WORKDIR -j 2`` in its own process group, wait until ``held`` workers wait at
    ``gate`` (their ``gate``.held-PID files), then SIGKILL the run and its workers; returns the held pids."""
    import signal
    import subprocess
    import sys

    tests = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)])}
    proc = subprocess.Popen([sys.executable, "-m", "mempamal", "run", str(workdir), "-j", "2", "-q"], env=env,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    marks = Path(gate).parent.glob
    try:
        deadline = time.monotonic() + timeout
        while len(list(marks(f"{Path(gate).name}.held-*"))) < held:  # every worker held: nothing else finishes
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "the run never got its workers to the gate"
            time.sleep(0.05)
        return [int(p.name.rpartition("-")[2]) for p in marks(f"{Path(gate).name}.held-*")]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its workers: they share its process group
        proc.wait()
        proc.stdout.close()
