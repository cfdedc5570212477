"""The task functions: map (fit and score grid points on an inner fold), refit
(select as GridSearchCV does, refit, test on the outer fold) and gather.

Each runs the same way from its command (``python -m mempamal task ...``)
and inside a back-end's worker process (:func:`run_task`).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..experiment.encoding import decode, encode
from ..workdir.files import WRITTEN_BY_WRITE, InputFileError, load_arrays, read_json, reading, save_arrays, write_json
from ..workdir.layout import EXPERIMENT, PERMUTATIONS, TaskId
from .stacked import gather_stacked, run_columns

# A file a task needs is missing, unreadable or from another experiment (the name tasks raise it by).
TaskInputError = InputFileError


def _check_belongs(ctx: "Context", path: Path, meta: dict, task_id: TaskId) -> None:
    """Refuse an input written by another experiment (or another task) than the one in experiment.json."""
    if meta.get("task_fingerprint") != task_id.fingerprint(ctx.doc["fingerprint"]):
        raise InputFileError(
            f"{path}: this output of task {task_id} belongs to another experiment "
            "(its fingerprint does not match experiment.json's); outputs cannot be copied between "
            "workdirs: run the workflow again (`mempamal run` recomputes that task)")


def _read_output(ctx: "Context", task_id: TaskId) -> tuple[dict, dict]:
    """The (meta, arrays) of the output of a task this one depends on, checked to be this experiment's."""
    path = ctx.workdir / task_id.outputs[0]
    with reading(path, f"it is the output of task {task_id}: did it fail? see {task_id.log}"):
        meta, arrays = load_arrays(path)
    _check_belongs(ctx, path, meta, task_id)
    return meta, arrays


class Context:
    """What every task of a workdir reads: the experiment, its data and folds."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        with reading(workdir / EXPERIMENT, WRITTEN_BY_WRITE):
            self.doc = read_json(workdir / EXPERIMENT)
        self.packages = self.doc.get("packages", [])
        from ..experiment.routing import apply_config

        apply_config(self.doc)  # before decoding: estimators' metadata requests need it

    def decode(self, encoded: Any) -> Any:
        return decode(encoded, self.packages)

    def estimator(self):
        return self.decode(self.doc["estimator"])

    def candidates(self, start: int = 0, stop: int | None = None) -> list[dict]:
        return [{k: self.decode(v) for k, v in params.items()}
                for params in self.doc["candidates"][start:stop]]

    def scorers(self) -> dict:
        from ..experiment.scoring import build_scorers

        return build_scorers(self.doc["scoring"], self.packages)

    @property
    def error_score(self):
        return self.decode(self.doc["error_score"])

    @property
    def targets(self) -> list[int | None]:
        """The targets analysed apart (``per_target``), or [None]: y as a whole."""
        return list(range(self.doc["n_targets"])) if self.doc.get("per_target") else [None]

    def data(self, target: int | None = None):
        """X, the y of ``target`` (a column of y when targets are analysed apart), groups."""
        from ..workdir.data import load_data

        X, y, groups = load_data(self.workdir, self.doc["data"])  # raises InputFileError naming the file
        return X, (y if target is None else y[:, target]), groups

    def folds(self, target: int | None = None):
        from ..experiment.folds import Folds, target_prefix

        return Folds(self.workdir, prefix=target_prefix(target))

    def permutations(self) -> np.ndarray:
        """(n_permutations, n_samples) indices: ``y[indices[p]]`` is permutation p."""
        path = self.workdir / PERMUTATIONS
        with reading(path, WRITTEN_BY_WRITE):
            return np.load(path, mmap_mode="r", allow_pickle=False)

    def fold_params(self, stage: str, train, test):
        """(fit keywords, {metric: score keywords}): the per-sample params of these rows, routed."""
        from ..experiment.routing import fold_params

        return fold_params(self.workdir, self.doc, stage, train, test)


def _fit_and_score(estimator, params, X_train, y_train, X_test, y_test, scorers, error_score, fit_params=None,
                   score_params=None):
    """Clone, set params, fit and score, as scikit-learn's _fit_and_score does.

    Returns (scores per metric, fit time, score time, error message or "").
    """
    from sklearn.base import clone

    estimator = clone(estimator)
    if params:
        estimator.set_params(**params)
    from ..experiment.scoring import failed_scores, score_fitted

    start = time.perf_counter()
    try:
        estimator.fit(X_train, y_train, **(fit_params or {}))
    except Exception:
        if error_score == "raise":
            raise
        return failed_scores(scorers, error_score, time.perf_counter() - start, traceback.format_exc())
    return score_fitted(estimator, X_test, y_test, scorers, error_score, time.perf_counter() - start,
                        score_params)


def _fit_and_score_all(ctx, estimator, candidates, start, X_train, y_train, X_test, y_test, scorers,
                       error_score, fit_params=None, score_params=None):
    """The results of _fit_and_score for each candidate, with a Pipeline's shared leading steps fitted once."""
    from .pipeline_cache import fit_and_score_shared, reuse_plan

    # Fit params may be routed to any step: prefix reuse (which fits steps itself) is off with them.
    plan = None if fit_params or score_params else reuse_plan(
        estimator, ctx.doc["candidates"][start:start + len(candidates)])
    if plan is not None:
        return fit_and_score_shared(estimator, candidates, plan, X_train, y_train, X_test, y_test, scorers,
                                    error_score)
    return (_fit_and_score(estimator, params, X_train, y_train, X_test, y_test, scorers, error_score,
                           fit_params, score_params) for params in candidates)


