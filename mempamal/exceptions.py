"""Every exception and warning mempamal raises, in one place.

Each error is a :class:`MempamalError` (catch them all with one ``except``) and
keeps the built-in base it had before this module existed (``ValueError``,
``RuntimeError``), so that code catching those goes on working. The modules that
raise them import them from here, and re-export them under their old names
(``mempamal.workdir.lock.LockError`` is ``mempamal.exceptions.LockError``).

This module imports nothing of mempamal's: any module may use it.
"""
from __future__ import annotations

__all__ = [
    "MempamalError", "MempamalWarning",
    "ConfigError", "EncodingError", "DecodingError",
    "InputFileError", "TaskInputError", "DataChangedError",
    "LockError", "StaleLockWarning", "WorkflowError",
    "UntrustedWorkdirError", "KeyFileError",
]


class MempamalError(Exception):
    """The base of every error mempamal raises on purpose.

    Examples
    --------
    One ``except`` for all of mempamal's errors; each also keeps its built-in base
    (here ``ValueError``). A lambda cannot be stored in experiment.json, which the
    Experiment says as it is made:

    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from mempamal import Experiment
    >>> from mempamal.exceptions import MempamalError
    >>> try:
    ...     Experiment(make_pipeline(FunctionTransformer(lambda x: x), LogisticRegression()))
    ... except MempamalError as e:
    ...     print(f"{type(e).__name__} (a ValueError: {isinstance(e, ValueError)}): {e}")
    EncodingError (a ValueError: True): functiontransformer__func: a lambda cannot be stored; ...
    """


class MempamalWarning(UserWarning):
    """The base of every warning mempamal issues.

    Examples
    --------
    Make every mempamal warning an error (here, within a block only):

    >>> import warnings
    >>> from mempamal.exceptions import MempamalWarning, StaleLockWarning
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", MempamalWarning)
    ...     try:
    ...         warnings.warn("runs/x/run.lock: took over the lock of a dead run", StaleLockWarning)
    ...     except MempamalWarning as w:
    ...         print(type(w).__name__, w)
    StaleLockWarning runs/x/run.lock: took over the lock of a dead run
    """


# -- writing an experiment --------------------------------------------------------------

class ConfigError(MempamalError, ValueError):
    """A config module is missing, fails to run, or lacks what it must define.

    Examples
    --------
    ``mempamal generate CONFIG.py WORKDIR`` runs a config module, which must define
    ``experiment`` and ``load_data()``; this one defines neither:

    >>> import subprocess, sys
    >>> from pathlib import Path
    >>> _ = Path("config.py").write_text("from mempamal import Experiment")
    >>> done = subprocess.run([sys.executable, "-m", "mempamal", "generate", "config.py", "runs/config"],
    ...                       capture_output=True, text=True)
    >>> print(done.returncode, done.stderr.strip())
    1 mempamal: error: config: config.py must define `experiment = mempamal.Experiment(...)`, found nothing
    """


class EncodingError(MempamalError, ValueError):
    """A value cannot be stored; the message names its path and the fix.

    Examples
    --------
    Everything an experiment holds is stored as JSON, never pickled: a function must be
    importable by its module path, which a lambda is not.

    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from mempamal import Experiment
    >>> from mempamal.exceptions import EncodingError
    >>> try:
    ...     Experiment(make_pipeline(FunctionTransformer(lambda x: x), LogisticRegression()))
    ... except EncodingError as e:
    ...     print(e)
    functiontransformer__func: a lambda cannot be stored; define a function in an importable module
    >>> import numpy as np
    >>> exp = Experiment(make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()))  # importable: stored
    """


