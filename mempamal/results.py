"""The results of a finished workdir: load_results() and what it returns."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .encoding import decode
from .files import load_arrays, read_json
from .workflow import RESULTS_JSON, RESULTS_NPZ


class Results:
    """The outcome of an experiment, per outer fold.

    Attributes
    ----------
    test_scores : dict of str to ndarray of shape (n_outer,)
        Outer test scores per metric (keys: the scorer names, "score" for a single callable or None).
    best_params : list of dict or None
        The parameters selected on each outer fold, as ``GridSearchCV.best_params_``.
    best_index : list of int or None
        Their index in the candidate list (ParameterGrid order).
    inner_scores : dict of str to ndarray of shape (n_outer, n_candidates, n_inner)
        The inner validation scores per metric (NaN pads folds with fewer inner splits).
    refit : str
        The metric that selected the parameters.
    """

    def __init__(self, workdir: Path, doc: dict, arrays: dict[str, np.ndarray], packages: list[str]) -> None:
        self.workdir = workdir
        self.metrics: list[str] = doc["metrics"]
        self.refit: str = doc["refit"]
        self.n_outer: int = doc["n_outer"]
        self.test_scores = {m: arrays[f"test_{m}"] for m in self.metrics}
        self.fit_times = arrays["fit_time"]
        self.score_times = arrays["score_time"]
        self.best_index = doc.get("best_index")
        self.best_params = (
            [{k: decode(v, packages) for k, v in p.items()} for p in doc["best_params"]]
            if doc.get("best_params") is not None else None
        )
        self.inner_scores = {m: arrays[f"inner_test_{m}"] for m in self.metrics if f"inner_test_{m}" in arrays}
        self.test_indices = [arrays[f"test_indices_{o}"] for o in range(self.n_outer)]
        self.test_predictions = [arrays.get(f"test_predictions_{o}") for o in range(self.n_outer)]

    def summary(self) -> str:
        """A table: per metric, mean / std / median over outer folds, and the best parameters per fold."""
        width = max(len(m) for m in self.metrics)
        lines = [f"{'metric':<{width}}  {'mean':>10}  {'std':>10}  {'median':>10}"]
        for m, s in self.test_scores.items():
            lines.append(f"{m:<{width}}  {np.mean(s):>10.4f}  {np.std(s):>10.4f}  {np.median(s):>10.4f}")
        lines.append("")
        lines.append("outer fold  " + "  ".join(f"{m:>{max(len(m), 8)}}" for m in self.metrics)
                     + ("  best parameters" if self.best_params is not None else ""))
        for o in range(self.n_outer):
            row = f"{o:>10}  " + "  ".join(f"{self.test_scores[m][o]:>{max(len(m), 8)}.4f}" for m in self.metrics)
            if self.best_params is not None:
                row += "  " + _format_params(self.best_params[o])
            lines.append(row)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Results of {self.workdir}: {self.n_outer} outer folds, metrics {self.metrics}>"


def _format_params(params: dict[str, Any]) -> str:
    def show(v: Any) -> str:
        v = v.item() if isinstance(v, np.generic) else v
        return f"{v:g}" if isinstance(v, float) else repr(v)

    return ", ".join(f"{k}={show(v)}" for k, v in params.items())


def load_results(workdir: str | os.PathLike) -> Results:
    """Load the results of a workdir whose workflow has completed.

    Raises
    ------
    FileNotFoundError
        When the run has not finished (its final task has not written results.json).
    """
    workdir = Path(workdir)
    path = workdir / RESULTS_JSON
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no results yet; run the workflow first (mempamal.run or `mempamal run {workdir}`)"
        )
    doc = read_json(path)
    _, arrays = load_arrays(workdir / RESULTS_NPZ)
    packages = read_json(workdir / "experiment.json").get("packages", [])
    return Results(workdir, doc, arrays, packages)