def _score_candidates(ctx, estimator, candidates, start, X, y, train, test, scorers, error_score, where):
    """Fit and score candidates ``start...`` on one inner split: scores per metric (lists), fit and
    score times, fit errors ("" for none), each failed fit warned about as GridSearchCV does."""
    from ..experiment.folds import subset

    X_train, y_train, X_test, y_test = subset(X, train), subset(y, train), subset(X, test), subset(y, test)
    fit_params, score_params = ctx.fold_params("inner", train, test)
    scores: dict[str, list] = {m: [] for m in scorers}
    fit_times, score_times, errors = [], [], []
    for s, fit_time, score_time, error in _fit_and_score_all(
            ctx, estimator, candidates, start, X_train, y_train, X_test, y_test, scorers, error_score,
            fit_params, score_params):
        for m in scorers:
            scores[m].append(s[m])
        fit_times.append(fit_time)
        score_times.append(score_time)
        if error:
            warnings.warn(f"a fit failed ({where}, candidate {start + len(fit_times) - 1}); its score is "
                          f"error_score={error_score}:\n{error}")
        errors.append(error)
    return scores, fit_times, score_times, errors


def run_map(workdir: Path, outer: int, inner: int, chunk: int, target: int | None = None) -> None:
    """Fit and score the grid points of one chunk on one inner fold."""
    ctx = Context(workdir)
    size = ctx.doc["grid_chunk_size"]
    start = chunk * size
    X, y, _ = ctx.data(target)
    train, test = ctx.folds(target).inner(outer, inner)
    scores, fit_times, score_times, errors = _score_candidates(
        ctx, ctx.estimator(), ctx.candidates(start, start + size), start, X, y, train, test, ctx.scorers(),
        ctx.error_score, f"outer {outer}, inner {inner}")
    task_id = TaskId("map", target=target, outer=outer, inner=inner, chunk=chunk)
    save_arrays(
        workdir / task_id.outputs[0],
        meta={"fingerprint": ctx.doc["fingerprint"], "start": start, "errors": errors,
              "task_fingerprint": task_id.fingerprint(ctx.doc["fingerprint"])},
        fit_time=fit_times, score_time=score_times,
        **{f"test_{m}": np.asarray(v, dtype=np.float64) for m, v in scores.items()},
    )


def _inner_table(ctx: Context, outer: int, target: int | None
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[str]]:
    """Inner scores of fold ``outer`` as (n_candidates, n_inner) arrays, plus times and fit errors."""
    doc = ctx.doc
    n_inner, n_chunks = doc["n_inner"][outer], doc["n_chunks"]
    tables: dict[str, list] = {}
    errors: list[str] = []
    for i in range(n_inner):
        columns: dict[str, list] = {}
        for c in range(n_chunks):
            meta, arrays = _read_output(ctx, TaskId("map", target=target, outer=outer, inner=i, chunk=c))
            errors.extend(err for err in meta["errors"] if err)
            for key, value in arrays.items():
                columns.setdefault(key, []).append(value)
        for key, parts in columns.items():
            tables.setdefault(key, []).append(np.concatenate(parts))
    stacked = {key: np.stack(cols, axis=1) for key, cols in tables.items()}
    scores = {k[len("test_"):]: v for k, v in stacked.items() if k.startswith("test_")}
    times = {k: v for k, v in stacked.items() if not k.startswith("test_")}
    return scores, times, errors