class DecodingError(MempamalError, ValueError):
    r"""A document names something that cannot or may not be loaded.

    Examples
    --------
    A class of your own must be importable wherever the tasks run: here it is importable
    when the experiment is written (``src`` on ``sys.path``), not by ``mempamal run`` in
    another process, which says so before running anything:

    >>> import subprocess, sys
    >>> from pathlib import Path
    >>> from sklearn.datasets import load_iris
    >>> from mempamal import Experiment
    >>> Path("src").mkdir()
    >>> _ = Path("src/my_models.py").write_text("from sklearn.linear_model import LogisticRegression\n"
    ...                                         "class MyLogit(LogisticRegression):\n"
    ...                                         "    pass\n")
    >>> sys.path.insert(0, "src")
    >>> from my_models import MyLogit
    >>> X, y = load_iris(return_X_y=True)
    >>> workdir = Experiment(MyLogit(), cv=3).write(X, y, "runs/mine")
    >>> done = subprocess.run([sys.executable, "-m", "mempamal", "run", str(workdir)],
    ...                       capture_output=True, text=True)
    >>> print(done.stderr.strip())
    mempamal: error: .../runs/mine/experiment.json: cannot import 'my_models.MyLogit':
    no module 'my_models'; nothing was run
    """


# -- reading a workdir ------------------------------------------------------------------

class InputFileError(MempamalError, RuntimeError):
    """A file a task needs is missing, unreadable, or belongs to another experiment.

    Examples
    --------
    The gather task run by hand before the refits it needs:

    >>> import subprocess, sys
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mempamal import Experiment
    >>> X, y = load_iris(return_X_y=True)
    >>> workdir = Experiment(LogisticRegression(), cv=3).write(X, y, "runs/iris")
    >>> done = subprocess.run([sys.executable, "-m", "mempamal", "task", "gather", str(workdir)],
    ...                       capture_output=True, text=True)
    >>> print(done.stderr.strip())
    mempamal: task gather needs runs/iris/outer/o0.npz: missing; it is the output of task refit-o0:
    did it fail? see logs/refit-o0.log (...)
    """


# What a task raises for a missing or foreign input: the same error, under the name the task
# command catches.
TaskInputError = InputFileError


class DataChangedError(InputFileError):
    """An input written by write() has changed since (or is missing).

    Examples
    --------
    The data of a written experiment edited in place: the tasks would compute with other
    data than the experiment's, so nothing runs.

    >>> import numpy as np
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mempamal import Experiment, run
    >>> from mempamal.exceptions import DataChangedError
    >>> X, y = load_iris(return_X_y=True)
    >>> workdir = Experiment(LogisticRegression(), cv=3).write(X, y, "runs/iris")
    >>> np.save(workdir / "data" / "X.npy", 2 * X)
    >>> try:
    ...     run(workdir, progress=False)
    ... except DataChangedError as e:
    ...     print(e)
    /.../runs/iris/data/X.npy: its content changed (same size, new modification time) since the experiment
    was written tasks would compute with other inputs than those of experiment.json's fingerprint; ...
    """


# -- trusting a workdir (mempamal.workdir.trust) ------------------------------------------

class UntrustedWorkdirError(MempamalError):
    """A workdir not signed by the key this user holds, or changed since: nothing in it is imported or run.

    Examples
    --------
    experiment.json edited after ``write()`` signed it (by anyone who can write the
    workdir): it could name any function to run, so it is refused until reviewed and
    signed again (``mempamal trust WORKDIR``), or written again.

    >>> import json
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mempamal import Experiment, run
    >>> from mempamal.exceptions import UntrustedWorkdirError
    >>> X, y = load_iris(return_X_y=True)
    >>> exp = Experiment(LogisticRegression(), cv=3)
    >>> workdir = exp.write(X, y, "runs/iris")
    >>> doc = json.loads((workdir / "experiment.json").read_text())
    >>> doc["estimator"]["params"]["C"] = 10.0
    >>> _ = (workdir / "experiment.json").write_text(json.dumps(doc))
    >>> try:
    ...     run(workdir, progress=False)
    ... except UntrustedWorkdirError as e:
    ...     print(e)
    /.../runs/iris: not trusted: experiment.json changed since it was signed. Nothing in it was imported
    or run. ...
    >>> workdir = exp.write(X, y, "runs/iris")  # written again: restored and signed
    >>> print(run(workdir, progress=False).summary())
    4 tasks: 4 done, 0 failed, 0 not run, 0 skipped (already complete)
    """


