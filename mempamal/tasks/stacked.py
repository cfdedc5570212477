"""The tasks of stacked columns: a chunk of analyses fitted together on one outer fold, and their gather.

When experiment.json's "stacking" says so (:mod:`mempamal.experiment.stacking`), the
analyses (each target of ``per_target`` and each permutation of y) are the blocks of
columns of one Y, in the order (target, permutation), the unpermuted y first
(permutation -1). A "columns" task computes one outer fold of a chunk of them with
:func:`mempamal.tasks.columns.outer_fold`; the gather reads the chunks' outputs one at a
time and lays out the same results.json and results.npz as the per-analysis tasks.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..experiment.encoding import encode
from ..workdir.files import save_arrays
from ..workdir.layout import TaskId
from .columns import outer_fold, stack_y


def analyses(doc: dict) -> list[tuple[int | None, int]]:
    """Every analysis as (target, permutation): target None is y as a whole, permutation -1 y unpermuted."""
    targets = list(range(doc["n_targets"])) if doc.get("per_target") else [None]
    return [(t, p) for t in targets for p in range(-1, doc.get("n_permutations") or 0)]


def _chunk(doc: dict, chunk: int) -> range:
    size = doc["stacking"]["chunk_size"]
    return range(chunk * size, min((chunk + 1) * size, doc["stacking"]["n_analyses"]))


def run_columns(ctx, outer: int, chunk: int) -> None:
    """One outer fold of every analysis of a chunk of columns: search, selection, refit, test."""
    doc = ctx.doc
    task_id = TaskId("columns", outer=outer, chunk=chunk)
    members = _chunk(doc, chunk)
    chunk_analyses = analyses(doc)[members.start:members.stop]
    X, y, _ = ctx.data()
    indices = ctx.permutations() if doc.get("n_permutations") else None
    Y = stack_y(np.asarray(y, dtype=np.float64), chunk_analyses, indices)
    folds = ctx.folds(ctx.targets[0])  # every analysis has these folds (stacking requires it)
    train, test = folds.outer(outer)
    search = doc["search"] is not None
    inner = [folds.inner(outer, i) for i in range(doc["n_inner"][outer])] if search else []
    result = outer_fold(ctx.estimator(), ctx.candidates() if search else None, X, Y, train, test, inner,
                        ctx.scorers(), doc["refit"], block=doc["stacking"]["block"], error_score=ctx.error_score,
                        fold_params=ctx.fold_params, where=f"outer {outer}, chunk {chunk} of columns, ")
    observed = np.array([p == -1 for _, p in chunk_analyses], dtype=bool)
    block = doc["stacking"]["block"]
    arrays: dict[str, Any] = {"best_index": result.best, "n_failed": result.n_failed, "test_indices": test,
                              # predictions and inner scores of the unpermuted analyses only: nothing reads others'
                              "test_predictions": result.predictions[:, np.repeat(observed, block)]}
    arrays.update({f"test_{m}": v for m, v in result.test.items()})
    arrays.update({f"inner_test_{m}": v[observed] for m, v in result.inner.items()})
    arrays.update({f"inner_{k}": v for k, v in result.times.items() if k != "refit_time"})
    save_arrays(ctx.workdir / task_id.outputs[0],
                meta={"fingerprint": doc["fingerprint"], "task_fingerprint": task_id.fingerprint(doc["fingerprint"]),
                      "analyses": [members.start, members.stop], "refit_time": result.times["refit_time"]},
                **arrays)


def gather_stacked(ctx, read_output) -> tuple[list[tuple[dict, dict]], dict[str, np.ndarray] | None]:
    """Each analysis's part of the results, as the per-analysis gather lays it out, and the permutation
    scores per metric, (n_targets, n_permutations, n_outer); reads one task's output at a time.

    ``read_output(ctx, task_id)`` reads a task's (meta, arrays), checked to be this experiment's.
    """
    doc = ctx.doc
    n_outer, n_perm, metrics = doc["n_outer"], doc.get("n_permutations") or 0, list(doc["scoring"])
    targets = ctx.targets
    y_1d = doc.get("n_targets") is None and _y_is_1d(ctx)
    test = {m: np.full((len(targets), n_outer), np.nan) for m in metrics}
    perm = {m: np.full((len(targets), n_perm, n_outer), np.nan) for m in metrics} if n_perm else None
    per_fold: list[list[dict]] = [[{} for _ in range(n_outer)] for _ in targets]
    everything = analyses(doc)
    for c in range(doc["stacking"]["n_column_chunks"]):
        for o in range(n_outer):
            meta, arrays = read_output(ctx, TaskId("columns", outer=o, chunk=c))
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


def _y_is_1d(ctx) -> bool:
    from ..workdir.data import load_data

    _, y, _ = load_data(ctx.workdir, ctx.doc["data"])
    return y.ndim == 1


def _fold_of(doc: dict, meta: dict, arrays: dict, k: int, seen: int, y_1d: bool) -> dict:
    """One outer fold of one unpermuted analysis (the ``seen``-th of its chunk, ``k``-th analysis in it)."""
    block = doc["stacking"]["block"]
    predictions = arrays["test_predictions"][:, seen * block:(seen + 1) * block]
    fold = {"best_index": int(arrays["best_index"][k]), "n_failed": int(arrays["n_failed"][k]),
            "test_indices": arrays["test_indices"],
            "test_predictions": predictions[:, 0] if (block == 1 and (doc.get("per_target") or y_1d)) else predictions,
            "fit_time": meta["refit_time"], "score_time": 0.0}
    fold.update({key: arrays[key][seen] for key in arrays if key.startswith("inner_test_")})
    fold.update({key: arrays[key] for key in ("inner_fit_time", "inner_score_time") if key in arrays})
    return fold


def _part(doc: dict, test: dict, j: int, folds: list[dict], metrics: list[str]) -> tuple[dict, dict]:
    """Target ``j``'s part of results.json and results.npz, as stages._gather_target gives it."""
    scores = {m: test[m][j] for m in metrics}
    arrays: dict[str, Any] = {f"test_{m}": v for m, v in scores.items()}
    arrays["fit_time"] = [f["fit_time"] for f in folds]
    arrays["score_time"] = [f["score_time"] for f in folds]
    results: dict[str, Any] = {
        "test_scores": {m: [encode(float(s)) for s in v] for m, v in scores.items()},
        "summary": {m: {k: encode(float(f(v))) for k, f in
                        (("mean", np.mean), ("std", np.std), ("median", np.median))} for m, v in scores.items()},
    }
    if doc["search"] is not None:
        results["best_index"] = [f["best_index"] for f in folds]
        results["best_params"] = [doc["candidates"][f["best_index"]] for f in folds]
        results["n_failed_fits"] = [f["n_failed"] for f in folds]
        n_inner = max(doc["n_inner"])
        for key in folds[0]:
            if key.startswith("inner_"):
                table = np.full((doc["n_outer"], doc["n_candidates"], n_inner), np.nan)
                for o, fold in enumerate(folds):
                    table[o, :, :fold[key].shape[1]] = fold[key]
                arrays[key] = table
    for o, fold in enumerate(folds):
        arrays[f"test_indices_{o}"] = fold["test_indices"]
        arrays[f"test_predictions_{o}"] = fold["test_predictions"]
    return results, arrays