def _select(mean_scores: np.ndarray) -> int:
    """The index GridSearchCV picks: best mean, first on ties, NaN never wins unless all are NaN."""
    if np.isnan(mean_scores).all():
        return 0
    return int(np.argmax(np.where(np.isnan(mean_scores), -np.inf, mean_scores)))


def _best(refit_scores: np.ndarray, errors: list[str], where: str) -> int:
    """The candidate GridSearchCV refits, from the (n_candidates, n_inner) scores of the refit metric."""
    if errors and len(errors) == refit_scores.size:
        raise ValueError(f"All the {refit_scores.size} fits failed on {where}; the first error:\n{errors[0]}")
    return _select(refit_scores.mean(axis=1))


def _refit_and_test(ctx: Context, estimator, params: dict, X, y, train, test, scorers: dict):
    """Refit a clone with ``params`` on ``train``, score it on ``test``, each with the per-sample params
    of its rows: (model, scores, fit time, score time)."""
    from sklearn.base import clone

    from ..experiment.folds import subset

    X_test, y_test = subset(X, test), subset(y, test)
    fit_params, score_params = ctx.fold_params("outer", train, test)
    model = clone(estimator)
    if params:
        model.set_params(**params)
    start = time.perf_counter()
    model.fit(subset(X, train), subset(y, train), **fit_params)
    fit_time = time.perf_counter() - start
    start = time.perf_counter()
    scores = {m: float(s(model, X_test, y_test, **score_params.get(m, {}))) for m, s in scorers.items()}
    return model, scores, fit_time, time.perf_counter() - start


def run_refit(workdir: Path, outer: int, target: int | None = None) -> None:
    """Select the best grid point of fold ``outer``, refit it on the outer training set, test it."""
    from ..experiment.folds import subset

    ctx = Context(workdir)
    doc = ctx.doc
    task_id = TaskId("refit", target=target, outer=outer)
    meta: dict[str, Any] = {"fingerprint": doc["fingerprint"], "task_fingerprint": task_id.fingerprint(doc["fingerprint"])}
    arrays: dict[str, Any] = {}
    params: dict = {}
    if doc["search"] is not None:
        scores, times, errors = _inner_table(ctx, outer, target)
        best = _best(scores[doc["refit"]], errors, f"outer fold {outer}")
        params = ctx.candidates(best, best + 1)[0]
        meta.update(best_index=best, best_params=doc["candidates"][best], n_failed_fits=len(errors))
        arrays.update({f"inner_test_{m}": v for m, v in scores.items()})
        arrays.update({f"inner_{k}": v for k, v in times.items()})

    X, y, _ = ctx.data(target)
    train, test = ctx.folds(target).outer(outer)
    model, meta["test_scores"], meta["fit_time"], meta["score_time"] = _refit_and_test(
        ctx, ctx.estimator(), params, X, y, train, test, ctx.scorers())
    if hasattr(model, "predict"):
        arrays["test_predictions"] = _storable(model.predict(subset(X, test)))
    arrays["test_indices"] = test
    save_arrays(workdir / task_id.outputs[0], meta=_encode_floats(meta), **arrays)


