"""The tasks of stacked columns: a chunk of analyses fitted together on one outer fold, and their gather.

When experiment.json's "stacking" says so (:mod:`mempamal.experiment.stacking`), the
analyses (each target of ``per_target`` and each permutation of y) are the blocks of
columns of one Y, in the order (target, permutation), the unpermuted y first
(permutation -1). A "columns" task computes one outer fold of a chunk of them with
:func:`mempamal.tasks.columns.outer_fold`; the gather reads the chunks' outputs one at a
time and lays out the same results.json and results.npz as the per-analysis tasks.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..experiment.encoding import encode
from ..workdir.document import ExperimentDoc
from ..workdir.layout import TaskId
from .columns import outer_fold, stack_y
from .context import Context


def analyses(doc: ExperimentDoc) -> list[tuple[int | None, int]]:
    """Every analysis as (target, permutation): target None is y as a whole, permutation -1 y unpermuted."""
    return [(t, p) for t in doc.targets for p in range(-1, doc.n_permutations)]


def run_columns(ctx: Context, task_id: TaskId) -> None:
    """One outer fold of every analysis of a chunk of columns: search, selection, refit, test."""
    doc, outer, chunk = ctx.doc, task_id.outer, task_id.chunk
    members = doc.column_chunks[chunk]
    chunk_analyses = analyses(doc)[members.start:members.stop]
    X, y, _ = ctx.data()
    indices = ctx.permutations() if doc.n_permutations else None
    Y = stack_y(np.asarray(y, dtype=np.float64), chunk_analyses, indices)
    folds = ctx.folds(doc.targets[0])  # every analysis has these folds (stacking requires it)
    train, test = folds.outer(outer)
    inner = [folds.inner(outer, i) for i in range(doc.n_inner[outer])] if doc.with_search else []
    block = doc.stacking["block"]
    result = outer_fold(ctx.estimator(), ctx.candidates() if doc.with_search else None, X, Y, train, test, inner,
                        ctx.scorers(), doc.refit, block=block, error_score=ctx.error_score,
                        fold_params=ctx.fold_params, where=f"outer {outer}, chunk {chunk} of columns, ")
    observed = np.array([p == -1 for _, p in chunk_analyses], dtype=bool)
    arrays: dict[str, Any] = {"best_index": result.best, "n_failed": result.n_failed, "test_indices": test,
                              # predictions and inner scores of the unpermuted analyses only: nothing reads others'
                              "test_predictions": result.predictions[:, np.repeat(observed, block)]}
    arrays.update({f"test_{m}": v for m, v in result.test.items()})
    arrays.update({f"inner_test_{m}": v[observed] for m, v in result.inner.items()})
    arrays.update({f"inner_{k}": v for k, v in result.times.items() if k != "refit_time"})
    ctx.workdir.save_output(task_id, meta={**ctx.fingerprints(task_id), "analyses": [members.start, members.stop],
                                           "refit_time": result.times["refit_time"]}, **arrays)


def gather_stacked(ctx: Context) -> tuple[list[tuple[dict, dict]], dict[str, np.ndarray] | None]:
    """Each analysis's part of the results, as the per-analysis gather lays it out, and the permutation
    scores per metric, (n_targets, n_permutations, n_outer); reads one task's output at a time."""
    doc = ctx.doc
    n_outer, n_perm, metrics = doc.n_outer, doc.n_permutations, list(doc.scoring)
    targets = doc.targets
    y_1d = not doc.per_target and ctx.data()[1].ndim == 1
    test = {m: np.full((len(targets), n_outer), np.nan) for m in metrics}
    perm = {m: np.full((len(targets), n_perm, n_outer), np.nan) for m in metrics} if n_perm else None
    per_fold: list[list[dict]] = [[{} for _ in range(n_outer)] for _ in targets]
    everything = analyses(doc)
    for c in range(len(doc.column_chunks)):
        for o in range(n_outer):
            meta, arrays = ctx.read_output(TaskId("columns", outer=o, chunk=c))
            start, stop = meta["analyses"]
            seen = 0
            for k, (t, p) in enumerate(everything[start:stop]):
                j = 0 if t is None else t
                for m in metrics:
                    if p == -1:
                        test[m][j, o] = arrays[f"test_{m}"][k]
                    else:
                        perm[m][j, p, o] = arrays[f"test_{m}"][k]
                if p == -1:
                    per_fold[j][o] = _fold_of(doc, meta, arrays, k, seen, y_1d)
                    seen += 1
    parts = [_part(doc, test, j, per_fold[j], metrics) for j in range(len(targets))]
    return parts, perm


def _fold_of(doc: ExperimentDoc, meta: dict, arrays: dict, k: int, seen: int, y_1d: bool) -> dict:
    """One outer fold of one unpermuted analysis (the ``seen``-th of its chunk, ``k``-th analysis in it)."""
    block = doc.stacking["block"]
    predictions = arrays["test_predictions"][:, seen * block:(seen + 1) * block]
    fold = {"best_index": int(arrays["best_index"][k]), "n_failed": int(arrays["n_failed"][k]),
            "test_indices": arrays["test_indices"],
            "test_predictions": predictions[:, 0] if (block == 1 and (doc.per_target or y_1d)) else predictions,
            "fit_time": meta["refit_time"], "score_time": 0.0}
    fold.update({key: arrays[key][seen] for key in arrays if key.startswith("inner_test_")})
    fold.update({key: arrays[key] for key in ("inner_fit_time", "inner_score_time") if key in arrays})
    return fold


def _part(doc: ExperimentDoc, test: dict, j: int, folds: list[dict], metrics: list[str]) -> tuple[dict, dict]:
    """Target ``j``'s part of results.json and results.npz, as gather._gather_target gives it."""
    scores = {m: test[m][j] for m in metrics}
    arrays: dict[str, Any] = {f"test_{m}": v for m, v in scores.items()}
    arrays["fit_time"] = [f["fit_time"] for f in folds]
    arrays["score_time"] = [f["score_time"] for f in folds]
    results: dict[str, Any] = {
        "test_scores": {m: [encode(float(s)) for s in v] for m, v in scores.items()},
        "summary": {m: {k: encode(float(f(v))) for k, f in
                        (("mean", np.mean), ("std", np.std), ("median", np.median))} for m, v in scores.items()},
    }
    if doc.with_search:
        results["best_index"] = [f["best_index"] for f in folds]
        results["best_params"] = [doc.candidates[f["best_index"]] for f in folds]
        results["n_failed_fits"] = [f["n_failed"] for f in folds]
        n_inner = max(doc.n_inner)
        for key in folds[0]:
            if key.startswith("inner_"):
                table = np.full((doc.n_outer, doc.n_candidates, n_inner), np.nan)
                for o, fold in enumerate(folds):
                    table[o, :, :fold[key].shape[1]] = fold[key]
                arrays[key] = table
    for o, fold in enumerate(folds):
        arrays[f"test_indices_{o}"] = fold["test_indices"]
        arrays[f"test_predictions_{o}"] = fold["test_predictions"]
    return results, arrays
