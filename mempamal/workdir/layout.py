"""The names of a workdir's files, their format tags, and the identity of a task: one place for all.

Every back-end, export and command asks this module what a file or a task is
called, what a task's command line, outputs, log and fingerprint are, and which
format tag each of mempamal's documents carries; nothing rebuilds those strings
elsewhere or parses them back out of a command line.
It imports nothing of mempamal's: any module may use it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

# -- the workdir ------------------------------------------------------------------------
EXPERIMENT = "experiment.json"
WORKFLOW = "workflow.json"
FOLDS = "folds.npz"
MANIFEST = "manifest.json"      # size, mtime and hash of each file write() wrote, to notice edits
SIGNATURE = "signature.json"    # the HMAC, with the user's key, of what decides what runs (workdir.trust)
DATA_DIR = "data"
PERMUTATIONS = f"{DATA_DIR}/permutations.npy"  # (n_permutations, n_samples): y[indices[p]] is permutation p
PERMUTED_FOLDS_DIR = "permuted_folds"         # the folds of permuted y's that differ from y's
MAPS_DIR = "maps"
OUTER_DIR = "outer"
PERMUTATIONS_DIR = "permutations"
COLUMNS_DIR = "columns"           # a chunk of analyses fitted together, on one outer fold (stacked columns)
LOG_DIR = "logs"
RUNNING_DIR = f"{LOG_DIR}/running"  # which process (host, pid) runs a task, while it runs
SLURM_DIR = "slurm"
SLURM_LOG_DIR = f"{LOG_DIR}/slurm"
BATCH_DIR = "batches"             # the task lists of batch commands (mempamal task batch)
BATCH_LOG_DIR = f"{LOG_DIR}/batches"  # a batch process's own output (each task's goes to its log)
RESULTS_JSON = "results.json"
RESULTS_NPZ = "results.npz"
LOCK = "run.lock"                # held by the run in progress
SUBMISSION_DIR = "submission"    # a run handed over by submit(): how, to whom, its log and its end
SUBMISSION = f"{SUBMISSION_DIR}/submission.json"
SUBMISSION_REPORT = f"{SUBMISSION_DIR}/report.json"  # written by a detached process when its run ends
SUBMISSION_LOG = f"{SUBMISSION_DIR}/run.log"         # a detached process's own output

# What write() creates, so that overwrite=True removes exactly that and nothing of the user's.
GENERATED = (EXPERIMENT, WORKFLOW, FOLDS, MANIFEST, SIGNATURE, DATA_DIR, PERMUTED_FOLDS_DIR, MAPS_DIR, OUTER_DIR,
             PERMUTATIONS_DIR, COLUMNS_DIR, LOG_DIR, SLURM_DIR, BATCH_DIR, RESULTS_JSON, RESULTS_NPZ, SUBMISSION_DIR)

# -- the format tags: each document's "format"; the number changes when a reader of the old one would misread it
EXPERIMENT_FORMAT = "mempamal/experiment-1"
WORKFLOW_FORMAT = "mempamal/workflow-2"
MANIFEST_FORMAT = "mempamal/manifest-1"
SIGNATURE_FORMAT = "mempamal/signature-1"
BATCH_FORMAT = "mempamal/batch-1"
CMD_LIST_FORMAT = "mempamal/cmd-list-2"  # 2: a line per batch of tasks, and "tasks"


def chunk_count(n_items: int, chunk_size: int) -> int:
    """How many chunks of at most ``chunk_size`` items hold ``n_items`` (the last may hold fewer).

    The one ceiling division behind every count of chunks: of the grid (map tasks), of the
    permutations (permute tasks), of the tasks (batches).
    """
    return -(-n_items // chunk_size)


def permuted_folds(target: int | None, chunk: int) -> str:
    """The file of the permuted folds of one target (None: y as a whole) and chunk of permutations."""
    return f"{PERMUTED_FOLDS_DIR}/{'' if target is None else f't{target}-'}p{chunk}.npz"


# -- keys inside a file ---------------------------------------------------------------
# With targets analysed apart, folds.npz and results.npz hold one set of arrays per target,
# each under its target's prefix; y as a whole has none.

def target_prefix(target: int | None) -> str:
    """The prefix of a target's arrays in folds.npz and results.npz ("" for y as a whole)."""
    return "" if target is None else f"t{target}_"


def permutation_prefix(p: int) -> str:
    """The prefix of permutation ``p``'s folds in its chunk's file of permuted folds."""
    return f"p{p}_"


def unprefixed(arrays: dict, prefix: str) -> dict:
    """The arrays of ``arrays`` under ``prefix``, without it (all of them for "")."""
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

