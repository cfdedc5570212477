"""The SLURM back-end: the native export's job arrays, submitted and followed from Python.

The same files as ``mempamal export --format slurm`` (``slurm/<stage>.tasks`` and
``.sbatch``, the batches, the submit script ``slurm/submit.sh``), submitted with
``sbatch``; the job ids and which array element runs which task are recorded
(:func:`mempamal.submit` keeps them in ``submission/submission.json``), so that
any process can follow the jobs with ``squeue``, say why a task did not complete
with ``sacct`` (failed, timed out, cancelled, with the element's log) and cancel
them with ``scancel``. Nothing waits on the login node unless asked to:
``run(backend="slurm")`` follows the jobs until they end; ``submit`` returns.
A second submission lists only the tasks still to do, as the export does.
"""
from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path

from ..export.slurm import DEFAULT_MAX_ARRAY_SIZE, stage_resources, write_submit_script
from ..workdir.batches import read_batch_file
from ..workdir.layout import SLURM_DIR, SLURM_LOG_DIR, STAGES
from ..workdir.status import workflow_status
from ..workdir.workflow import Task, Workflow, is_complete
from .base import DONE, FAILED, NOT_RUN, Backend, Option, TaskOutcome
from .progress import Progress

# sacct's states of an array element that ended without running its tasks to the end.
_ENDED_BADLY = ("FAILED", "TIMEOUT", "CANCELLED", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "DEADLINE",
                "BOOT_FAIL")


class SlurmBackend(Backend):
    """Submit the workflow as SLURM job arrays, one per stage, chained by ``afterok``.

    Parameters
    ----------
    cpus, mem, time, partition, sbatch_args, stages, max_array_size, batch_size, jobs_at_once
        As :func:`mempamal.export.slurm.write_submit_script`: each array element's resources
        (``cpus`` also its BLAS/OpenMP threads), per-stage overrides, the tasks per element.
    poll_interval : float, default=5
        Seconds between two ``squeue`` calls while ``run()`` follows the jobs.
    """

    name = "slurm"
    options = (
        Option("cpus", int, "--cpus-per-task of each array element, also its tasks' BLAS/OpenMP threads "
                            "(default 1)", default=1),
        Option("mem", str, "--mem of each element, e.g. 2G"),
        Option("time", str, "--time of each element, e.g. 01:00:00"),
        Option("partition", str, "--partition"),
        Option("sbatch_args", shlex.split, "any other sbatch options, e.g. '--qos=short --account=lab'"),
        Option("stages", dict, "per-stage resources, e.g. {'map': {'mem': '4G'}}", cli=False),
        Option("max_array_size", int, "most elements per job array (default 1000)"),
        Option("batch_size", int, "most tasks per array element, run in one process (1: one task per "
                                  "element; default: one batch per job at once)"),
        Option("jobs_at_once", int, "the elements the cluster runs at once, for the default batch size"),
        Option("poll_interval", float, "seconds between two squeue calls while run() follows the jobs",
               default=5.0),
    )

    def __init__(self, cpus: int = 1, mem: str | None = None, time: str | None = None,
                 partition: str | None = None, sbatch_args: list[str] | None = None, stages: dict | None = None,
                 max_array_size: int = DEFAULT_MAX_ARRAY_SIZE, batch_size: int | None = None,
                 jobs_at_once: int | None = None, poll_interval: float = 5.0) -> None:
        self.resources = dict(cpus=cpus, mem=mem, time=time, partition=partition, sbatch_args=list(sbatch_args or ()),
                              stages=stages)
        stage_resources({k: v for k, v in self.resources.items() if k != "stages"}, stages)  # checked now
        if not isinstance(max_array_size, int) or isinstance(max_array_size, bool) or max_array_size < 1:
            raise ValueError(f"max_array_size: expected a positive int, got {max_array_size!r}")
        self.max_array_size = max_array_size
        self.batch_size = batch_size
        self.jobs_at_once = jobs_at_once
        self.poll_interval = poll_interval

    def detach(self, workdir: Path, workflow: Workflow, tasks: list[Task]) -> dict:
        """Write the arrays of ``tasks`` and submit them: their job ids and which element runs which task."""
        script = write_submit_script(workdir, workflow, workdir / SLURM_DIR / "submit.sh",
                                     max_array_size=self.max_array_size, batch_size=self.batch_size,
                                     jobs_at_once=self.jobs_at_once, **self.resources)
        out = _slurm(["bash", str(script)], "sbatch")
        jobs = [line.split() for line in out.stdout.splitlines() if line.strip()]
        if out.returncode:
            if jobs:  # the arrays submitted before the failure would wait for nothing
                _slurm(["scancel", *[job for _, job in jobs]], "scancel")
            raise RuntimeError(f"sbatch refused an array ({script}): {out.stderr.strip()}")
        return {"jobs": [{"stage": stage, "id": job} for stage, job in jobs],
                "elements": _elements(workdir, jobs, self.max_array_size)}

    def execute(self, workdir: Path, workflow: Workflow, tasks: list[Task],
                progress: Progress) -> dict[str, TaskOutcome]:
        """Submit, then follow the jobs until none is queued or running (``scancel`` if interrupted)."""
        detached = self.detach(workdir, workflow, tasks)
        settled: set[str] = set()
        try:
            while True:
                alive = self.detached_alive(detached)
                for task in tasks:
                    if task.name not in settled and is_complete(workdir, task.id):
                        settled.add(task.name)
                        progress.update(DONE)
                if not alive:
                    break
                time.sleep(self.poll_interval)
        except BaseException:
            self.detached_cancel(detached)
            raise
        return outcomes_after(workdir, detached, tasks, progress, settled)

    @classmethod
    def describe_detached(cls, detached: dict) -> str:
        return "SLURM jobs " + ", ".join(f"{j['id']} ({j['stage']})" for j in detached["jobs"])

    @classmethod
    def detached_alive(cls, detached: dict) -> bool:
        """Whether ``squeue`` still lists one of the jobs (pending or running)."""
        ids = [j["id"] for j in detached["jobs"]]
        if not ids:
            return False
        out = _slurm(["squeue", "-h", "-o", "%i", "-j", ",".join(ids)], "squeue")
        if out.returncode and "Invalid job id" not in out.stderr:
            raise RuntimeError(f"squeue failed: {out.stderr.strip()}")
        return bool(out.stdout.split())

    @classmethod
    def detached_cancel(cls, detached: dict) -> None:
        ids = [j["id"] for j in detached["jobs"]]
        if ids:
            _slurm(["scancel", *ids], "scancel")

    @classmethod
    def detached_failures(cls, workdir: Path, detached: dict, names: list[str]) -> dict[str, str]:
        """The tasks whose array element failed, timed out or was cancelled (``sacct``), with its log."""
        elements = {detached["elements"][n] for n in names if n in detached["elements"]}
        # An element that started wrote its log: sacct must come to list it on its own line.
        started = [e for e in elements if _element_log(workdir, detached, e).exists()]
        states = _settled_states([j["id"] for j in detached["jobs"]], started)
        out = {}
        for name in names:
            element = detached["elements"].get(name)
            state = states.get(element, "")
            if state.split()[:1] and state.split()[0] in _ENDED_BADLY:
                out[name] = f"its SLURM job {element} ended {state}; the job's log: " \
                            f"{_element_log(workdir, detached, element)}"
        return out


