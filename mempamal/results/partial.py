"""Partial results: what the finished tasks of an unfinished workdir allow.

The gather task reads every refit and permute output; here the same outputs are
read as far as they exist, so that a user can look at the outer folds done and
the permutations scored so far while the rest runs. Only complete outputs of
this experiment count (the one rule of completeness, ``is_complete``), so a
task still writing or a stale output is left out.

- Outer folds: those whose refit is done (for every target, when targets are
  analysed apart), in fold order; ``Results.outer_folds`` names them.
- Permutations: those whose every outer fold is done (a permutation's score is
  the mean of its outer folds', as in permutation_test_score), for every target;
  their p-values need the observed score, hence every outer fold's refit: until
  then they are NaN.
- Stacked columns (``columns`` tasks, each one outer fold of a chunk of analyses):
  an outer fold counts when every chunk of it is done; a permutation when the
  chunks holding it, for every target, are done on every outer fold.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..experiment.encoding import encode
from ..experiment.permutations import pvalues, pvalues_max_t
from ..tasks.gather import target_part
from ..tasks.stacked import analyses, stacked_outputs
from ..workdir.document import ExperimentDoc
from ..workdir.files import load_arrays
from ..workdir.layout import TaskId, target_prefix
from ..workdir.paths import Workdir
from ..workdir.workflow import experiment_fingerprint, is_complete, load_workflow, tasks_to_do


def _done(workdir: Path, fingerprint: str, task_id: TaskId) -> bool:
    return is_complete(workdir, task_id, fingerprint)


def gather_partial(workdir: Path, doc: ExperimentDoc) -> tuple[dict, dict[str, Any]]:
    """The results document and arrays (as the gather task writes them) of the tasks done so far.

    Parameters
    ----------
    workdir : Path
    doc : dict
        experiment.json's document.

    Returns
    -------
    results, arrays
        results.json's and results.npz's content, over the outer folds done (``outer_folds``)
        and the permutations done; ``partial`` is True.
    """
    fingerprint = experiment_fingerprint(workdir)
    read = _stacked_so_far if doc.stacked else _refits_so_far
    folds, target_folds, permutations, table = read(workdir, doc, fingerprint)
    results: dict[str, Any] = {"partial": True, "outer_folds": folds, "n_outer_total": doc.n_outer,
                               "metrics": list(doc.scoring), "refit": doc.refit, "n_outer": len(folds),
                               "search": doc.search, "per_target": doc.per_target,
                               "n_targets": doc.n_targets}
    arrays: dict[str, Any] = {}
    parts = [target_part(doc, these) for these in target_folds]
    if doc.per_target:
        results["targets"] = [part for part, _ in parts]
        for t, (_, part_arrays) in enumerate(parts):
            arrays.update({target_prefix(t) + k: v for k, v in part_arrays.items()})
    else:
        results.update(parts[0][0])
        arrays.update(parts[0][1])
    if doc.n_permutations:
        complete = len(folds) == doc.n_outer
        scores = {m: np.stack([a[f"test_{m}"] for _, a in parts]) for m in results["metrics"]}
        results["permutation"], permutation_arrays = _permutation_summary(
            doc, permutations, table, scores if complete else None)
        arrays.update(permutation_arrays)
    return results, arrays


def _refits_so_far(workdir: Path, doc: ExperimentDoc, fingerprint: str):
    """(outer folds done, each analysis's refit outputs on them, permutations done, their score tables
    (n_targets, n_done, n_outer) per metric) of the per-analysis tasks."""
    targets = doc.targets
    folds = [o for o in range(doc.n_outer)
             if all(_done(workdir, fingerprint, TaskId("refit", target=t, outer=o)) for t in targets)]
    target_folds = [[load_arrays(workdir / TaskId("refit", target=t, outer=o).outputs[0]) for o in folds]
                    for t in targets]
    n_outer, members = doc.n_outer, doc.permutation_chunks
    done = [k for k in range(len(members))
            if all(_done(workdir, fingerprint, TaskId("permute", target=t, perm=k, outer=o))
                   for t in targets for o in range(n_outer))]
    permutations = [p for k in done for p in members[k]]
    table = {m: np.full((len(targets), len(permutations), n_outer), np.nan) for m in doc.scoring}
    for j, t in enumerate(targets):
        at = 0
        for k in done:
            size = len(members[k])
            for o in range(n_outer):
                _, arrays = load_arrays(workdir / TaskId("permute", target=t, perm=k, outer=o).outputs[0])
                for m in table:
                    table[m][j, at:at + size, o] = arrays[f"test_{m}"]
            at += size
    return folds, target_folds, permutations, table


def _stacked_so_far(workdir: Path, doc: ExperimentDoc, fingerprint: str):
    """The same from the columns tasks done: an outer fold counts when every chunk of it is done, a
    permutation when the chunks holding it (for every target) are done on every outer fold."""
    chunks, n_outer = range(len(doc.column_chunks)), doc.n_outer
    done = {(c, o) for c in chunks for o in range(n_outer)
            if _done(workdir, fingerprint, TaskId("columns", outer=o, chunk=c))}
    folds = [o for o in range(n_outer) if all((c, o) in done for c in chunks)]
    full = [c for c in chunks if all((c, o) in done for o in range(n_outer))]
    y_1d = not doc.per_target and Workdir.of(workdir).load_data(doc)[1].ndim == 1

    def read(task_id: TaskId):
        return load_arrays(workdir / task_id.outputs[0])

    target_folds, _ = stacked_outputs(doc, read, y_1d, folds, chunks)
    table: dict[str, np.ndarray] = {m: np.empty((len(doc.targets), 0, n_outer)) for m in doc.scoring}
    permutations: list[int] = []
    if doc.n_permutations:
        _, table = stacked_outputs(doc, read, y_1d, range(n_outer), full)
        everything = analyses(doc)
        held = {everything[i] for c in full for i in doc.column_chunks[c]}
        # A permutation is done when it is done for every target (max-T compares them).
        permutations = [p for p in range(doc.n_permutations) if all((t, p) in held for t in doc.targets)]
        table = {m: v[:, permutations] for m, v in table.items()}
    return folds, target_folds, permutations, table


def _permutation_summary(doc: ExperimentDoc, permutations: list[int], table: dict[str, np.ndarray],
                         test_scores: dict[str, np.ndarray] | None) -> tuple[dict, dict]:
    """The permutations done: their scores and, when the observed score is known (``test_scores``,
    (n_targets, n_outer)), their p-values."""
    targets, metrics = doc.targets, list(doc.scoring)
    summary: dict[str, Any] = {"n_permutations": len(permutations), "n_permutations_total": doc.n_permutations,
                               "random_state": doc.permutation_random_state,
                               "score": {}, "pvalues": {}, "pvalues_fwer": {}}
    arrays: dict[str, Any] = {}
    nan = np.full(len(targets), np.nan)
    for m in metrics:
        scores = table[m].mean(axis=-1)
        arrays[f"permutation_scores_{m}"] = scores
        # No observed score before every outer fold is done; no p-value without a permutation.
        observed = nan if test_scores is None else test_scores[m].mean(axis=-1)
        known = test_scores is not None and permutations
        for key, values in (("score", observed), ("pvalues", pvalues(observed, scores) if known else nan),
                            ("pvalues_fwer", pvalues_max_t(observed, scores) if known else nan)):
            summary[key][m] = [encode(float(v)) for v in values]
    return summary, arrays


def missing_tasks(workdir: Path) -> str:
    """Which tasks are not done yet, in a few words."""
    workflow = load_workflow(workdir)
    todo, _ = tasks_to_do(workdir, workflow)
    names = [t.name for t in todo]
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    return f"{len(names)} of {len(workflow.tasks)} tasks not done ({shown})"
