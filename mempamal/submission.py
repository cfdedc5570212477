"""submit(), attach() and Submission: a run handed over, and found again from the workdir alone.

``submission/submission.json`` records how a run was handed over: the back-end, its
options, the tasks it was given, and either the background process running it on
this machine (named as the run lock names its holder: host, pid, process start) or
what the back-end's scheduler needs to find its jobs again (SLURM job ids, a Dask
scheduler's address). Any process that reads the workdir (another kernel, the login
node, ``mempamal status``) can therefore follow, wait for or cancel it; where the
tasks stand is read from their outputs and logs, as ``mempamal status`` does.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .backends import create_backend, get_backend
from .backends.base import DONE, FAILED, NOT_RUN, RunReport, TaskOutcome, WorkflowError
from .backends.progress import Progress
from .results.loading import load_results
from .results.results import Results
from .running import prepare, run
from .workdir.files import read_json, write_json
from .workdir.layout import RUNNING_DIR, SUBMISSION, SUBMISSION_LOG, SUBMISSION_REPORT
from .workdir.lock import Holder, LockError, pid_alive, process_start, run_lock, this_host
from .workdir.manifest import DataChangedError
from .workdir.status import FAILED as STATUS_FAILED, WorkflowStatus, record_alive, running_records, workflow_status
from .workdir.workflow import PYTHON_FLAGS, load_workflow, tasks_to_do

POLL = 1.0        # seconds between two looks at a detached run
_STOP_GRACE = 10  # seconds a cancelled process group has to end before SIGKILL
# The errors a detached run() may end with, raised again by wait() as run() raises them.
_ERRORS = {e.__name__: e for e in (LockError, DataChangedError, FileNotFoundError, ValueError, ConnectionError)}


class Submission:
    """A run handed to a back-end by :func:`submit`, or found again by :func:`attach`.

    Attributes
    ----------
    workdir : pathlib.Path
    backend : str
    record : dict
        The content of ``submission/submission.json``.
    """

    def __init__(self, workdir: Path, record: dict, process: subprocess.Popen | None = None) -> None:
        self.workdir = workdir
        self.record = record
        self.backend: str = record["backend"]
        self._process = process  # the detached process, when this process started it: reaped here

    # -- where it stands -------------------------------------------------------------------
    def running(self) -> bool | None:
        """Whether the run still goes on; None when it cannot be told from this host."""
        if self.record.get("detached") is not None:
            return get_backend(self.backend).detached_alive(self.record["detached"])
        if self._process is not None and self._process.poll() is not None:
            return False
        if "process" not in self.record:  # read between submit()'s two writes: just started
            return True
        return Holder.from_json(self.record["process"]).alive()

    def status(self) -> WorkflowStatus:
        """The state of every task (what ``mempamal status`` counts); ``counts()`` for the numbers."""
        return workflow_status(self.workdir)

    def describe(self) -> str:
        """One line: the back-end, where it runs (its process or job ids), and whether it still does."""
        running = self.running()
        state = {True: "running", False: "ended", None: "cannot be checked from this host"}[running]
        if self.record.get("cancelled"):
            state += " (cancelled)"
        detached = self.record.get("detached")
        if detached is not None:
            where = get_backend(self.backend).describe_detached(detached)
        else:
            where = f"process {Holder.from_json(self.record['process'])}" if "process" in self.record else "starting"
        return f"submitted to {self.backend}: {where}; {state}"

    def to_dict(self) -> dict:
        return {"backend": self.backend, "running": self.running(), "cancelled": self.record.get("cancelled"),
                "process": self.record.get("process"), "detached": self.record.get("detached")}

    def __repr__(self) -> str:
        return f"<Submission of {self.workdir}: {self.describe()}>"

    # -- waiting, cancelling, results ---------------------------------------------------------
    def wait(self, progress: bool = True, poll: float = POLL) -> RunReport:
        """Wait for the run to end, with the progress bar of :func:`mempamal.run`; its report.

        Raises
        ------
        WorkflowError
            When a task failed or was not run, as run() raises it (with the scheduler's reason
            for a job that failed, timed out or was cancelled).
        LockError, DataChangedError...
            What the detached run() itself raised.
        """
        workflow = load_workflow(self.workdir)
        todo = self.record["todo"]
        bar = Progress(len(todo), enabled=progress, desc=f"mempamal {self.backend}")
        seen: set[str] = set()
        try:
            while True:
                running = self.running()
                status = self.status()
                for name in todo:
                    state = status.states.get(name)
                    if name not in seen and state in (DONE, STATUS_FAILED):
                        seen.add(name)
                        bar.update(DONE if state == DONE else FAILED)
                if running is False:
                    break
                time.sleep(poll)
        finally:
            bar.close()
        report = self._report(status)
        if report.names(FAILED) or report.names(NOT_RUN):
            raise WorkflowError(report, workflow)
        return report

    def _report(self, status: WorkflowStatus) -> RunReport:
        """The run's report: the detached process's own, else read from the tasks' states."""
        path = self.workdir / SUBMISSION_REPORT
        if self.record.get("detached") is None:
            if not path.exists():
                raise RuntimeError(f"{self.workdir}: the detached run ended without a report ("
                                   f"{'cancelled' if self.record.get('cancelled') else 'killed?'}); its output: "
                                   f"{self.workdir / SUBMISSION_LOG}; run or submit again to resume")
            doc = read_json(path)
            if doc["token"] != self.record["token"]:
                raise RuntimeError(f"{path}: the report of another submission")
            if "error" in doc:
                kind, message = doc["error"]
                raise _ERRORS.get(kind, RuntimeError)(message)
            report = RunReport(self.workdir, skipped=doc["skipped"])
            report.outcomes = {n: TaskOutcome(*o) for n, o in doc["outcomes"].items()}
            return report
        report = RunReport(self.workdir, skipped=self.record["skipped"])
        missing = [n for n in self.record["todo"] if status.states[n] != DONE]
        why = get_backend(self.backend).detached_failures(self.workdir, self.record["detached"], missing)
        for name in self.record["todo"]:
            state = status.states[name]
            if state == DONE:
                report.outcomes[name] = TaskOutcome(DONE)
            elif state == STATUS_FAILED or name in why:
                report.outcomes[name] = TaskOutcome(FAILED, why.get(name) or status.errors.get(name, ""))
            else:
                report.outcomes[name] = TaskOutcome(NOT_RUN, f"{state}: its job did not run it")
        return report

    def cancel(self) -> None:
        """Stop the run with the scheduler's own cancel (scancel, a Dask cancel), or end the detached
        process and its workers; tasks already done stay done (submit or run again to resume)."""
        detached = self.record.get("detached")
        if detached is not None:
            get_backend(self.backend).detached_cancel(detached)
        else:
            holder = Holder.from_json(self.record["process"])
            alive = holder.alive()
            if alive is None:
                raise LockError(f"{self.workdir}: the run was submitted from {holder.host}; cancel it there "
                                f"(mempamal cancel {self.workdir})")
            if alive:
                _stop_group(holder, self._process, self.workdir / SUBMISSION_REPORT)
            _clear_dead_records(self.workdir)
        self.record["cancelled"] = time.time()
        write_json(self.workdir / SUBMISSION, self.record)

    def results(self, partial: bool = False) -> Results:
        """:func:`mempamal.load_results` of the workdir; ``partial=True`` before the run ends."""
        return load_results(self.workdir, partial=partial)


