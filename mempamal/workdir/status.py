"""Where a workflow stands, read from its files alone.

A task is *done* when its outputs exist (they are written atomically), *failed*
when its log ends with an error (a Python traceback) and its outputs are
missing, *running* when its log has been started but holds neither, and
*pending* otherwise. Only files are read, so this works while a run goes on
in another process, and whatever the back-end (every back-end sends a task's
output to ``logs/<name>.log``).

While a task runs, its running record (``logs/running/<name>.json``) names its
host and process; a process killed without a word (the OOM killer, ``kill -9``)
leaves it behind. An incomplete task whose record names a dead process of this
host is *lost*; one whose record names another host is running there, as far as
this host can tell.
"""
from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from pathlib import Path

from .document import ExperimentDoc
from .files import InputFileError, read_json
from .lock import Holder, this_host
from .paths import Workdir
from .workflow import Workflow, is_complete, load_workflow



class Status(str, enum.Enum):
    """The one vocabulary of a task's state, for ``mempamal status`` and a run's report alike.

    A str (``Status.DONE == "done"``, as a dict key, in JSON, in f-strings): the words are
    those of ``mempamal status --json`` and of :class:`mempamal.backends.TaskOutcome`.

    Examples
    --------
    >>> from mempamal.backends import DONE, NOT_RUN, Status
    >>> DONE == "done", f"{NOT_RUN}"
    (True, 'not run')
    >>> [str(state) for state in Status]
    ['done', 'running', 'pending', 'failed', 'lost', 'not run']
    """

    DONE = "done"          # its outputs are complete
    RUNNING = "running"    # started, neither done nor failed yet
    PENDING = "pending"    # not started
    FAILED = "failed"      # its log ends with an error
    LOST = "lost"          # its process died without a word (killed, out of memory)
    NOT_RUN = "not run"    # a run did not start it: a task it needs failed

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


DONE, RUNNING, PENDING, FAILED, LOST, NOT_RUN = (Status.DONE, Status.RUNNING, Status.PENDING, Status.FAILED,
                                                 Status.LOST, Status.NOT_RUN)
STATES = (DONE, RUNNING, PENDING, FAILED, LOST)  # what `mempamal status` counts, read from files
_TRACEBACK = "Traceback (most recent call last):"
_CHAINED = ("During handling of the above exception", "The above exception was the direct cause")
_TAIL = 64 * 1024  # the error is at the end of a log; logs of chatty estimators can be long


@dataclass
class WorkflowStatus:
    """The state of every task of a workdir.

    Attributes
    ----------
    workdir : pathlib.Path
    states : dict of str to str
        Task name to "done", "running", "pending", "failed" or "lost", in workflow order.
    errors : dict of str to str
        Failed task name to the last line of its error.
    records : dict of str to dict
        Running or lost task name to its running record (host, pid, started), when it has one.
    finished : bool
        Whether results.json has been written (the experiment is complete).
    stacking : dict or None
        experiment.json's "stacking": whether the analyses' columns are fitted together, and why.
    """

    workdir: Path
    workflow: Workflow
    states: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    records: dict[str, dict] = field(default_factory=dict)
    finished: bool = False
    stacking: dict | None = None

    def names(self, state: str) -> list[str]:
        return [n for n, s in self.states.items() if s == state]

    def counts(self) -> dict[str, int]:
        """Tasks per state, and the total."""
        out = {s.value: len(self.names(s)) for s in STATES}
        out["total"] = len(self.states)
        return out

    def to_dict(self) -> dict:
        """A JSON-ready description (what ``mempamal status --json`` prints)."""
        return {
            "workdir": str(self.workdir),
            "finished": self.finished,
            "stacking": self.stacking,
            "counts": self.counts(),
            "failed": [{"task": n, "error": self.errors[n], **self._rerun(n)} for n in self.names(FAILED)],
            "running": self.names(RUNNING),
            "running_elsewhere": self.elsewhere(),
            "lost": [{"task": n, "host": self.records[n].get("host"), "pid": self.records[n].get("pid"),
                      **self._rerun(n)} for n in self.names(LOST)],
        }

    def _rerun(self, name: str) -> dict[str, str]:
        """Where a failed or lost task says why (its log) and how to run it again (its command)."""
        task = self.workflow.by_name[name]
        return {"log": str(self.workdir / task.log), "command": task.shell_command(self.workdir)}

    def elsewhere(self) -> dict[str, str]:
        """Running task name to its host, for tasks running on another host (not checked from here)."""
        here = this_host()
        return {n: self.records[n].get("host") for n in self.names(RUNNING)
                if n in self.records and self.records[n].get("host") != here}

    def __str__(self) -> str:
        c = self.counts()
        lines = [f"{self.workdir}: {c['total']} tasks: {c[DONE]} done, {c[RUNNING]} running, "
                 f"{c[PENDING]} pending, {c[FAILED]} failed, {c[LOST]} lost"
                 + ("; results are ready (mempamal results)" if self.finished else "")]
        if self.stacking:
            lines.append(f"- columns {self.stacking['reason']}")
        hosts: dict[str, int] = {}
        for host in self.elsewhere().values():
            hosts[host] = hosts.get(host, 0) + 1
        for host, n in hosts.items():
            lines.append(f"- {n} running on {host} (cannot be checked from this host)")
        trouble = [(name, f"- failed {name}: {self.errors[name]}") for name in self.names(FAILED)]
        trouble += [(name, f"- lost {name}: its process (pid {self.records[name].get('pid')} on "
                           f"{self.records[name].get('host')}) ended without finishing it or reporting an error "
                           "(killed? out of memory?); run again") for name in self.names(LOST)]
        for name, headline in trouble:
            rerun = self._rerun(name)
            lines += [headline, f"  log: {rerun['log']}", f"  command: {rerun['command']}"]
        return "\n".join(lines)


