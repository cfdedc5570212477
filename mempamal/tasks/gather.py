"""The gather stage: every outer fold's refit (and every permutation's scores) into
results.json and results.npz, the last task of a workflow.

With targets analysed apart, each target's part goes under ``targets`` in results.json
and under its prefix (:func:`~mempamal.workdir.layout.target_prefix`) in results.npz;
p-values come from the permutation tasks' scores (:mod:`mempamal.experiment.permutations`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..experiment.encoding import decode, encode
from ..experiment.permutations import pvalues, pvalues_max_t
from ..workdir.document import ExperimentDoc
from ..workdir.files import save_arrays, write_json
from ..workdir.layout import TaskId, target_prefix
from .context import Context
from .stacked import gather_stacked


def _gather_target(ctx: Context, target: int | None) -> tuple[dict, dict[str, Any]]:
    """One analysis (y, or one target of it): its part of results.json and of results.npz."""
    return target_part(ctx.doc, [ctx.read_output(TaskId("refit", target=target, outer=o))
                                 for o in range(ctx.doc.n_outer)])


def target_part(doc: ExperimentDoc, folds: list[tuple[dict, dict]]) -> tuple[dict, dict[str, Any]]:
    """One analysis's part of results.json and results.npz from its refit outputs, fold k of the
    arrays being ``folds[k]`` (every outer fold here; those done so far for partial results)."""
    test = {m: np.array([decode(meta["test_scores"][m]) for meta, _ in folds], dtype=float) for m in doc.scoring}
    arrays: dict[str, Any] = {f"test_{m}": v for m, v in test.items()}
    arrays["fit_time"] = np.array([meta["fit_time"] for meta, _ in folds], dtype=float)
    arrays["score_time"] = np.array([meta["score_time"] for meta, _ in folds], dtype=float)
    results: dict[str, Any] = {
        "test_scores": {m: [encode(float(s)) for s in v] for m, v in test.items()},
        "summary": {m: {k: encode(float(f(v)) if len(v) else float("nan")) for k, f in
                        (("mean", np.mean), ("std", np.std), ("median", np.median))} for m, v in test.items()},
    }
    if doc.with_search:
        results["best_index"] = [meta["best_index"] for meta, _ in folds]
        results["best_params"] = [meta["best_params"] for meta, _ in folds]
        results["n_failed_fits"] = [meta["n_failed_fits"] for meta, _ in folds]
        n_inner = max(doc.n_inner)
        for key in [k for k in folds[0][1] if k.startswith("inner_")] if folds else []:
            table = np.full((len(folds), doc.n_candidates, n_inner), np.nan)
            for o, (_, fold) in enumerate(folds):
                table[o, :, :fold[key].shape[1]] = fold[key]
            arrays[key] = table
    for o, (_, fold) in enumerate(folds):
        arrays[f"test_indices_{o}"] = fold["test_indices"]
        if "test_predictions" in fold:
            arrays[f"test_predictions_{o}"] = fold["test_predictions"]
    return results, arrays


def _gather_permutations(ctx: Context, test_scores: dict[str, np.ndarray],
                         folds: dict[str, np.ndarray] | None = None) -> tuple[dict, dict[str, Any]]:
    """Permutation scores and p-values per metric; ``test_scores[m]`` is (n_targets, n_outer).

    Reads one permutation task's output at a time: only the (n_targets, N, n_outer) score tables
    are held, the score of a permutation being the mean of its outer folds', as in
    permutation_test_score. ``folds``: those tables, already read (stacked columns).
    """
    doc = ctx.doc
    n, n_outer = doc.n_permutations, doc.n_outer
    targets = doc.targets
    if folds is None:
        folds = {m: np.full((len(targets), n, n_outer), np.nan) for m in test_scores}
        for j, t in enumerate(targets):
            for k in range(doc.n_permutation_chunks):
                for o in range(n_outer):
                    meta, arrays = ctx.read_output(TaskId("permute", target=t, perm=k, outer=o))
                    start, stop = meta["permutations"]
                    for m in folds:
                        folds[m][j, start:stop, o] = arrays[f"test_{m}"]
    summary: dict[str, Any] = {"n_permutations": n, "random_state": doc.permutation_random_state,
                               "score": {}, "pvalues": {}, "pvalues_fwer": {}}
    arrays: dict[str, Any] = {}
    for m, table in folds.items():
        scores = test_scores[m].mean(axis=-1)
        permutation_scores = table.mean(axis=-1)
        arrays[f"permutation_scores_{m}"] = permutation_scores
        summary["score"][m] = [encode(float(v)) for v in scores]
        summary["pvalues"][m] = [encode(float(v)) for v in pvalues(scores, permutation_scores)]
        summary["pvalues_fwer"][m] = [encode(float(v)) for v in pvalues_max_t(scores, permutation_scores)]
    return summary, arrays


def run_gather(ctx: Context, task_id: TaskId) -> None:
    """Gather every analysis into results.json and results.npz (results.json last: it marks a finished
    experiment)."""
    doc = ctx.doc
    fingerprints = ctx.fingerprints(task_id)
    results: dict[str, Any] = {**fingerprints, "metrics": list(doc.scoring), "refit": doc.refit,
                               "n_outer": doc.n_outer, "search": doc.search,
                               "per_target": bool(doc.per_target), "n_targets": doc.n_targets}
    arrays: dict[str, Any] = {}
    permutation_folds = None
    if doc.stacked:  # the columns tasks' outputs, one at a time, laid out as the refit tasks' would be
        folds, permutation_folds = gather_stacked(ctx)
        parts = [target_part(doc, target_folds) for target_folds in folds]
    else:
        parts = [_gather_target(ctx, t) for t in doc.targets]
    if doc.per_target:
        results["targets"] = [part for part, _ in parts]
    for t, (part, part_arrays) in zip(doc.targets, parts):
        if not doc.per_target:
            results.update(part)
        arrays.update({f"{target_prefix(t)}{k}": v for k, v in part_arrays.items()})
    if doc.n_permutations:
        test_scores = {m: np.stack([part_arrays[f"test_{m}"] for _, part_arrays in parts]) for m in results["metrics"]}
        results["permutation"], permutation_arrays = _gather_permutations(ctx, test_scores, permutation_folds)
        arrays.update(permutation_arrays)
    results_json, results_npz = ctx.workdir.outputs(task_id)
    save_arrays(results_npz, meta=fingerprints, **arrays)
    # results.json last: it is the mark of a finished experiment.
    write_json(results_json, results)