def _stop_group(holder: Holder, process: subprocess.Popen | None, report: Path) -> None:
    """End the detached process, then its process group (its workers, its jobs).

    SIGTERM to the process first: its run() is interrupted as by Ctrl-C (the run lock released,
    a Soma-Workflow workflow deleted, its report written); then the group, SIGKILL last.
    """
    def wait_until(done, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if process is not None:
                process.poll()  # reap it: a zombie keeps its group alive
            if done():
                return True
            time.sleep(0.1)
        return False

    os.kill(holder.pid, signal.SIGTERM)
    wait_until(lambda: report.exists() or not pid_alive(holder.pid, holder.pid_start), _STOP_GRACE)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(holder.pid, sig)  # its own session: the group is its pid
        except ProcessLookupError:
            return
        if wait_until(lambda: not _group_alive(holder.pid), _STOP_GRACE / 2):
            return


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clear_dead_records(workdir: Path) -> None:
    """Remove the running records of tasks whose process (of this host) died: cancelled, not lost."""
    for name, record in running_records(workdir).items():
        if record_alive(record) is False:
            (workdir / RUNNING_DIR / f"{name}.json").unlink(missing_ok=True)


def submit(workdir: str | os.PathLike, backend: str = "local", *, resume: bool = True, **options) -> Submission:
    """Hand the workflow of ``workdir`` to a back-end and return at once.

    Parameters
    ----------
    workdir : path
        A directory written by :meth:`mempamal.Experiment.write`.
    backend : str, default="local"
        ``"slurm"`` submits SLURM job arrays; a Dask ``scheduler_address`` (or ``client``) gets the
        tasks as fire-and-forget futures; the other back-ends (``"local"``, ``"soma-workflow"``)
        run in a background process of this machine, in its own session.
    resume : bool, default=True
        As :func:`mempamal.run`.
    **options
        The back-end's options, as for :func:`mempamal.run` (JSON values for a background process).

    Returns
    -------
    Submission
        ``wait()``, ``status()``, ``cancel()``, ``results(partial=...)``; :func:`attach` finds
        it again from the workdir alone.

    Raises
    ------
    LockError
        When a run of this workdir is in progress (a submission still running, or a run's lock).
    ValueError
        For an option the back-end does not take, a back-end that cannot run detached (with the
        reason), or an option that a background process cannot be given (not JSON).

    See Also
    --------
    attach : Find the submission again, from another process.
    mempamal.run : Run and wait in this process.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mempamal import Experiment, submit
    >>> X, y = load_iris(return_X_y=True)
    >>> workdir = Experiment(LogisticRegression(), cv=3).write(X, y, "runs/submitted")
    >>> submission = submit(workdir, n_jobs=2)  # returns at once: the run goes on in the background
    >>> print(submission.wait(progress=False).summary())
    4 tasks: 4 done, 0 failed, 0 not run, 0 skipped (already complete)
    >>> submission.results().test_scores["score"]
    array([0.98, 0.96, 0.98])
    """
    workdir = Path(workdir).resolve()
    executor = create_backend(backend, **options)
    workflow, fingerprint = prepare(workdir)
    previous = attach(workdir, missing_ok=True)
    if previous is not None and previous.running() is not False:
        raise LockError(f"{workdir}: a submitted run is in progress ({previous.describe()}); follow it with "
                        "mempamal.attach(workdir), or cancel it first (Submission.cancel(), mempamal cancel)")
    with run_lock(workdir):  # not while a run() goes on; released before a background run() takes it
        todo, done = tasks_to_do(workdir, workflow, resume, fingerprint)
        record = {"backend": backend, "resume": resume, "submitted": time.time(), "host": this_host(),
                  "todo": [t.name for t in todo], "skipped": [t.name for t in done],
                  "token": os.urandom(8).hex()}
        (workdir / SUBMISSION_REPORT).unlink(missing_ok=True)
        for task in todo:  # as run(): stale outputs must not pass for fresh ones
            for out in task.outputs:
                (workdir / out).unlink(missing_ok=True)
        detached = executor.detach(workdir, workflow, todo)
    if detached is not None:
        record["detached"] = detached
        write_json(workdir / SUBMISSION, record)
        return Submission(workdir, record)
    options = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in options.items()}
    try:
        json.dumps(options)
    except TypeError:
        raise ValueError(f"options: a run in a background process takes its back-end's options as JSON "
                         f"values; {sorted(options)} are not all such (use run() in this process)") from None
    record["options"] = options
    write_json(workdir / SUBMISSION, record)
    process = _start_process(workdir)
    record["process"] = Holder(this_host(), process.pid, time.time(), process_start(process.pid),
                               record["token"]).to_json()
    write_json(workdir / SUBMISSION, record)
    return Submission(workdir, record, process)