# -- a task ---------------------------------------------------------------------------
STAGES = ("map", "refit", "permute", "columns", "gather")
# A task's indices, in the order of its name and command line, with the letter of its name.
INDICES = (("target", "t"), ("perm", "p"), ("outer", "o"), ("inner", "i"), ("chunk", "c"))
_OUTPUT_DIR = {"map": MAPS_DIR, "refit": OUTER_DIR, "permute": PERMUTATIONS_DIR, "columns": COLUMNS_DIR}


@dataclass(frozen=True)
class TaskId:
    """Which task: its stage and indices (None: not an index of this task).

    Parameters
    ----------
    stage : str
        "map" (fit and score a grid chunk on an inner fold), "refit" (select, refit, test
        on an outer fold), "permute" (whole analyses of a chunk of permutations of y on an
        outer fold), "columns" (whole analyses of a chunk of columns fitted together, stacked, on an
        outer fold) or "gather".
    target : int, optional
        The column of y, when each target is analysed on its own.
    perm : int, optional
        The chunk of permutations.
    outer, inner, chunk : int, optional
        The outer fold, the inner fold, the chunk of the grid (of columns, for "columns").
    """

    stage: str
    target: int | None = None
    perm: int | None = None
    outer: int | None = None
    inner: int | None = None
    chunk: int | None = None

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage: expected one of {STAGES}, got {self.stage!r}")
        for field, _ in INDICES:
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ValueError(f"{field}: expected a non-negative int or None, got {value!r}")

    def indices(self) -> dict[str, int]:
        """The indices this task has, in name order."""
        return {field: getattr(self, field) for field, _ in INDICES if getattr(self, field) is not None}

    @property
    def _suffix(self) -> str:
        return "-".join(f"{letter}{getattr(self, field)}" for field, letter in INDICES
                        if getattr(self, field) is not None)

    @property
    def name(self) -> str:
        """The task's name in workflow.json, logs and reports, e.g. ``map-o0-i1-c0``."""
        suffix = self._suffix
        return f"{self.stage}-{suffix}" if suffix else self.stage

    @property
    def args(self) -> list[str]:
        """The arguments of ``mempamal task`` that run it from the workdir."""
        out = [self.stage, "."]
        for field, value in self.indices().items():
            out += [f"--{field}", str(value)]
        return out

    @property
    def outputs(self) -> list[str]:
        """The files it writes, relative to the workdir."""
        if self.stage == "gather":
            return [RESULTS_JSON, RESULTS_NPZ]
        return [f"{_OUTPUT_DIR[self.stage]}/{self._suffix}.npz"]

    @property
    def log(self) -> str:
        """Where its output and errors go, relative to the workdir."""
        return f"{LOG_DIR}/{self.name}.log"

    @property
    def running_record(self) -> str:
        """The file naming the host and process running it (absent when not running)."""
        return f"{RUNNING_DIR}/{self.name}.json"

    def fingerprint(self, experiment_fingerprint: str) -> str:
        """What its outputs record: the experiment (document, data, folds) and this task's identity."""
        identity = json.dumps({"experiment": experiment_fingerprint, "stage": self.stage, **self.indices()},
                              sort_keys=True)
        return hashlib.sha256(identity.encode()).hexdigest()

    def to_json(self) -> dict:
        return {"stage": self.stage, **self.indices()}

    @classmethod
    def from_json(cls, doc: dict) -> "TaskId":
        return cls(**doc)

    def __str__(self) -> str:
        return self.name


# -- a batch of tasks -------------------------------------------------------------------

def batch_name(stage: str, index: int) -> str:
    """The name of batch ``index`` of a stage, e.g. ``map-batch0`` (a job's name; its logs' names)."""
    return f"{stage}-batch{index}"


def batch_file(stage: str, index: int, task_ids: list[TaskId]) -> str:
    """The file listing the tasks of batch ``index`` of a stage, relative to the workdir.

    Its name ends with a digest of the tasks it lists: a file of that name always lists
    those tasks, so that a run or an export writing other batches later never changes
    what an earlier export's jobs run.
    """
    digest = hashlib.sha256(json.dumps([t.to_json() for t in task_ids], sort_keys=True).encode()).hexdigest()
    return f"{BATCH_DIR}/{stage}-{index}-{digest[:12]}.json"


def batch_log(stage: str, index: int, suffix: str = ".out") -> str:
    """The batch process's own output (which task it runs, how each ended), relative to the workdir."""
    return f"{BATCH_LOG_DIR}/{batch_name(stage, index)}{suffix}"