class KeyFileError(MempamalError, PermissionError):
    """The signing key is unreadable, malformed, or readable by others.

    Examples
    --------
    The key that signs workdirs (``$MEMPAMAL_KEY_FILE``, else ``~/.config/mempamal/key``)
    must be yours alone: here it is a file others may read.

    >>> import os
    >>> from pathlib import Path
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mempamal import Experiment
    >>> from mempamal.exceptions import KeyFileError
    >>> key = Path("shared-key")
    >>> _ = key.write_text(64 * "0")
    >>> key.chmod(0o644)
    >>> os.environ["MEMPAMAL_KEY_FILE"] = str(key.resolve())
    >>> X, y = load_iris(return_X_y=True)
    >>> try:
    ...     Experiment(LogisticRegression(), cv=3).write(X, y, "runs/iris")
    ... except KeyFileError as e:
    ...     print(e)
    /.../shared-key: the signing key may be read or written by others (mode 644): ...
    """


# -- running a workflow -----------------------------------------------------------------

class LockError(MempamalError, RuntimeError):
    """The workdir is locked by another run (or by a lock that cannot be checked from this host).

    Examples
    --------
    A second run of a workdir while the first goes on (here, submitted to the background):

    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mempamal import Experiment, submit
    >>> from mempamal.exceptions import LockError
    >>> X, y = load_iris(return_X_y=True)
    >>> workdir = Experiment(LogisticRegression(), cv=3).write(X, y, "runs/iris")
    >>> first = submit(workdir)
    >>> try:
    ...     submit(workdir)
    ... except LockError as e:
    ...     print(e)
    /.../runs/iris: a submitted run is in progress (submitted to local: process host ...; running); ...
    >>> print(first.wait(progress=False).summary())
    4 tasks: 4 done, 0 failed, 0 not run, 0 skipped (already complete)

    ``run(workdir, wait=True)`` waits for the other run to end instead.
    """


class StaleLockWarning(MempamalWarning):
    """A lock left by a dead run of this host was taken over.

    A run killed (by ``kill -9``, an out-of-memory killer) leaves its ``run.lock``; the next
    run of the workdir, on the same host, sees that its process is dead, takes the lock
    over with this warning and resumes.

    Examples
    --------
    Refuse to take a dead run's lock over (here, within a block only):

    >>> import warnings
    >>> from mempamal.exceptions import StaleLockWarning
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", StaleLockWarning)
    ...     try:
    ...         warnings.warn("runs/x/run.lock: took over the lock of a dead run", StaleLockWarning)
    ...     except StaleLockWarning as w:
    ...         print("refused:", w)
    refused: runs/x/run.lock: took over the lock of a dead run
    """


class WorkflowError(MempamalError, RuntimeError):
    """Some tasks failed; the message names each, with its command and log file.

    Parameters
    ----------
    report : RunReport
        What the run did (:class:`mempamal.backends.RunReport`), kept as ``report``.
    workflow : Workflow
        The workdir's workflow, for each failed task's command and log.

    Examples
    --------
    An estimator whose every fit fails (C must be positive): each failed task is named, with
    its error, command and log; the tasks that need them are not run.

    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mempamal import Experiment, run
    >>> from mempamal.backends import FAILED, WorkflowError
    >>> X, y = load_iris(return_X_y=True)
    >>> workdir = Experiment(LogisticRegression(C=-1.0), cv=3).write(X, y, "runs/failing")
    >>> try:
    ...     run(workdir, progress=False)
    ... except WorkflowError as e:
    ...     print(e)
    ...     report = e.report
    mempamal: 4 tasks: 0 done, 3 failed, 1 not run, 0 skipped (already complete) in /.../runs/failing
    - task refit-o... failed: InvalidParameterError: The 'C' parameter of LogisticRegression must be ...
      command: cd /.../runs/failing && ... -m mempamal task refit . --outer ...
      log: /.../runs/failing/logs/refit-o...log
    ...
    - not run because a task they need failed: gather
    >>> sorted(report.names(FAILED))
    ['refit-o0', 'refit-o1', 'refit-o2']
    """

    def __init__(self, report, workflow) -> None:
        self.report = report
        super().__init__(report.failure_message(workflow))