def run_permute(workdir: Path, perm: int, outer: int, target: int | None = None) -> None:
    """Outer fold ``outer`` of the whole analysis (inner search, selection, refit, test) of each
    permutation of chunk ``perm``, on the folds of the permuted y, as permutation_test_score does."""
    from ..experiment.folds import Folds, permutation_prefix, subset
    from ..workdir.layout import permuted_folds
    from ..experiment.permutations import chunks

    ctx = Context(workdir)
    doc = ctx.doc
    task_id = TaskId("permute", target=target, perm=perm, outer=outer)
    X, y, _ = ctx.data(target)
    indices = ctx.permutations()
    observed = ctx.folds(target)
    # No file when the splitters ignore y (experiment.json's permuted_folds): every permutation has y's folds.
    permuted = Folds(workdir, permuted_folds(target, perm)) if doc.get("permuted_folds", True) else None
    estimator, scorers, error_score = ctx.estimator(), ctx.scorers(), ctx.error_score
    candidates = ctx.candidates() if doc["search"] is not None else None
    members = list(chunks(doc["n_permutations"], doc["permutation_chunk_size"]))[perm]
    scores: dict[str, list] = {m: [] for m in scorers}
    for p in members:
        y_p = subset(y, indices[p])
        folds = permuted.with_prefix(permutation_prefix(p)) if permuted is not None else None
        if folds is None or not folds.has_split():  # the splitter split the permuted y as y: stored once, in folds.npz
            folds = observed
        params: dict = {}
        if candidates is not None:
            refit_scores, errors = [], []
            for i in range(doc["n_inner"][outer]):
                train, test = folds.inner(outer, i)
                inner, _, _, inner_errors = _score_candidates(
                    ctx, estimator, candidates, 0, X, y_p, train, test, scorers, error_score,
                    f"permutation {p}, outer {outer}, inner {i}")
                refit_scores.append(inner[doc["refit"]])
                errors.extend(e for e in inner_errors if e)
            best = _best(np.asarray(refit_scores, dtype=np.float64).T, errors,
                         f"outer fold {outer} of permutation {p}")
            params = candidates[best]
        train, test = folds.outer(outer)
        _, test_scores, _, _ = _refit_and_test(ctx, estimator, params, X, y_p, train, test, scorers)
        for m in scorers:
            scores[m].append(test_scores[m])
    save_arrays(workdir / task_id.outputs[0],
                meta={"fingerprint": doc["fingerprint"], "task_fingerprint": task_id.fingerprint(doc["fingerprint"]),
                      "permutations": [members.start, members.stop]},
                **{f"test_{m}": np.asarray(v, dtype=np.float64) for m, v in scores.items()})


def _storable(predictions) -> np.ndarray:
    """Predictions as an array .npz stores without pickle: labels of an object array (strings, from
    string or categorical y) become a str array, with the same values."""
    predictions = np.asarray(predictions)
    if predictions.dtype == object:
        from ..workdir.data import as_array

        predictions = as_array(predictions, "predictions")
    return predictions


def _encode_floats(meta: dict) -> dict:
    """Scores may be NaN, which JSON cannot say: encode them."""
    meta["test_scores"] = {m: encode(v) for m, v in meta["test_scores"].items()}
    return meta