def outcomes_after(workdir: Path, detached: dict, tasks: list[Task], progress: Progress,
                   settled: set[str]) -> dict[str, TaskOutcome]:
    """Each task's outcome once the jobs have ended: done, failed (its log, or its job's end), not run."""
    status = workflow_status(workdir)
    why = SlurmBackend.detached_failures(workdir, detached, [t.name for t in tasks if status.states[t.name] != DONE])
    outcomes = {}
    for task in tasks:
        state = status.states[task.name]
        if state == DONE:
            outcome = TaskOutcome(DONE)
        elif state == FAILED or task.name in why:  # one vocabulary: a log's failure is a run's
            outcome = TaskOutcome(FAILED, why.get(task.name) or status.errors.get(task.name, ""))
        else:
            outcome = TaskOutcome(NOT_RUN, f"{state}: its SLURM job did not run it (a job it waited for failed?)")
        outcomes[task.name] = outcome
        if task.name not in settled:
            progress.update(outcome.status)
    return outcomes


def _slurm(argv: list[str], what: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what}: not found; the slurm back-end runs where SLURM's commands are (a "
                                "login node; Debian: slurm-client)") from None


def _elements(workdir: Path, jobs: list[list[str]], max_array_size: int) -> dict[str, str]:
    """Task name to the array element (``jobid_index``) that runs it, from the stages' task lists."""
    out = {}
    for stage in STAGES:
        ids = [job for s, job in jobs if s == stage]
        if not ids:
            continue
        lines = (workdir / SLURM_DIR / f"{stage}.tasks").read_text().splitlines()
        for k, line in enumerate(lines):
            name, _, command = line.partition("\t")
            element = f"{ids[k // max_array_size]}_{k % max_array_size}"
            argv = shlex.split(command)
            if "batch" in argv and "--file" in argv:
                for task_id in read_batch_file(workdir / argv[argv.index("--file") + 1]):
                    out[task_id.name] = element
            else:
                out[name] = element
    return out


def _element_log(workdir: Path, detached: dict, element: str) -> Path:
    """The output file of array element ``jobid_index`` (the stage's sbatch ``--output``)."""
    job, _, index = element.partition("_")
    stage = next(j["stage"] for j in detached["jobs"] if j["id"] == job)
    return workdir / SLURM_LOG_DIR / f"{stage}-{job}_{index}.out"


ACCOUNTING_SETTLE = 30.0  # seconds: the most sacct may lag behind jobs that left the queue
_NOT_ENDED = ("RUNNING", "PENDING", "COMPLETING", "REQUEUED")


def _settled_states(ids: list[str], started: list[str]) -> dict[str, str]:
    """``sacct``'s states once it has recorded how the ``started`` elements (of jobs gone from the
    queue) ended.

    slurmctld tells slurmdbd asynchronously: just after a cancel, sacct may still say RUNNING for an
    element that squeue no longer shows, or not list it at all: an element cancelled soon after it
    started can still be folded into its array's record of elements never started (``12_[1-7]``),
    and would pass for one that never ran. Bounded: without accounting, states stay empty.
    """
    deadline = time.monotonic() + ACCOUNTING_SETTLE
    while True:
        states = _element_states(ids)
        if states is None:
            return {}
        # Not listed on its own line yet: as good as still running.
        unsettled = [e for e in started if (states.get(e) or "RUNNING").split()[0] in _NOT_ENDED]
        if not unsettled or time.monotonic() > deadline:
            return states
        time.sleep(0.5)


def _element_states(ids: list[str]) -> dict[str, str] | None:
    """``jobid_index`` to its state per ``sacct``; None when sacct cannot tell (no accounting)."""
    if not ids:
        return {}
    out = _slurm(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(ids)], "sacct")
    if out.returncode:
        return None
    states = {}
    for line in out.stdout.splitlines():
        element, _, state = line.partition("|")
        states[element] = state
    return states
