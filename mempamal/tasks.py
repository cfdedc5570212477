"""The task functions: map (fit and score grid points on an inner fold), refit
(select as GridSearchCV does, refit, test on the outer fold) and gather.

Each runs the same way from its command (``python -m mempamal task ...``)
and inside a back-end's worker process (:func:`run_task`).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .encoding import decode, encode
from .files import WRITTEN_BY_WRITE, InputFileError, load_arrays, read_json, reading, save_arrays, write_json
from .workflow import RESULTS_JSON, RESULTS_NPZ, map_name, map_output, refit_output

# A file a task needs is missing, unreadable or from another experiment (the name tasks raise it by).
TaskInputError = InputFileError


def task_name(stage: str, outer: int | None = None, inner: int | None = None, chunk: int | None = None) -> str:
    """The name workflow.json gives the task of these arguments."""
    if stage == "map":
        return map_name(outer, inner, chunk)
    return f"refit-o{outer}" if stage == "refit" else stage


def task_fingerprint(experiment_fingerprint: str, stage: str, **numbers: int) -> str:
    """What a task's outputs record: the experiment (doc, data, folds) and the task's own arguments."""
    identity = json.dumps({"experiment": experiment_fingerprint, "stage": stage, **numbers}, sort_keys=True)
    return hashlib.sha256(identity.encode()).hexdigest()


def _identity(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k) for k in ("outer", "inner", "chunk") if hasattr(args, k)}


def expected_fingerprint(experiment_fingerprint: str, task_args: list[str]) -> str:
    """The fingerprint the outputs of the task of ``task_args`` (argv after "task") must record."""
    identity = _quick_identity(task_args)
    if identity is None:  # not in the form workflow.json writes: let argparse read (or refuse) it
        args = _cached_task_parser().parse_args(task_args)
        identity = {"stage": args.stage, **_identity(args)}
    return task_fingerprint(experiment_fingerprint, **identity)


def _quick_identity(task_args: list[str]) -> dict | None:
    """``["map", ".", "--outer", "0", ...]`` as {"stage": "map", "outer": 0, ...}, or None if it is
    not that simple form; resume reads every task's arguments, and argparse is slow at it."""
    if len(task_args) < 2 or task_args[0] not in ("map", "refit", "gather") or len(task_args) % 2:
        return None
    options = task_args[2:]
    identity: dict = {"stage": task_args[0]}
    expected = {"map": {"outer", "inner", "chunk"}, "refit": {"outer"}, "gather": set()}[task_args[0]]
    for flag, value in zip(options[::2], options[1::2]):
        if not flag.startswith("--") or not value.isdigit():
            return None
        identity[flag[2:]] = int(value)
    return identity if set(identity) - {"stage"} == expected and len(identity) - 1 == len(options) // 2 else None


def _check_belongs(ctx: "Context", path: Path, meta: dict, stage: str, **numbers: int) -> None:
    """Refuse an input written by another experiment (or another task) than the one in experiment.json."""
    if meta.get("task_fingerprint") != task_fingerprint(ctx.doc["fingerprint"], stage, **numbers):
        raise InputFileError(
            f"{path}: this output of task {task_name(stage, **numbers)} belongs to another experiment "
            "(its fingerprint does not match experiment.json's); outputs cannot be copied between "
            "workdirs: run the workflow again (`mempamal run` recomputes that task)")


