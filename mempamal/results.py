"""The results of a finished workdir: load_results() and what it returns."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .encoding import decode
from .files import load_arrays, read_json
from .layout import EXPERIMENT, RESULTS_JSON, RESULTS_NPZ


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
    test_predictions, test_indices : list of ndarray
        Per outer fold, the test predictions and the test samples' indices.
    predictions : ndarray of shape (n_samples, ...)
        The outer test predictions in sample order, as ``cross_val_predict`` gives them.

    Notes
    -----
    ``summary()`` prints a table (HTML in a notebook), ``cv_results(outer=o)`` gives
    fold o's inner search as ``GridSearchCV.cv_results_``, ``to_frame()`` a pandas
    DataFrame and ``plot()`` a matplotlib figure (``pip install 'mempamal[plot]'``).
    """

    def __init__(self, workdir: Path, doc: dict, arrays: dict[str, np.ndarray], experiment: dict) -> None:
        packages = experiment.get("packages", [])
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
        self._doc = doc
        self._arrays = arrays
        self._packages = packages
        self._experiment = experiment
        self._candidates: list[dict] | None = None

    # -- tables ----------------------------------------------------------------------

    def summary(self) -> "Summary":
        """A table: per metric, mean / std / median over outer folds, and the best parameters per fold.

        Returns
        -------
        Summary
            A str (print it), shown as an HTML table in a notebook.
        """
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
        return Summary("\n".join(lines), self._summary_html())

    def _summary_html(self) -> str:
        from html import escape

        rows = "".join(
            f"<tr><th>{escape(m)}</th><td>{np.mean(s):.4f}</td><td>{np.std(s):.4f}</td>"
            f"<td>{np.median(s):.4f}</td></tr>" for m, s in self.test_scores.items())
        table = ("<table class='mempamal-summary'><thead><tr><th>metric</th><th>mean</th><th>std</th>"
                 f"<th>median</th></tr></thead><tbody>{rows}</tbody></table>")
        head = "".join(f"<th>{escape(m)}</th>" for m in self.metrics)
        if self.best_params is not None:
            head += "<th>best parameters</th>"
        folds = ""
        for o in range(self.n_outer):
            cells = "".join(f"<td>{self.test_scores[m][o]:.4f}</td>" for m in self.metrics)
            if self.best_params is not None:
                cells += f"<td style='text-align:left'>{escape(_format_params(self.best_params[o]))}</td>"
            folds += f"<tr><th>{o}</th>{cells}</tr>"
        per_fold = (f"<table class='mempamal-folds'><thead><tr><th>outer fold</th>{head}</tr></thead>"
                    f"<tbody>{folds}</tbody></table>")
        return f"<div class='mempamal-results'>{table}<br>{per_fold}</div>"

    def _repr_html_(self) -> str:
        return f"<p><b>mempamal results</b> of <code>{self.workdir}</code></p>" + self._summary_html()

    def to_dict(self) -> dict:
        """A JSON-ready description: per-fold scores, summary, best parameters (NaN as None)."""
        def num(v: float) -> float | None:
            v = float(v)
            return None if np.isnan(v) else v

        return {
            "workdir": str(self.workdir),
            "metrics": self.metrics,
            "refit": self.refit,
            "n_outer": self.n_outer,
            "summary": {m: {"mean": num(np.mean(s)), "std": num(np.std(s)), "median": num(np.median(s))}
                        for m, s in self.test_scores.items()},
            "test_scores": {m: [num(v) for v in s] for m, s in self.test_scores.items()},
            "fit_time": [num(v) for v in self.fit_times],
            "score_time": [num(v) for v in self.score_times],
            "best_index": self.best_index,
            "best_params": None if self.best_params is None else
            [{k: _json_value(v) for k, v in p.items()} for p in self.best_params],
        }

    def to_frame(self):
        """The per-fold results as a pandas DataFrame (one row per outer fold).

        Columns: ``test_<metric>`` per metric, ``fit_time``, ``score_time`` and, with a
        search, ``param_<name>`` per parameter of the best candidate.
        """
        pd = _require("pandas", "Results.to_frame()")
        columns: dict[str, Any] = {f"test_{m}": s for m, s in self.test_scores.items()}
        columns["fit_time"] = self.fit_times
        columns["score_time"] = self.score_times
        if self.best_params is not None:
            for k in dict.fromkeys(k for p in self.best_params for k in p):
                columns[f"param_{k}"] = [p.get(k) for p in self.best_params]
        return pd.DataFrame(columns, index=pd.RangeIndex(self.n_outer, name="outer_fold"))

    # -- the inner searches -------------------------------------------------------------

    @property
    def candidates(self) -> list[dict] | None:
        """The grid points (or sampled settings) searched, in their order; None without a search."""
        if self._candidates is None and self._doc["search"] is not None:
            self._candidates = [{k: decode(v, self._packages) for k, v in c.items()}
                                for c in self._experiment["candidates"]]
        return self._candidates

    def cv_results(self, outer: int) -> dict[str, Any]:
        """The inner search of outer fold ``outer``, shaped as ``GridSearchCV.cv_results_``.

        Keys: ``params``, ``param_<name>`` (masked arrays), ``split<k>_test_<metric>``,
        ``mean_test_<metric>``, ``std_test_<metric>``, ``rank_test_<metric>`` and
        ``mean/std_fit_time``, ``mean/std_score_time``; with a single metric the
        metric is called ``score`` as GridSearchCV names it.
        """
        if self.candidates is None:
            raise ValueError("cv_results: this experiment has no inner search (no param_grid or "
                             "param_distributions)")
        if not isinstance(outer, (int, np.integer)) or not 0 <= outer < self.n_outer:
            raise ValueError(f"outer: expected an outer fold index in [0, {self.n_outer}), got {outer!r}")
        from scipy.stats import rankdata

        n_inner = self._experiment["n_inner"][outer]
        single = _single_metric(self._experiment["scoring"])
        out: dict[str, Any] = {}
        for key, name in (("fit_time", "fit_time"), ("score_time", "score_time")):
            t = self._arrays[f"inner_{key}"][outer, :, :n_inner]
            out[f"mean_{name}"] = t.mean(axis=1)
            out[f"std_{name}"] = t.std(axis=1)
        params = self.candidates
        for k in dict.fromkeys(k for p in params for k in p):
            column = np.ma.MaskedArray(np.empty(len(params), dtype=object), mask=True)
            for i, p in enumerate(params):
                if k in p:
                    column[i] = p[k]
            out[f"param_{k}"] = column
        out["params"] = params
        for m in self.metrics:
            name = "score" if single else m
            scores = self.inner_scores[m][outer, :, :n_inner]
            for k in range(n_inner):
                out[f"split{k}_test_{name}"] = scores[:, k]
            means = scores.mean(axis=1)
            out[f"mean_test_{name}"] = means
            out[f"std_test_{name}"] = scores.std(axis=1)
            # As GridSearchCV ranks: NaN means last, ties share the best rank.
            if np.isnan(means).all():
                ranks = np.ones(len(means), dtype=np.int32)
            else:
                ranks = rankdata(-np.nan_to_num(means, nan=np.nanmin(means) - 1), method="min").astype(np.int32)
            out[f"rank_test_{name}"] = ranks
        return out

    @property
    def predictions(self) -> np.ndarray:
        """The outer test predictions in sample order, as ``cross_val_predict`` gives them.

        Raises
        ------
        ValueError
            When the outer folds do not test every sample exactly once (cross_val_predict
            refuses such splitters too), or the estimator has no ``predict``.
        """
        if any(p is None for p in self.test_predictions):
            raise ValueError("predictions: the estimator has no predict(), so no predictions were stored")
        indices = np.concatenate(self.test_indices)
        n = self._experiment["n_samples"]
        if len(indices) != n or len(np.unique(indices)) != n:
            raise ValueError("predictions: the outer folds do not test every sample exactly once (not a "
                             "partition); use test_predictions and test_indices, per fold")
        first = self.test_predictions[0]
        out = np.empty((n,) + first.shape[1:], dtype=np.result_type(*self.test_predictions))
        for idx, pred in zip(self.test_indices, self.test_predictions):
            out[idx] = pred
        return out

    def plot(self, metric: str | None = None):
        """Plot the outer-fold scores and the inner search of each fold.

        The inner search is a validation curve per fold for a 1-D grid, a heat map
        per fold for a 2-D grid (log axes for log-spaced grids), and the mean score
        of each candidate otherwise. Needs matplotlib (``pip install 'mempamal[plot]'``).

        Parameters
        ----------
        metric : str, default=None
            The inner metric to show; default: the one that selects (``refit``).

        Returns
        -------
        matplotlib.figure.Figure
        """
        from .plots import plot_results

        return plot_results(self, metric or self.refit)

    def __repr__(self) -> str:
        return f"<Results of {self.workdir}: {self.n_outer} outer folds, metrics {self.metrics}>"


class Summary(str):
    """The summary table: a str, shown as HTML in a notebook."""

    def __new__(cls, text: str, html: str) -> "Summary":
        self = super().__new__(cls, text)
        self._html = html
        return self

    def _repr_html_(self) -> str:
        return self._html


def _single_metric(scoring: dict) -> bool:
    """Whether GridSearchCV would name the metric "score" (scoring None, a name or a callable)."""
    if len(scoring) != 1:
        return False
    name, value = next(iter(scoring.items()))
    return name == "score" or value == name


def _json_value(v: Any) -> Any:
    v = v.item() if isinstance(v, np.generic) else v
    if isinstance(v, float) and np.isnan(v):
        return None
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return repr(v)


def _require(module: str, what: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{what} needs {module}, which is not installed: "
                          f"pip install 'mempamal[plot]' (or pip install {module})") from None


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
    return Results(workdir, doc, arrays, read_json(workdir / EXPERIMENT))
