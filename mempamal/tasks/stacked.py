"""The tasks of stacked columns: a chunk of analyses fitted together on one outer fold, and their gather.

When experiment.json's "stacking" says so (:mod:`mempamal.experiment.stacking`), the
analyses (each target of ``per_target`` and each permutation of y) are the blocks of
columns of one Y, in the order (target, permutation), the unpermuted y first
(permutation -1). A "columns" task computes one outer fold of a chunk of them with
:func:`mempamal.tasks.columns.outer_fold`; the gather reads the chunks' outputs one at a
time and lays out the same results.json and results.npz as the per-analysis tasks.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

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


def gather_stacked(ctx: Context) -> tuple[list[list[tuple[dict, dict]]], dict[str, np.ndarray] | None]:
    """Each unpermuted analysis's outer folds as (meta, arrays) pairs shaped as the refit tasks' outputs
    (for :func:`mempamal.tasks.gather.target_part`), and the permutation scores per metric,
    (n_targets, n_permutations, n_outer); reads one task's output at a time."""
    doc = ctx.doc
    y_1d = not doc.per_target and ctx.data()[1].ndim == 1
    return stacked_outputs(doc, ctx.read_output, y_1d, range(doc.n_outer), range(len(doc.column_chunks)))


def stacked_outputs(doc: ExperimentDoc, read: Callable[[TaskId], tuple[dict, dict]], y_1d: bool,
                    outer_folds: Sequence[int], chunks: Sequence[int]
                    ) -> tuple[list[list[Any]], dict[str, np.ndarray] | None]:
    """What :func:`gather_stacked` returns, from the outputs of ``chunks`` on ``outer_folds`` only
    (partial results read those done so far): fold k is ``outer_folds[k]``; the folds of an analysis
    in no chunk read are None, its permutation scores NaN."""
    n_perm, metrics = doc.n_permutations, list(doc.scoring)
    perm = {m: np.full((len(doc.targets), n_perm, len(outer_folds)), np.nan) for m in metrics} if n_perm else None
    folds: list[list[Any]] = [[None] * len(outer_folds) for _ in doc.targets]
    everything = analyses(doc)
    for c in chunks:
        for k_o, o in enumerate(outer_folds):
            meta, arrays = read(TaskId("columns", outer=o, chunk=c))
            start, stop = meta["analyses"]
            seen = 0
            for k, (t, p) in enumerate(everything[start:stop]):
                j = 0 if t is None else t
                if p == -1:
                    folds[j][k_o] = _fold_of(doc, meta, arrays, k, seen, y_1d)
                    seen += 1
                else:
                    for m in metrics:
                        perm[m][j, p, k_o] = arrays[f"test_{m}"][k]
    return folds, perm


def _fold_of(doc: ExperimentDoc, meta: dict, arrays: dict, k: int, seen: int, y_1d: bool) -> tuple[dict, dict]:
    """One outer fold of one unpermuted analysis (the ``seen``-th of its chunk, ``k``-th analysis in it),
    as its refit task would have written it."""
    block = doc.stacking["block"]
    predictions = arrays["test_predictions"][:, seen * block:(seen + 1) * block]
    fold_meta: dict[str, Any] = {"test_scores": {m: encode(float(arrays[f"test_{m}"][k])) for m in doc.scoring},
                                 "fit_time": meta["refit_time"], "score_time": 0.0}
    if doc.with_search:
        best = int(arrays["best_index"][k])
        fold_meta.update(best_index=best, best_params=doc.candidates[best], n_failed_fits=int(arrays["n_failed"][k]))
    fold = {"test_indices": arrays["test_indices"],
            "test_predictions": predictions[:, 0] if (block == 1 and (doc.per_target or y_1d)) else predictions}
    fold.update({key: arrays[key][seen] for key in arrays if key.startswith("inner_test_")})
    fold.update({key: arrays[key] for key in ("inner_fit_time", "inner_score_time") if key in arrays})
    return fold_meta, fold