class Context:
    """What every task of a workdir reads: the experiment, its data and folds."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        with reading(workdir / "experiment.json", WRITTEN_BY_WRITE):
            self.doc = read_json(workdir / "experiment.json")
        self.packages = self.doc.get("packages", [])
        from .routing import apply_config

        apply_config(self.doc)  # before decoding: estimators' metadata requests need it

    def decode(self, encoded: Any) -> Any:
        return decode(encoded, self.packages)

    def estimator(self):
        return self.decode(self.doc["estimator"])

    def candidates(self, start: int = 0, stop: int | None = None) -> list[dict]:
        return [{k: self.decode(v) for k, v in params.items()}
                for params in self.doc["candidates"][start:stop]]

    def scorers(self) -> dict:
        from .scoring import build_scorers

        return build_scorers(self.doc["scoring"], self.packages)

    @property
    def error_score(self):
        return self.decode(self.doc["error_score"])

    def data(self):
        from .data import load_data

        return load_data(self.workdir, self.doc["data"])  # raises InputFileError naming the file

    def folds(self):
        from .folds import Folds

        return Folds(self.workdir)

    def fold_params(self, stage: str, train, test):
        """(fit keywords, {metric: score keywords}): the per-sample params of these rows, routed."""
        from .routing import fold_params

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
    from .scoring import failed_scores, score_fitted

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


def run_map(workdir: Path, outer: int, inner: int, chunk: int) -> None:
    """Fit and score the grid points of one chunk on one inner fold."""
    from .folds import subset

    ctx = Context(workdir)
    size = ctx.doc["grid_chunk_size"]
    start = chunk * size
    candidates = ctx.candidates(start, start + size)
    estimator, scorers, error_score = ctx.estimator(), ctx.scorers(), ctx.error_score
    X, y, _ = ctx.data()
    train, test = ctx.folds().inner(outer, inner)
    X_train, y_train, X_test, y_test = subset(X, train), subset(y, train), subset(X, test), subset(y, test)
    fit_params, score_params = ctx.fold_params("inner", train, test)

    scores = {m: [] for m in scorers}
    fit_times, score_times, errors = [], [], []
    for s, fit_time, score_time, error in _fit_and_score_all(
            ctx, estimator, candidates, start, X_train, y_train, X_test, y_test, scorers, error_score,
            fit_params, score_params):
        for m in scorers:
            scores[m].append(s[m])
        fit_times.append(fit_time)
        score_times.append(score_time)
        if error:
            warnings.warn(f"a fit failed (outer {outer}, inner {inner}, candidate "
                          f"{start + len(fit_times) - 1}); its score is error_score={error_score}:\n{error}")
        errors.append(error)
    save_arrays(
        workdir / map_output(outer, inner, chunk),
        meta={"fingerprint": ctx.doc["fingerprint"], "start": start, "errors": errors,
              "task_fingerprint": task_fingerprint(ctx.doc["fingerprint"], "map", outer=outer, inner=inner,
                                                   chunk=chunk)},
        fit_time=fit_times, score_time=score_times,
        **{f"test_{m}": np.asarray(v, dtype=np.float64) for m, v in scores.items()},
    )


def _inner_table(ctx: Context, outer: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[str]]:
    """Inner scores of fold ``outer`` as (n_candidates, n_inner) arrays, plus times and fit errors."""
    doc = ctx.doc
    n_inner, n_chunks = doc["n_inner"][outer], doc["n_chunks"]
    tables: dict[str, list] = {}
    errors: list[str] = []
    for i in range(n_inner):
        columns: dict[str, list] = {}
        for c in range(n_chunks):
            path = ctx.workdir / map_output(outer, i, c)
            with reading(path, f"it is the output of task {map_name(outer, i, c)}: did it fail? "
                               f"see logs/{map_name(outer, i, c)}.log"):
                meta, arrays = load_arrays(path)
            _check_belongs(ctx, path, meta, "map", outer=outer, inner=i, chunk=c)
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


def run_refit(workdir: Path, outer: int) -> None:
    """Select the best grid point of fold ``outer``, refit it on the outer training set, test it."""
    from sklearn.base import clone

    from .folds import subset

    ctx = Context(workdir)
    doc = ctx.doc
    estimator = ctx.estimator()
    meta: dict[str, Any] = {"fingerprint": doc["fingerprint"],
                            "task_fingerprint": task_fingerprint(doc["fingerprint"], "refit", outer=outer)}
    arrays: dict[str, Any] = {}
    params: dict = {}
    if doc["search"] is not None:
        scores, times, errors = _inner_table(ctx, outer)
        n_fits = scores[doc["refit"]].size
        if errors and len(errors) == n_fits:
            raise ValueError(f"All the {n_fits} fits failed on outer fold {outer}; the first error:\n{errors[0]}")
        best = _select(scores[doc["refit"]].mean(axis=1))
        params = ctx.candidates(best, best + 1)[0]
        meta.update(best_index=best, best_params=doc["candidates"][best], n_failed_fits=len(errors))
        arrays.update({f"inner_test_{m}": v for m, v in scores.items()})
        arrays.update({f"inner_{k}": v for k, v in times.items()})

    X, y, _ = ctx.data()
    train, test = ctx.folds().outer(outer)
    X_test, y_test = subset(X, test), subset(y, test)
    fit_params, score_params = ctx.fold_params("outer", train, test)
    model = clone(estimator)
    if params:
        model.set_params(**params)
    start = time.perf_counter()
    model.fit(subset(X, train), subset(y, train), **fit_params)
    meta["fit_time"] = time.perf_counter() - start
    start = time.perf_counter()
    meta["test_scores"] = {m: float(s(model, X_test, y_test, **score_params.get(m, {})))
                           for m, s in ctx.scorers().items()}
    meta["score_time"] = time.perf_counter() - start
    if hasattr(model, "predict"):
        arrays["test_predictions"] = _storable(model.predict(X_test))
    arrays["test_indices"] = test
    save_arrays(workdir / refit_output(outer), meta=_encode_floats(meta), **arrays)


def _storable(predictions) -> np.ndarray:
    """Predictions as an array .npz stores without pickle: labels of an object array (strings, from
    string or categorical y) become a str array, with the same values."""
    predictions = np.asarray(predictions)
    if predictions.dtype == object:
        from .data import as_array

        predictions = as_array(predictions, "predictions")
    return predictions


def _encode_floats(meta: dict) -> dict:
    """Scores may be NaN, which JSON cannot say: encode them."""
    meta["test_scores"] = {m: encode(v) for m, v in meta["test_scores"].items()}
    return meta


def run_gather(workdir: Path) -> None:
    """Gather every outer fold into results.json and results.npz."""
    ctx = Context(workdir)
    doc = ctx.doc
    folds = []
    for o in range(doc["n_outer"]):
        path = workdir / refit_output(o)
        with reading(path, f"it is the output of task refit-o{o}: did it fail? see logs/refit-o{o}.log"):
            folds.append(load_arrays(path))
        _check_belongs(ctx, path, folds[-1][0], "refit", outer=o)
    metrics = list(doc["scoring"])
    test = {m: np.array([decode(meta["test_scores"][m]) for meta, _ in folds], dtype=float) for m in metrics}
    arrays: dict[str, Any] = {f"test_{m}": v for m, v in test.items()}
    arrays["fit_time"] = [meta["fit_time"] for meta, _ in folds]
    arrays["score_time"] = [meta["score_time"] for meta, _ in folds]
    fingerprints = {"fingerprint": doc["fingerprint"],
                    "task_fingerprint": task_fingerprint(doc["fingerprint"], "gather")}
    results: dict[str, Any] = {
        **fingerprints,
        "metrics": metrics,
        "refit": doc["refit"],
        "n_outer": doc["n_outer"],
        "test_scores": {m: [encode(float(s)) for s in v] for m, v in test.items()},
        "summary": {m: {k: encode(float(f(v))) for k, f in
                        (("mean", np.mean), ("std", np.std), ("median", np.median))} for m, v in test.items()},
        "search": doc["search"],
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
    save_arrays(workdir / RESULTS_NPZ, meta=fingerprints, **arrays)
    # results.json last: it is the mark of a finished experiment.
    write_json(workdir / RESULTS_JSON, results)


# -- the command line of a task -------------------------------------------------------

def task_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The parser of ``mempamal task ...`` (the commands workflow.json calls)."""
    parser = parser or argparse.ArgumentParser(prog="mempamal task")
    stages = parser.add_subparsers(dest="stage", required=True, metavar="{map,refit,gather}")
    workdir = "the workdir (workflow.json runs every command from it, as '.')"
    p = stages.add_parser("map", help="fit and score a chunk of the grid on one inner fold")
    p.add_argument("workdir", help=workdir)
    p.add_argument("--outer", type=int, required=True, help="the outer fold (0-based)")
    p.add_argument("--inner", type=int, required=True, help="the inner fold of that outer training set")
    p.add_argument("--chunk", type=int, required=True, help="the chunk of the grid (grid_chunk_size points)")
    p = stages.add_parser("refit", help="select, refit and test on one outer fold")
    p.add_argument("workdir", help=workdir)
    p.add_argument("--outer", type=int, required=True, help="the outer fold (0-based)")
    p = stages.add_parser("gather", help="gather the outer folds into results.json and results.npz")
    p.add_argument("workdir", help=workdir)
    return parser


def execute(args: argparse.Namespace, workdir: Path | None = None) -> None:
    """Run the task that parsed ``args`` name; ``workdir`` resolves a relative workdir argument."""
    path = Path(args.workdir) if workdir is None else Path(workdir) / args.workdir
    try:
        if args.stage == "map":
            run_map(path, args.outer, args.inner, args.chunk)
        elif args.stage == "refit":
            run_refit(path, args.outer)
        else:
            run_gather(path)
    except InputFileError as e:
        raise InputFileError(f"task {task_name(args.stage, **_identity(args))} needs {e}") from e


@functools.lru_cache(maxsize=1)
def _cached_task_parser() -> argparse.ArgumentParser:
    """Built once per worker process: argparse takes milliseconds to build, tasks may take less."""
    return task_parser()


def run_task(workdir: str | os.PathLike, task_args: list[str], log: str | os.PathLike | None = None) -> None:
    """Run a task in this process, as its command would, its output and errors going to ``log``."""
    workdir = Path(workdir)
    args = _cached_task_parser().parse_args(task_args)
    if log is None:
        execute(args, workdir)
        return
    log_path = workdir / log
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as f, _redirected_output(f):
        try:
            execute(args, workdir)
        except BaseException:
            traceback.print_exc()
            raise


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