def workflow_status(workdir: str | os.PathLike) -> WorkflowStatus:
    """Read the state of every task of ``workdir`` from its outputs and logs.

    Parameters
    ----------
    workdir : path
        A directory written by :meth:`mempamal.Experiment.write`.

    Returns
    -------
    status : WorkflowStatus
        Print it for a summary; ``counts()`` for the numbers.
    """
    paths = Workdir.of(Path(workdir).resolve())
    workdir = paths.root
    workflow = load_workflow(workdir)
    try:
        stacking = ExperimentDoc.read(workdir).stacking
    except (OSError, ValueError, InputFileError):  # status reads what it can; run() and the tasks report a bad experiment.json
        stacking = None
    status = WorkflowStatus(workdir, workflow, finished=paths.results_json.exists(), stacking=stacking)
    records = running_records(workdir)
    for task in workflow.tasks:
        if is_complete(workdir, task.id):
            status.states[task.name] = DONE
            continue
        record = records.get(task.name)
        alive = None if record is None else record_alive(record)
        error = _log_error(paths.log(task.id))
        if record is not None and alive is not False:  # running here (perhaps again), or on another host
            status.states[task.name] = RUNNING
            status.records[task.name] = record
        elif error:
            status.states[task.name] = FAILED
            status.errors[task.name] = error
        elif record is not None:  # its process died without a word
            status.states[task.name] = LOST
            status.records[task.name] = record
        elif error is None:
            status.states[task.name] = PENDING
        else:
            status.states[task.name] = RUNNING
    return status


def running_records(workdir: Path) -> dict[str, dict]:
    """Task name to its running record, for the tasks that have one (one directory listing)."""
    records = {}
    try:
        entries = list(os.scandir(Workdir.of(workdir).running_dir))
    except FileNotFoundError:
        return records
    for entry in entries:
        if not entry.name.endswith(".json"):  # skip a temporary file being renamed into place
            continue
        try:
            record = read_json(entry.path)
        except (OSError, ValueError):  # removed meanwhile (the task ended), or unreadable
            continue
        if isinstance(record, dict):
            records[entry.name[:-len(".json")]] = record
    return records


def record_alive(record: dict) -> bool | None:
    """Whether the process of a running record is alive: None when it ran on another host (or the
    record does not say which process)."""
    try:
        return Holder.from_json(record).alive()
    except (KeyError, TypeError, ValueError):
        return None


def _log_error(log: Path) -> str | None:
    """None without a log, "" for a log without an error, else the error's last line."""
    try:
        with open(log, "rb") as f:
            f.seek(max(f.seek(0, os.SEEK_END) - _TAIL, 0))
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    if _TRACEBACK not in text:
        return ""
    # The final exception's traceback follows the last chaining notice; an exception's
    # message may itself quote a traceback (a failed fit's), hence the first one after it.
    start = max(text.rfind(m) for m in _CHAINED)
    start = text.find(_TRACEBACK, max(start, 0))
    after = text[start if start >= 0 else text.index(_TRACEBACK):].strip().splitlines()
    # The exception line is the first one after the indented frames.
    for line in after[1:]:
        if line and not line.startswith((" ", "\t")):
            return line
    return after[-1]