def _start_process(workdir: Path) -> subprocess.Popen:
    """``python -m mempamal run WORKDIR --detached-process`` in its own session, its output to its log."""
    log = workdir / SUBMISSION_LOG
    log.parent.mkdir(exist_ok=True)
    with open(log, "wb") as out:
        # -P, and PYTHONSAFEPATH for the workers it starts: from the workdir, `python -m` would import
        # a numpy.py someone dropped there (PYTHON_FLAGS)
        return subprocess.Popen([sys.executable, *PYTHON_FLAGS, "-m", "mempamal", "run", str(workdir),
                                 "--detached-process"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=workdir, env={**os.environ, "PYTHONSAFEPATH": "1"})


def attach(workdir: str | os.PathLike, *, missing_ok: bool = False) -> Submission | None:
    """The run last submitted for ``workdir`` (by :func:`submit`, ``mempamal run --detach``), from any process.

    Parameters
    ----------
    workdir : str or path
        A workdir a run was submitted for (``submission/submission.json`` records it).
    missing_ok : bool, default=False
        Return None, instead of raising, when no run was submitted.

    Returns
    -------
    submission : Submission or None
        Its ``status()``, ``wait()``, ``results(partial=True)`` and ``cancel()``.

    Raises
    ------
    FileNotFoundError
        When no run was submitted for ``workdir`` (unless ``missing_ok``: None).

    See Also
    --------
    submit : Hand a run over.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mempamal import Experiment, attach, submit
    >>> X, y = load_iris(return_X_y=True)
    >>> workdir = Experiment(LogisticRegression(), cv=3).write(X, y, "runs/submitted")
    >>> _ = submit(workdir)

    Later, from another process or notebook kernel, from the workdir alone:

    >>> submission = attach("runs/submitted")
    >>> submission.backend
    'local'
    >>> print(submission.wait(progress=False).summary())
    4 tasks: 4 done, 0 failed, 0 not run, 0 skipped (already complete)
    >>> print(attach("runs/submitted").describe())
    submitted to local: process host ...; ended
    >>> attach("runs/never-submitted", missing_ok=True) is None
    True
    """
    workdir = Path(workdir).resolve()
    path = workdir / SUBMISSION
    if not path.exists():
        if missing_ok:
            return None
        raise FileNotFoundError(f"{path}: no run was submitted for {workdir} (mempamal.submit, mempamal run "
                                "--detach); mempamal.status(...) or `mempamal status` read any run's tasks")
    return Submission(workdir, read_json(path))


def run_detached_process(workdir: str | os.PathLike) -> None:
    """The background process of a submission: run() with the recorded back-end and options, then its
    report (outcomes, or the error) in ``submission/report.json`` for wait()."""
    workdir = Path(workdir).resolve()
    record = read_json(workdir / SUBMISSION)

    def stop(signum, frame):  # cancel(): end as an interruption, releasing the run lock
        raise KeyboardInterrupt(f"cancelled (signal {signum})")

    signal.signal(signal.SIGTERM, stop)
    doc: dict = {"token": record["token"]}
    try:
        report = run(workdir, record["backend"], resume=record["resume"], progress=False, **record["options"])
    except WorkflowError as e:
        report = e.report
    except KeyboardInterrupt:
        doc["error"] = ["Cancelled", f"{workdir}: the run was cancelled; run or submit again to resume"]
        report = None
    except Exception as e:
        doc["error"] = [type(e).__name__, str(e)]
        report = None
    if report is not None:
        doc["outcomes"] = {n: [o.status, o.error] for n, o in report.outcomes.items()}
        doc["skipped"] = report.skipped
    write_json(workdir / SUBMISSION_REPORT, doc)
    print(f"mempamal: {report.summary() if report is not None else doc['error'][1]}", flush=True)