def _gather_target(ctx: Context, target: int | None) -> tuple[dict, dict[str, Any]]:
    """One analysis (y, or one target of it): its part of results.json and of results.npz."""
    doc = ctx.doc
    folds = [_read_output(ctx, TaskId("refit", target=target, outer=o)) for o in range(doc["n_outer"])]
    metrics = list(doc["scoring"])
    test = {m: np.array([decode(meta["test_scores"][m]) for meta, _ in folds], dtype=float) for m in metrics}
    arrays: dict[str, Any] = {f"test_{m}": v for m, v in test.items()}
    arrays["fit_time"] = [meta["fit_time"] for meta, _ in folds]
    arrays["score_time"] = [meta["score_time"] for meta, _ in folds]
    results: dict[str, Any] = {
        "test_scores": {m: [encode(float(s)) for s in v] for m, v in test.items()},
        "summary": {m: {k: encode(float(f(v))) for k, f in
                        (("mean", np.mean), ("std", np.std), ("median", np.median))} for m, v in test.items()},
    }
    if doc["search"] is not None:
        results["best_index"] = [meta["best_index"] for meta, _ in folds]
        results["best_params"] = [meta["best_params"] for meta, _ in folds]
        results["n_failed_fits"] = [meta["n_failed_fits"] for meta, _ in folds]
        n_inner = max(doc["n_inner"])
        for key in folds[0][1]:
            if key.startswith("inner_"):
                table = np.full((doc["n_outer"], doc["n_candidates"], n_inner), np.nan)
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
    from ..experiment.permutations import pvalues, pvalues_max_t

    doc = ctx.doc
    n, n_outer = doc["n_permutations"], doc["n_outer"]
    targets = ctx.targets
    if folds is None:
        folds = {m: np.full((len(targets), n, n_outer), np.nan) for m in test_scores}
        for j, t in enumerate(targets):
            for k in range(doc["n_permutation_chunks"]):
                for o in range(n_outer):
                    meta, arrays = _read_output(ctx, TaskId("permute", target=t, perm=k, outer=o))
                    start, stop = meta["permutations"]
                    for m in folds:
                        folds[m][j, start:stop, o] = arrays[f"test_{m}"]
    summary: dict[str, Any] = {"n_permutations": n, "random_state": doc["permutation_random_state"],
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


def run_gather(workdir: Path) -> None:
    """Gather every analysis into results.json and results.npz.

    With targets analysed apart, each target's part goes under ``targets`` in results.json
    and under the prefix ``t<j>_`` in results.npz.
    """
    ctx = Context(workdir)
    doc = ctx.doc
    task_id = TaskId("gather")
    fingerprints = {"fingerprint": doc["fingerprint"], "task_fingerprint": task_id.fingerprint(doc["fingerprint"])}
    results: dict[str, Any] = {**fingerprints, "metrics": list(doc["scoring"]), "refit": doc["refit"],
                               "n_outer": doc["n_outer"], "search": doc["search"],
                               "per_target": bool(doc.get("per_target")), "n_targets": doc.get("n_targets")}
    arrays: dict[str, Any] = {}
    permutation_folds = None
    if (doc.get("stacking") or {}).get("stacked"):
        parts, permutation_folds = gather_stacked(ctx, _read_output)
    else:
        parts = [_gather_target(ctx, t) for t in ctx.targets]
    if doc.get("per_target"):
        results["targets"] = [part for part, _ in parts]
        for t, (_, part_arrays) in enumerate(parts):
            arrays.update({f"t{t}_{k}": v for k, v in part_arrays.items()})
    else:
        results.update(parts[0][0])
        arrays.update(parts[0][1])
    if doc.get("n_permutations"):
        test_scores = {m: np.stack([part_arrays[f"test_{m}"] for _, part_arrays in parts]) for m in results["metrics"]}
        results["permutation"], permutation_arrays = _gather_permutations(ctx, test_scores, permutation_folds)
        arrays.update(permutation_arrays)
    results_json, results_npz = task_id.outputs
    save_arrays(workdir / results_npz, meta=fingerprints, **arrays)
    # results.json last: it is the mark of a finished experiment.
    write_json(workdir / results_json, results)


# -- the command line of a task -------------------------------------------------------

def task_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The parser of ``mempamal task ...`` (the commands workflow.json calls)."""
    parser = parser or argparse.ArgumentParser(prog="mempamal task")
    parser.add_argument("--if-incomplete", action="store_true",
                        help="do nothing when the task's outputs are already complete (this experiment's, "
                             "this task's): what a scheduler resubmitting a whole array runs")
    parser.add_argument("--log", metavar="FILE", default=None,
                        help="send the task's output and errors to FILE, relative to the workdir (default: "
                             "this command's stdout and stderr)")
    stages = parser.add_subparsers(dest="stage", required=True, metavar="{map,refit,permute,columns,gather,batch}")
    workdir = "the workdir (workflow.json runs every command from it, as '.')"
    target = "the target (column of y) when each target is analysed apart (per_target)"
    p = stages.add_parser("map", help="fit and score a chunk of the grid on one inner fold")
    p.add_argument("workdir", help=workdir)
    p.add_argument("--target", type=int, help=target)
    p.add_argument("--outer", type=int, required=True, help="the outer fold (0-based)")
    p.add_argument("--inner", type=int, required=True, help="the inner fold of that outer training set")
    p.add_argument("--chunk", type=int, required=True, help="the chunk of the grid (grid_chunk_size points)")
    p = stages.add_parser("refit", help="select, refit and test on one outer fold")
    p.add_argument("workdir", help=workdir)
    p.add_argument("--target", type=int, help=target)
    p.add_argument("--outer", type=int, required=True, help="the outer fold (0-based)")
    p = stages.add_parser("permute", help="the whole analysis of a chunk of permutations of y, on one outer fold")
    p.add_argument("workdir", help=workdir)
    p.add_argument("--target", type=int, help=target)
    p.add_argument("--perm", type=int, required=True, help="the chunk of permutations (permutation_chunk_size)")
    p.add_argument("--outer", type=int, required=True, help="the outer fold (0-based)")
    p = stages.add_parser("columns", help="the whole analyses of a chunk of columns fitted together (stacked), "
                                          "on one outer fold")
    p.add_argument("workdir", help=workdir)
    p.add_argument("--outer", type=int, required=True, help="the outer fold (0-based)")
    p.add_argument("--chunk", type=int, required=True, help="the chunk of columns (experiment.json's stacking)")
    p = stages.add_parser("gather", help="gather the outer folds into results.json and results.npz")
    p.add_argument("workdir", help=workdir)
    p = stages.add_parser(
        "batch", help="run the tasks a batch file lists, in turn, in this process",
        description="Run each task FILE lists in turn, in this one process (one interpreter start-up for "
                    "all), each with its own outputs and log (logs/<task>.log), as its own command would; "
                    "skip those complete (as --if-incomplete), go on after a failure, and exit with status 1 "
                    "if any failed. Prints '<task>: running' then '<task>: done' (or '<task>: complete, skipped'); a "
                    "failure goes to stderr as '<task>: failed: ...'.")
    p.add_argument("workdir", help=workdir)
    p.add_argument("--file", required=True, help="the batch file, relative to the workdir (batches/...json)")
    return parser


def task_id_of(args: argparse.Namespace) -> TaskId:
    """The identity of the task that parsed command-line arguments name."""
    from ..workdir.layout import INDICES

    return TaskId(args.stage, **{f: getattr(args, f) for f, _ in INDICES if getattr(args, f, None) is not None})


def run_batch(workdir: str | os.PathLike, task_ids: list[TaskId]) -> list[TaskId]:
    """Run tasks in turn in this process, each as its own command with ``--if-incomplete --log``.

    A complete task is skipped; a failing task's traceback goes to its log and the
    next task runs. One line per task on stdout (``<task>: running``, then ``done``,
    or ``complete, skipped``) and one on stderr per failure, which tells a scheduler's
    back-end which tasks the batch reached.

    Returns
    -------
    failed : list of TaskId
    """
    from ..workdir.workflow import is_complete

    workdir = Path(workdir)
    failed = []
    for task_id in task_ids:
        if is_complete(workdir, task_id):
            print(f"{task_id}: complete, skipped", flush=True)
            continue
        print(f"{task_id}: running", flush=True)
        try:
            run_task(workdir, task_id, task_id.log)
        except Exception as e:  # the task's failure, in its log; an interruption stops the batch
            failed.append(task_id)
            message = str(e).strip().splitlines()
            print(f"{task_id}: failed: {type(e).__name__}: {message[-1] if message else ''} (see {task_id.log})",
                  file=sys.stderr, flush=True)
        else:
            print(f"{task_id}: done", flush=True)
    return failed


def execute(task_id: TaskId, workdir: Path) -> None:
    """Run a task in this process."""
    try:
        if task_id.stage == "map":
            run_map(workdir, task_id.outer, task_id.inner, task_id.chunk, task_id.target)
        elif task_id.stage == "refit":
            run_refit(workdir, task_id.outer, task_id.target)
        elif task_id.stage == "permute":
            run_permute(workdir, task_id.perm, task_id.outer, task_id.target)
        elif task_id.stage == "columns":
            run_columns(Context(workdir), task_id.outer, task_id.chunk)
        else:
            run_gather(workdir)
    except InputFileError as e:
        raise InputFileError(f"task {task_id} needs {e}") from e


def run_task(workdir: str | os.PathLike, task_id: TaskId, log: str | os.PathLike | None = None) -> None:
    """Run a task in this process, as its command would, its output and errors going to ``log``.

    While it runs, its running record names this host and process, so that ``status``
    can tell a task still running from one whose process died without a word.
    """
    workdir = Path(workdir)
    with _running_record(workdir, task_id):
        if log is None:
            execute(task_id, workdir)
            return
        log_path = workdir / log
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as f, _redirected_output(f):
            try:
                execute(task_id, workdir)
            except BaseException:
                traceback.print_exc()
                raise


@contextlib.contextmanager
def _running_record(workdir: Path, task_id: TaskId):
    """Write the task's running record (host, pid, start) for its duration; a killed process leaves it.

    The record names its process as the run lock names its holder (:class:`mempamal.lock.Holder`),
    whose start tells this process from a later one given the same pid.
    """
    from ..workdir.lock import Holder

    path = workdir / task_id.running_record
    try:
        write_json(path, {"task": task_id.name, **Holder.me().to_json()})
    except OSError:  # a read-only or vanished workdir: the task itself will say what is wrong
        pass
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def _redirected_output(f):
    """Send this process's stdout and stderr (Python's and C's) to ``f`` for the duration."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(f.fileno(), 1)
    os.dup2(f.fileno(), 2)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
