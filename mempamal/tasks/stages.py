"""The stages of the analysis, one task each: map, refit and permute (the gather is in
:mod:`mempamal.tasks.gather`).

- map: fit and score the grid points of one chunk on one inner fold;
- refit: select as GridSearchCV does, refit on the outer training set, test on the outer fold;
- permute: the whole analysis of a chunk of permutations of y on one outer fold, as
  ``permutation_test_score`` does;
- gather: every outer fold (and permutation) into results.json and results.npz.

Each takes the task's :class:`~mempamal.tasks.context.Context` and its
:class:`~mempamal.workdir.layout.TaskId`, and writes the task's output.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..experiment.folds import subset
from ..workdir.layout import TaskId, permutation_prefix
from .context import Context
from .fit import best, encode_scores, refit_and_test, score_candidates, storable


def run_map(ctx: Context, task_id: TaskId) -> None:
    """Fit and score the grid points of chunk ``task_id.chunk`` on one inner fold."""
    target, outer, inner = task_id.target, task_id.outer, task_id.inner
    indices = ctx.doc.grid_chunk(task_id.chunk)
    X, y, _ = ctx.data(target)
    train, test = ctx.folds(target).inner(outer, inner)
    scores, fit_times, score_times, errors = score_candidates(
        ctx, ctx.estimator(), ctx.candidates(indices), indices.start, X, y, train, test, ctx.scorers(),
        ctx.error_score, f"outer {outer}, inner {inner}")
    ctx.workdir.save_output(
        task_id, meta={**ctx.fingerprints(task_id), "start": indices.start, "errors": errors},
        fit_time=fit_times, score_time=score_times,
        **{f"test_{m}": np.asarray(v, dtype=np.float64) for m, v in scores.items()},
    )


def _inner_table(ctx: Context, outer: int, target: int | None
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[str]]:
    """Inner scores of fold ``outer`` as (n_candidates, n_inner) arrays, plus times and fit errors."""
    tables: dict[str, list] = {}
    errors: list[str] = []
    for i in range(ctx.doc.n_inner[outer]):
        columns: dict[str, list] = {}
        for c in range(ctx.doc.n_chunks):
            meta, arrays = ctx.read_output(TaskId("map", target=target, outer=outer, inner=i, chunk=c))
            errors.extend(err for err in meta["errors"] if err)
            for key, value in arrays.items():
                columns.setdefault(key, []).append(value)
        for key, parts in columns.items():
            tables.setdefault(key, []).append(np.concatenate(parts))
    stacked = {key: np.stack(cols, axis=1) for key, cols in tables.items()}
    scores = {k[len("test_"):]: v for k, v in stacked.items() if k.startswith("test_")}
    times = {k: v for k, v in stacked.items() if not k.startswith("test_")}
    return scores, times, errors


def run_refit(ctx: Context, task_id: TaskId) -> None:
    """Select the best grid point of fold ``task_id.outer``, refit it on the outer training set, test it."""
    doc, target, outer = ctx.doc, task_id.target, task_id.outer
    meta: dict[str, Any] = ctx.fingerprints(task_id)
    arrays: dict[str, Any] = {}
    params: dict = {}
    if doc.with_search:
        scores, times, errors = _inner_table(ctx, outer, target)
        chosen = best(scores[doc.refit], errors, f"outer fold {outer}")
        params = ctx.candidates(range(chosen, chosen + 1))[0]
        meta.update(best_index=chosen, best_params=doc.candidates[chosen], n_failed_fits=len(errors))
        arrays.update({f"inner_test_{m}": v for m, v in scores.items()})
        arrays.update({f"inner_{k}": v for k, v in times.items()})

    X, y, _ = ctx.data(target)
    train, test = ctx.folds(target).outer(outer)
    model, test_scores, fit_time, score_time = refit_and_test(
        ctx, ctx.estimator(), params, X, y, train, test, ctx.scorers())
    meta.update(test_scores=encode_scores(test_scores), fit_time=fit_time, score_time=score_time)
    if hasattr(model, "predict"):
        arrays["test_predictions"] = storable(model.predict(subset(X, test)))
    arrays["test_indices"] = test
    ctx.workdir.save_output(task_id, meta=meta, **arrays)


def run_permute(ctx: Context, task_id: TaskId) -> None:
    """Outer fold ``task_id.outer`` of the whole analysis (inner search, selection, refit, test) of each
    permutation of chunk ``task_id.perm``, on the folds of the permuted y, as permutation_test_score does."""
    doc, target, outer = ctx.doc, task_id.target, task_id.outer
    X, y, _ = ctx.data(target)
    indices = ctx.permutations()
    observed = ctx.folds(target)
    # No file when the splitters ignore y (experiment.json's permuted_folds): every permutation has y's folds.
    permuted = ctx.workdir.open_permuted_folds(target, task_id.perm) if doc.permuted_folds else None
    estimator, scorers, error_score = ctx.estimator(), ctx.scorers(), ctx.error_score
    candidates = ctx.candidates() if doc.with_search else None
    members = doc.permutation_chunks[task_id.perm]
    scores: dict[str, list] = {m: [] for m in scorers}
    for p in members:
        y_p = subset(y, indices[p])
        folds = permuted.with_prefix(permutation_prefix(p)) if permuted is not None else None
        if folds is None or not folds.has_split():  # the splitter split the permuted y as y: stored once, in folds.npz
            folds = observed
        params: dict = {}
        if candidates is not None:
            refit_scores, errors = [], []
            for i in range(doc.n_inner[outer]):
                train, test = folds.inner(outer, i)
                inner, _, _, inner_errors = score_candidates(
                    ctx, estimator, candidates, 0, X, y_p, train, test, scorers, error_score,
                    f"permutation {p}, outer {outer}, inner {i}")
                refit_scores.append(inner[doc.refit])
                errors.extend(e for e in inner_errors if e)
            chosen = best(np.asarray(refit_scores, dtype=np.float64).T, errors,
                          f"outer fold {outer} of permutation {p}")
            params = candidates[chosen]
        train, test = folds.outer(outer)
        _, test_scores, _, _ = refit_and_test(ctx, estimator, params, X, y_p, train, test, scorers)
        for m in scorers:
            scores[m].append(test_scores[m])
    ctx.workdir.save_output(
        task_id, meta={**ctx.fingerprints(task_id), "permutations": [members.start, members.stop]},
        **{f"test_{m}": np.asarray(v, dtype=np.float64) for m, v in scores.items()})
