"""A native SLURM export: the workflow as a few job arrays chained by dependencies.

For clusters where nothing but ``sbatch`` exists. Each stage of the graph
(maps, refits, gather) becomes one job array (split when larger than the
cluster's MaxArraySize); a stage waits for the whole previous one
(``--dependency=afterok``), so 100,000 map tasks are still a handful of
submissions. The workdir must be on a filesystem the compute nodes share.

Files written:

- ``WORKDIR/slurm/<stage>.tasks``: one batch of tasks a line, ``name<TAB>command``; array
  element ``k`` runs line ``offset + k + 1``: a batch command (``mempamal task batch``, its task
  list in ``WORKDIR/batches/``) running its tasks in turn in one process, or a task's own command
  for a batch of one task (``batch_size=1``: every line one task);
- ``WORKDIR/slurm/<stage>.sbatch``: the job script of a stage's arrays;
- the submit script (``bash submit.sh``), which calls sbatch once per array.

Re-submitting after a partial failure runs only the missing tasks: the export
lists only tasks still to do (as :func:`mempamal.run` resumes), and an array
element skips each task that is complete (``mempamal task --if-incomplete``; a batch always does,
the same rule as everywhere: outputs recording this experiment's and this task's
fingerprint), so running the same submit script again is cheap too.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..workdir.batches import Batch, plan_batches, write_batch_files
from ..workdir.files import atomic_open
from ..workdir.layout import SLURM_DIR, SLURM_LOG_DIR, STAGES
from ..workdir.workflow import Workflow, tasks_to_do, thread_limits

DEFAULT_MAX_ARRAY_SIZE = 1000  # SLURM's default MaxArraySize is 1001: indices 0..1000
_TIME = re.compile(r"^\d+(-\d+)?(:\d+){0,2}$")
_MEM = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE)


@dataclass
class StageResources:
    """What one stage's array elements ask SLURM for.

    Parameters
    ----------
    cpus : int, default=1
        ``--cpus-per-task``, and the BLAS/OpenMP threads each task may use
        (``OMP_NUM_THREADS`` and friends): one setting for nested parallelism.
    mem : str, optional
        ``--mem``, e.g. ``"2G"``.
    time : str, optional
        ``--time``, e.g. ``"01:00:00"`` or ``"2-00:00:00"``.
    partition : str, optional
        ``--partition``.
    sbatch_args : list of str
        Any other sbatch options, e.g. ``["--qos=short", "--account=lab"]``.
    """

    cpus: int = 1
    mem: str | None = None
    time: str | None = None
    partition: str | None = None
    sbatch_args: list[str] = field(default_factory=list)

    def validate(self, where: str) -> None:
        if not isinstance(self.cpus, int) or isinstance(self.cpus, bool) or self.cpus < 1:
            raise ValueError(f"{where}cpus: expected a positive int, got {self.cpus!r}")
        if self.mem is not None and not _MEM.match(str(self.mem)):
            raise ValueError(f"{where}mem: expected sbatch's --mem syntax such as '500M' or '4G', got {self.mem!r}")
        if self.time is not None and not _TIME.match(str(self.time)):
            raise ValueError(f"{where}time: expected sbatch's --time syntax such as '30', '01:00:00' or "
                             f"'1-12:00:00', got {self.time!r}")
        if isinstance(self.sbatch_args, str):
            raise ValueError(f"{where}sbatch_args: expected a list of options, got the string "
                             f"{self.sbatch_args!r}; write [{self.sbatch_args!r}]")
        for arg in self.sbatch_args:
            if not str(arg).startswith("-"):
                raise ValueError(f"{where}sbatch_args: {arg!r} is not an option (options start with '-')")

    def options(self) -> list[str]:
        out = [f"--cpus-per-task={self.cpus}"]
        if self.mem is not None:
            out.append(f"--mem={self.mem}")
        if self.time is not None:
            out.append(f"--time={self.time}")
        if self.partition is not None:
            out.append(f"--partition={self.partition}")
        return out + [str(a) for a in self.sbatch_args]


def stage_resources(defaults: dict | None = None, stages: dict | None = None) -> dict[str, StageResources]:
    """Per-stage resources: ``defaults`` for all stages, ``stages[stage]`` overriding them."""
    defaults = dict(defaults or {})
    stages = dict(stages or {})
    for stage in stages:
        if stage not in STAGES:
            raise ValueError(f"stages: unknown stage {stage!r}; the stages are {list(STAGES)}")
    known = set(StageResources.__dataclass_fields__)
    out = {}
    for stage in STAGES:
        merged = {**defaults, **dict(stages.get(stage) or {})}
        unknown = set(merged) - known
        if unknown:
            raise ValueError(f"slurm resources: unknown option(s) {sorted(unknown)} for stage {stage!r}; "
                             f"expected some of {sorted(known)}")
        res = StageResources(**merged)
        res.validate(f"{stage} stage: " if stage in stages else "")
        out[stage] = res
    return out


_ELEMENT = r"""set -uo pipefail
cd {workdir}
line=$(sed -n "$(( ${{1:-0}} + SLURM_ARRAY_TASK_ID + 1 ))p" {tasks})
IFS=$'\t' read -r name command <<< "$line"
if [ -z "${{name:-}}" ]; then echo "no task at index $SLURM_ARRAY_TASK_ID (offset ${{1:-0}}) of {tasks}" >&2; exit 1; fi
# Nested parallelism: the threads a task may use are the CPUs it was given.
{threads}
echo "$name: $command (job $SLURM_JOB_ID, array $SLURM_ARRAY_JOB_ID[$SLURM_ARRAY_TASK_ID] on $(hostname))"
# The task skips itself when complete (--if-incomplete), else writes its own log (--log).
eval "$command"
status=$?
[ $status = 0 ] || echo "$name: failed with status $status; see the failed tasks' logs/<task>.log" >&2
exit $status
"""


def write_submit_script(workdir: Path, workflow: Workflow, output: Path, *,
                 cpus: int = 1, mem: str | None = None, time: str | None = None, partition: str | None = None,
                 sbatch_args: list[str] | tuple[str, ...] = (), stages: dict | None = None,
                 max_array_size: int = DEFAULT_MAX_ARRAY_SIZE, resume: bool = True,
                 batch_size: int | None = None, jobs_at_once: int | None = None) -> Path:
    """Write a SLURM submit script (job arrays chained by ``afterok``) for the workflow of ``workdir``.

    Parameters
    ----------
    workdir : Path
        A directory written by :meth:`mempamal.Experiment.write` (absolute), on a filesystem the
        nodes share.
    workflow : Workflow
        Its workflow.
    output : Path
        The submit script to write. Run it with ``bash`` (from any directory).
    cpus, mem, time, partition, sbatch_args
        Resources of every stage (see :class:`StageResources`); ``cpus`` also sets the
        BLAS/OpenMP threads of each task.
    stages : dict, optional
        Per-stage overrides, e.g. ``{"map": {"mem": "4G"}, "gather": {"cpus": 1}}``.
    max_array_size : int, default=1000
        Most elements per array (keep it at most the cluster's MaxArraySize - 1); larger stages are
        split into several arrays.
    resume : bool, default=True
        List only the tasks still to do; ``False`` lists them all (their element still skips a task
        whose outputs are fresh: delete the outputs to recompute).
    batch_size : int, default=None
        Most tasks per array element (a batch run in one process); 1: one task per element.
        Default: per stage, one batch per job the cluster runs at once (``jobs_at_once``).
    jobs_at_once : int, default=None
        The array elements the cluster runs at once, for the default batch size; default:
        this machine's cores. Set it to the cores you get on the cluster.

    Returns
    -------
    path : Path
        The submit script. It prints ``<stage> <jobid>`` per array submitted.
    """
    if not isinstance(max_array_size, int) or isinstance(max_array_size, bool) or max_array_size < 1:
        raise ValueError(f"max_array_size: expected a positive int, got {max_array_size!r}")
    resources = stage_resources(
        {"cpus": cpus, "mem": mem, "time": time, "partition": partition, "sbatch_args": list(sbatch_args)},
        stages)
    todo, _ = tasks_to_do(workdir, workflow, resume)
    batches = plan_batches(todo, batch_size, jobs_at_once)
    write_batch_files(workdir, batches)
    by_stage = {s: [b for b in batches if b.stage == s] for s in STAGES}
    stage_of = {t.name: t.stage for t in todo}
    # A stage's arrays wait for those of the stages its tasks depend on (tasks complete are left out).
    waits_for = {s: {stage_of[d] for b in by_stage[s] for t in b.tasks for d in t.dependencies if d in stage_of}
                 for s in STAGES}
    (workdir / SLURM_DIR).mkdir(exist_ok=True)
    (workdir / SLURM_LOG_DIR).mkdir(parents=True, exist_ok=True)
    lines = [
        "#!/bin/bash",
        f"# Written by `mempamal export --format slurm` for {workdir}.",
        "# One job array per stage, each waiting for the previous one (afterok); tasks already",
        "# complete were left out. Array logs: logs/slurm/; each task's own log: logs/<task>.log.",
        "set -euo pipefail",
        f"cd {shlex.quote(str(workdir))}",
        'submit() { local id; id=$(sbatch --parsable "$@"); echo "${id%%;*}"; }',
    ]
    arrays: dict[str, list[str]] = {}  # stage -> shell variables holding its arrays' job ids
    for stage in STAGES:
        if by_stage[stage]:  # the stage's batches: one array element each
            _write_stage_files(workdir, workflow.python, stage, by_stage[stage], resources[stage])
            previous = [v for s in STAGES if s in waits_for[stage] for v in arrays[s]]
            arrays[stage] = _submit_arrays(lines, stage, len(by_stage[stage]), previous, max_array_size)
    if not arrays:
        lines.append('echo "nothing to do: every task is complete" >&2')
    with atomic_open(output, "w") as f:
        f.write("\n".join(lines) + "\n")
    output.chmod(0o755)
    return output


def _write_stage_files(workdir: Path, python: str, stage: str, batches: list[Batch], res: StageResources) -> None:
    """A stage's task list (a batch a line) and its job script (``slurm/<stage>.tasks``, ``.sbatch``)."""
    with atomic_open(workdir / SLURM_DIR / f"{stage}.tasks", "w") as f:
        for b in batches:
            f.write(f"{b.name}\t{shlex.join(b.command(python, if_incomplete=True, log=True))}\n")
    threads = "\n".join(f"export {k}={v}" for k, v in thread_limits(res.cpus).items())
    script = "\n".join(["#!/bin/bash", f"#SBATCH --job-name=mempamal-{stage}",
                        f"#SBATCH --output={SLURM_LOG_DIR}/{stage}-%A_%a.out",
                        *(f"#SBATCH {o}" for o in res.options()), "",
                        _ELEMENT.format(workdir=shlex.quote(str(workdir)),
                                        tasks=shlex.quote(f"{SLURM_DIR}/{stage}.tasks"), threads=threads)])
    with atomic_open(workdir / SLURM_DIR / f"{stage}.sbatch", "w") as f:
        f.write(script)


def _submit_arrays(lines: list[str], stage: str, n_elements: int, previous: list[str],
                   max_array_size: int) -> list[str]:
    """Append the sbatch calls of a stage's arrays (waiting for the ``previous`` arrays' job ids) to
    ``lines``; return the shell variables holding their job ids."""
    depend = (["--kill-on-invalid-dep=yes", "--dependency=afterok:" + ":".join(f"${v}" for v in previous)]
              if previous else [])
    current = []
    for k, start in enumerate(range(0, n_elements, max_array_size)):
        size = min(max_array_size, n_elements - start)
        var = f"{stage}_{k}"
        argv = [f"--array=0-{size - 1}", *depend, f"{SLURM_DIR}/{stage}.sbatch", str(start)]
        lines.append(f'{var}=$(submit {" ".join(a if a.startswith("--dependency") else shlex.quote(a) for a in argv)})')
        lines.append(f'echo "{stage} ${var}"')
        current.append(var)
    return current


# --- Soma-Workflow's slurm scheduler on Slurm < 23.02 ---------------------------------------
# Soma-Workflow 6 polls `sacct -o jobid,...,stdout,...`; sacct only knows the `stdout` field
# since Slurm 23.02, errors on older ones, and the engine then waits forever. This wrapper,
# earlier on PATH than the real sacct, asks for `workdir` instead (same column count; the
# engine does not use the value). Soma-Workflow is left untouched.
SACCT_WRAPPER = r"""#!/bin/bash
# sacct for Soma-Workflow on Slurm < 23.02 (written by mempamal): field stdout -> workdir.
args=() fmt=0
for a in "$@"; do
  if [ $fmt = 1 ] || [[ $a == --format=* ]] || [[ $a == -o?* ]]; then
    a=$(sed -E 's/(^|[,=]|^-o)stdout(,|$)/\1workdir\2/g' <<< "$a")
  fi
  fmt=0; [ "$a" = -o ] || [ "$a" = --format ] && fmt=1
  args+=("$a")
done
exec {real} "${{args[@]}}"
"""


def slurm_version(sacct: str = "sacct") -> tuple[int, int] | None:
    """The (major, minor) version of SLURM's client commands, None when there are none."""
    try:
        out = subprocess.run([sacct, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"(\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else None


def needs_sacct_wrapper() -> bool:
    """Whether this machine's sacct lacks the ``stdout`` field Soma-Workflow 6 asks for (Slurm < 23.02)."""
    version = slurm_version()
    return version is not None and version < (23, 2)


def write_sacct_wrapper(directory: str | os.PathLike, real_sacct: str | None = None) -> Path:
    """Write the ``sacct`` wrapper into ``directory`` (to put first on PATH); returns its path.

    ``real_sacct`` is the sacct it calls, default: the one on PATH now (not ``directory``'s).
    """
    directory = Path(directory).expanduser().resolve()
    if real_sacct is None:
        path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                               if p and Path(p).resolve() != directory)
        real_sacct = shutil.which("sacct", path=path)
        if real_sacct is None:
            raise FileNotFoundError("sacct: not on PATH; install SLURM's client commands (Debian: slurm-client)")
    directory.mkdir(parents=True, exist_ok=True)
    wrapper = directory / "sacct"
    with atomic_open(wrapper, "w") as f:
        f.write(SACCT_WRAPPER.format(real=shlex.quote(real_sacct)))
    wrapper.chmod(0o755)
    return wrapper
