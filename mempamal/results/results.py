"""What :func:`~mempamal.results.load_results` returns: a finished (or partial) run's results."""
from __future__ import annotations

from pathlib import Path
from html import escape
from typing import Any

import numpy as np

from ..experiment.encoding import decode
from ..workdir.document import ExperimentDoc
from ..workdir.layout import target_prefix, unprefixed
from ._optional import require
from .plots import plot_permutations, plot_results
from .tables import Summary, _P, _stats, _format_params, _html_table, _json_value, _single_metric, _text_table


class Results:
    """The outcome of an experiment, per outer fold.

    Made by :func:`load_results`, which reads a finished workdir; not meant to be built by hand.

    Parameters
    ----------
    workdir : Path
        The workdir the results were read from.
    doc : dict
        ``results.json``.
    arrays : dict of str to ndarray
        ``results.npz``.
    experiment : ExperimentDoc
        ``experiment.json``, typed.

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
    targets : list of Results or None
        With ``per_target=True``: each target's own results (the attributes above, for that
        column of y). The attributes above then gain a leading target axis: ``test_scores[m]``
        is (n_targets, n_outer), ``best_params[t][o]``, ``predictions`` (n_samples, n_targets).
    n_permutations : int
        The permutations of y scored (0: none). With permutations:
    observed_score : dict of str to float (or ndarray of shape (n_targets,))
        Per metric, the mean of the outer test scores: the score that is tested.
    permutation_scores : dict of str to ndarray of shape (N,) or (n_targets, N)
        Per metric, the same score of each permutation of y.
    pvalues, pvalues_fwer : dict of str to float (or ndarray of shape (n_targets,))
        ``(count(permutation_scores >= score) + 1) / (N + 1)``, as ``permutation_test_score``;
        and family-wise corrected over targets by the maximum statistic (max-T): the same with
        each permutation's maximum over targets (equal to ``pvalues`` for a single target).

    partial : bool
        True for :func:`load_results` ``(partial=True)`` before the workflow ended: only the
        outer folds done (``outer_folds``) and the permutations done so far (``n_permutations``
        of ``n_permutations_total``); the p-values are NaN until every outer fold is done.
    outer_folds : list of int
        The outer folds the per-fold attributes hold, in order: every fold, unless ``partial``.

    Notes
    -----
    ``summary()`` prints a table (HTML in a notebook), ``cv_results(outer=o)`` gives
    fold o's inner search as ``GridSearchCV.cv_results_``, ``to_frame()`` a pandas
    DataFrame and ``plot()`` a matplotlib figure (``pip install 'mempamal[plot]'``).

    See Also
    --------
    load_results : Read the results of a workdir.
    mempamal.run : Run a workdir's tasks.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mempamal import Experiment, load_results, run
    >>> X, y = load_iris(return_X_y=True)
    >>> exp = Experiment(LogisticRegression(), cv=3, param_grid={"C": [0.1, 1.0, 10.0]}, inner_cv=3,
    ...                  scoring="accuracy")
    >>> report = run(exp.write(X, y, "runs/iris"), n_jobs=2, progress=False)
    >>> res = load_results("runs/iris")
    >>> res
    <Results of runs/iris: 3 outer folds, metrics ['accuracy']>
    >>> print(res.summary())
    metric      mean     std  median
    accuracy  0.9667  0.0094  0.9600
    <BLANKLINE>
    outer fold  accuracy  best parameters
             0    0.9800  C=1
             1    0.9600  C=1
             2    0.9600  C=10
    >>> res.test_scores["accuracy"], res.best_params
    (array([0.98, 0.96, 0.96]), [{'C': 1.0}, {'C': 1.0}, {'C': 10.0}])

    Fold 0's inner search, as ``GridSearchCV(...).fit(...).cv_results_`` on its training set:

    >>> res.cv_results(outer=0)["mean_test_score"].round(3)
    array([0.921, 0.96 , 0.95 ])

    Each sample's prediction by the fold that tested it, as ``cross_val_predict``:

    >>> print(res.predictions.shape, (res.predictions == y).mean().round(3))
    (150,) 0.967
    """

    def __init__(self, workdir: Path, doc: dict, arrays: dict[str, np.ndarray], experiment: ExperimentDoc) -> None:
        packages = experiment.packages
        self.workdir = workdir
        self.experiment = experiment
        self.n_inner: list[int] | None = experiment.n_inner
        self.metrics: list[str] = doc["metrics"]
        self.refit: str = doc["refit"]
        self.n_outer: int = doc["n_outer"]
        self.partial = bool(doc.get("partial"))
        self.outer_folds: list[int] = list(doc.get("outer_folds", range(self.n_outer)))
        self.per_target = bool(doc.get("per_target"))
        self.n_targets: int | None = doc.get("n_targets")
        self._doc = doc
        self._arrays = arrays
        self._packages = packages
        self._candidates: list[dict] | None = None
        self.targets: list[Results] | None = None
        self._read_permutations(doc, arrays)
        if self.per_target:
            self._stack_targets(doc, arrays, experiment)
            return
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

    def _stack_targets(self, doc: dict, arrays: dict, experiment: ExperimentDoc) -> None:
        """Each target's own Results, and the attributes stacked over targets."""
        self.targets = []
        for t, part in enumerate(doc["targets"]):
            own = unprefixed(arrays, target_prefix(t))
            view_doc = {**{k: v for k, v in doc.items() if k not in ("targets", "permutation")}, **part,
                        "per_target": False}
            self.targets.append(Results(self.workdir, view_doc, own, experiment))
        views = self.targets
        self.test_scores = {m: np.stack([v.test_scores[m] for v in views]) for m in self.metrics}
        self.fit_times = np.stack([v.fit_times for v in views])
        self.score_times = np.stack([v.score_times for v in views])
        self.best_index = None if views[0].best_index is None else [v.best_index for v in views]
        self.best_params = None if views[0].best_params is None else [v.best_params for v in views]
        self.inner_scores = {m: np.stack([v.inner_scores[m] for v in views]) for m in views[0].inner_scores}
        self.test_indices = [v.test_indices for v in views]
        self.test_predictions = [v.test_predictions for v in views]

    def _read_permutations(self, doc: dict, arrays: dict) -> None:
        perm = doc.get("permutation")
        self.n_permutations: int = perm["n_permutations"] if perm else 0
        self.n_permutations_total: int = perm.get("n_permutations_total", self.n_permutations) if perm else 0
        self.observed_score: dict[str, Any] = {}
        self.permutation_scores: dict[str, np.ndarray] = {}
        self.pvalues: dict[str, Any] = {}
        self.pvalues_fwer: dict[str, Any] = {}
        if not perm:
            return

        def per_target(values):  # (n_targets,) with targets analysed apart, else one number
            values = np.asarray([decode(v) for v in values], dtype=float)
            return values if self.per_target else float(values[0])

        for m in self.metrics:
            scores = arrays[f"permutation_scores_{m}"]
            self.permutation_scores[m] = scores if self.per_target else scores[0]
            self.observed_score[m] = per_target(perm["score"][m])
            self.pvalues[m] = per_target(perm["pvalues"][m])
            self.pvalues_fwer[m] = per_target(perm["pvalues_fwer"][m])

    # -- tables ----------------------------------------------------------------------

    def summary(self) -> "Summary":
        """A table: per metric, mean / std / median over outer folds, and the best parameters per fold;
        with permutations, the tested score and its p-values; with targets apart, one row per target.

        Returns
        -------
        Summary
            A str (print it), shown as HTML tables in a notebook.
        """
        tables = []
        if self.per_target:
            header = ["target", "metric", "mean", "std", "median"]
            if self.n_permutations:
                header += ["p-value", "p-value (FWER)"]
            rows = []
            for t, view in enumerate(self.targets):
                for m in self.metrics:
                    s = view.test_scores[m]
                    row = [t, m, *_stats(s)]
                    if self.n_permutations:
                        row += [_P(self.pvalues[m][t]), _P(self.pvalues_fwer[m][t])]
                    rows.append(row)
            tables.append(("mempamal-summary", header, rows))
        else:
            tables.append(("mempamal-summary", ["metric", "mean", "std", "median"],
                           [[m, *_stats(s)] for m, s in self.test_scores.items()]))
            header = ["outer fold"] + self.metrics + (["best parameters"] if self.best_params is not None else [])
            rows = [[fold] + [self.test_scores[m][o] for m in self.metrics]
                    + ([_format_params(self.best_params[o])] if self.best_params is not None else [])
                    for o, fold in enumerate(self.outer_folds)]
            tables.append(("mempamal-folds", header, rows))
            if self.n_permutations:
                tables.append(("mempamal-permutations",
                               ["metric", "score", "permutations: mean", "max", "p-value"],
                               [[m, self.observed_score[m], np.mean(self.permutation_scores[m]),
                                 np.max(self.permutation_scores[m]), _P(self.pvalues[m])] for m in self.metrics]))
        text = "\n\n".join(_text_table(header, rows) for _, header, rows in tables)
        if self.per_target:
            text += "\n\nEach target's folds and parameters: results.targets[j].summary()"
        if self.n_permutations:
            text += (f"\n\n{self.n_permutations} permutations of y; p = (#permutation scores >= score + 1) / "
                     f"({self.n_permutations} + 1)" + ("; FWER: max-T over targets" if self.per_target else ""))
        html = "<br>".join(_html_table(cls, header, rows) for cls, header, rows in tables)
        if self.partial:
            note = self._partial_note()
            text, html = f"{note}\n\n{text}", f"<p><b>{escape(note)}</b></p>{html}"
        return Summary(text, f"<div class='mempamal-results'>{html}</div>")

    def _partial_note(self) -> str:
        total = self._doc.get("n_outer_total", self.n_outer)
        note = (f"PARTIAL results (the workflow has not finished): {self.n_outer} of {total} outer folds done"
                f" ({', '.join(map(str, self.outer_folds)) or 'none'})")
        if self.n_permutations_total:
            note += f"; {self.n_permutations} of {self.n_permutations_total} permutations done"
            if self.n_outer < total:
                note += " (p-values once every outer fold is done)"
        return note

    def _repr_html_(self) -> str:
        return f"<p><b>mempamal results</b> of <code>{self.workdir}</code></p>" + self.summary().html

    def _fold_dict(self) -> dict:
        def num(v: float) -> float | None:
            v = float(v)
            return None if np.isnan(v) else v

        return {
            "workdir": str(self.workdir),
            "metrics": self.metrics,
            "refit": self.refit,
            "n_outer": self.n_outer,
            "outer_folds": self.outer_folds,
            "summary": {m: dict(zip(("mean", "std", "median"), map(num, _stats(s))))
                        for m, s in self.test_scores.items()},
            "test_scores": {m: [num(v) for v in s] for m, s in self.test_scores.items()},
            "fit_time": [num(v) for v in self.fit_times],
            "score_time": [num(v) for v in self.score_times],
            "best_index": self.best_index,
            "best_params": None if self.best_params is None else
            [{k: _json_value(v) for k, v in p.items()} for p in self.best_params],
        }

    def to_dict(self) -> dict:
        """A JSON-ready description: per-fold scores, summary, best parameters (NaN as None); with
        targets apart, one such description per target under ``targets``; with permutations, the
        score tested, the permutation scores and the p-values per metric under ``permutation``."""
        if self.per_target:
            out = {"workdir": str(self.workdir), "metrics": self.metrics, "refit": self.refit,
                   "n_outer": self.n_outer, "n_targets": self.n_targets,
                   "targets": [view._fold_dict() for view in self.targets]}
        else:
            out = self._fold_dict()
        if self.partial:
            out["partial"] = True
        if self.n_permutations_total:
            out["permutation"] = {
                "n_permutations": self.n_permutations,
                "n_permutations_total": self.n_permutations_total,
                "score": {m: _json_value(v) for m, v in self.observed_score.items()},
                "pvalues": {m: _json_value(v) for m, v in self.pvalues.items()},
                "pvalues_fwer": {m: _json_value(v) for m, v in self.pvalues_fwer.items()},
                "permutation_scores": {m: _json_value(v) for m, v in self.permutation_scores.items()},
            }
        return out

    def to_frame(self):
        """The per-fold results as a pandas DataFrame (one row per outer fold).

        Columns: ``test_<metric>`` per metric, ``fit_time``, ``score_time`` and, with a
        search, ``param_<name>`` per parameter of the best candidate.
        """
        pd = require("pandas", "Results.to_frame()")
        if self.per_target:  # one row per target and outer fold
            return pd.concat([view.to_frame() for view in self.targets], keys=range(self.n_targets),
                             names=["target"])
        columns: dict[str, Any] = {f"test_{m}": s for m, s in self.test_scores.items()}
        columns["fit_time"] = self.fit_times
        columns["score_time"] = self.score_times
        if self.best_params is not None:
            for k in dict.fromkeys(k for p in self.best_params for k in p):
                columns[f"param_{k}"] = [p.get(k) for p in self.best_params]
        return pd.DataFrame(columns, index=pd.Index(self.outer_folds, name="outer_fold"))

    # -- the inner searches -------------------------------------------------------------

    @property
    def candidates(self) -> list[dict] | None:
        """The grid points (or sampled settings) searched, in their order; None without a search."""
        if self._candidates is None and self.experiment.with_search:
            self._candidates = [{k: decode(v, self._packages) for k, v in c.items()}
                                for c in self.experiment.candidates]
        return self._candidates

    def cv_results(self, outer: int, target: int | None = None) -> dict[str, Any]:
        """The inner search of outer fold ``outer`` (of ``target`` when targets are analysed apart),
        shaped as ``GridSearchCV.cv_results_``.

        Keys: ``params``, ``param_<name>`` (masked arrays), ``split<k>_test_<metric>``,
        ``mean_test_<metric>``, ``std_test_<metric>``, ``rank_test_<metric>`` and
        ``mean/std_fit_time``, ``mean/std_score_time``; with a single metric the
        metric is called ``score`` as GridSearchCV names it.
        """
        if self.per_target:
            return self.targets[self._target(target)].cv_results(outer)
        if self.candidates is None:
            raise ValueError("cv_results: this experiment has no inner search (no param_grid or "
                             "param_distributions)")
        if not isinstance(outer, (int, np.integer)) or outer not in self.outer_folds:
            folds = (f"one of the outer folds {self.outer_folds} (the folds done so far)" if self.partial
                     else f"an outer fold index in [0, {self.n_outer})")
            raise ValueError(f"outer: expected {folds}, got {outer!r}")
        from scipy.stats import rankdata

        n_inner = self.n_inner[outer]
        outer = self.outer_folds.index(outer)  # the row of that fold in the arrays
        single = _single_metric(self.experiment.scoring)
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
        if self.per_target:
            return np.stack([view.predictions for view in self.targets], axis=1)
        if any(p is None for p in self.test_predictions):
            raise ValueError("predictions: the estimator has no predict(), so no predictions were stored")
        indices = np.concatenate(self.test_indices)
        n = self.experiment.n_samples
        if len(indices) != n or len(np.unique(indices)) != n:
            if self.partial:
                raise ValueError("predictions: partial results test only the samples of the outer folds done "
                                 f"({self.outer_folds}); use test_predictions and test_indices, per fold")
            raise ValueError("predictions: the outer folds do not test every sample exactly once (not a "
                             "partition); use test_predictions and test_indices, per fold")
        first = self.test_predictions[0]
        out = np.empty((n,) + first.shape[1:], dtype=np.result_type(*self.test_predictions))
        for idx, pred in zip(self.test_indices, self.test_predictions):
            out[idx] = pred
        return out

    def _target(self, target: int | None) -> int:
        if not isinstance(target, (int, np.integer)) or not 0 <= target < self.n_targets:
            raise ValueError(f"target: expected a target index in [0, {self.n_targets}) (the targets are "
                             f"analysed apart), got {target!r}")
        return int(target)

    def plot(self, metric: str | None = None, target: int | None = None):
        """Plot the outer-fold scores and the inner search of each fold.

        With permutations, the null distribution of the score with the observed score instead
        (a panel per target up to six, then -log10(p) per target); with targets apart and no
        permutation, the figure of ``target`` (default 0).

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
        if self.n_permutations and not np.isnan(list(self.observed_score.values())[0]).any():
            return plot_permutations(self, metric or self.refit)
        if self.per_target:
            return self.targets[self._target(0 if target is None else target)].plot(metric)
        return plot_results(self, metric or self.refit)

    def __repr__(self) -> str:
        extra = (f", {self.n_targets} targets" if self.per_target else "") + (
            f", {self.n_permutations} permutations" if self.n_permutations_total else "")
        kind = "Partial results" if self.partial else "Results"
        return f"<{kind} of {self.workdir}: {self.n_outer} outer folds, metrics {self.metrics}{extra}>"
