"""The figure of :meth:`mempamal.results.Results.plot` (needs matplotlib).

Top row: the outer-fold test scores, one panel per metric. Below, the inner
search of every outer fold: a validation curve per fold for a grid over one
parameter, a heat map per fold for a grid over two, the mean score of each
candidate otherwise; the selected candidate is marked.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ._optional import require

_COLUMNS = 5  # heat maps per row


def plot_results(res, metric: str):
    """Draw ``res`` (a Results) and return the matplotlib Figure; ``metric`` is the inner one shown."""
    require("matplotlib", "Results.plot()")
    from matplotlib.figure import Figure

    if metric not in res.metrics:
        raise ValueError(f"metric: {metric!r} is not one of the metrics {res.metrics}")
    candidates = res.candidates
    grid = _grid_axes(candidates) if candidates is not None else None
    n_rows = 0
    if candidates is not None:
        n_rows = -(-res.n_outer // _COLUMNS) if grid is not None and len(grid) == 2 else 1
    n_metrics = len(res.metrics)
    fig = Figure(figsize=(max(4.0 * min(n_metrics, 3), 10.0), 3.2 + 3.4 * n_rows), layout="constrained")
    if n_rows:
        top, bottom = fig.subfigures(2, 1, height_ratios=[3.2, 3.4 * n_rows])
    else:
        top, bottom = fig, None
    _plot_outer(top, res)
    if bottom is not None:
        scores = [res.inner_scores[metric][o, :, :res.n_inner[o]].mean(axis=1)
                  for o in range(res.n_outer)]
        if grid is None:
            _plot_candidates(bottom, res, scores, metric)
        elif len(grid) == 1:
            _plot_curve(bottom, res, scores, metric, grid)
        else:
            _plot_heatmaps(bottom, res, scores, metric, grid)
    return fig


def _plot_outer(fig, res) -> None:
    axes = fig.subplots(1, len(res.metrics), squeeze=False)[0]
    folds = np.arange(res.n_outer)
    for ax, m in zip(axes, res.metrics):
        s = res.test_scores[m]
        mean, std = np.nanmean(s), np.nanstd(s)
        # Points, not bars: the y axis is zoomed on the scores, where bars would mislead.
        ax.vlines(folds, mean, s, color="C0", lw=1, alpha=0.5)
        ax.plot(folds, s, "o", color="C0", ms=8, label="outer folds")
        ax.axhline(mean, color="C3", lw=1.5, label=f"mean {mean:.3f}")
        ax.axhspan(mean - std, mean + std, color="C3", alpha=0.12, label=f"± std {std:.3f}")
        low, high = np.nanmin(s), np.nanmax(s)
        pad = max(high - low, std, 1e-3) * 0.8
        ax.set_ylim(low - pad, high + pad)
        ax.set_xticks(folds)
        ax.set_xlabel("outer fold")
        ax.set_ylabel(f"test {m}")
        ax.set_title(f"outer test {m}: {mean:.3f} ± {std:.3f}", fontsize="medium")
        ax.legend(loc="lower right", fontsize="small")


def _plot_curve(fig, res, scores, metric, grid) -> None:
    (name, values), = grid.items()
    ax = fig.subplots()
    numeric = _numeric(values)
    x = np.asarray(values, dtype=float) if numeric else np.arange(len(values))
    position = {_key(v): i for i, v in enumerate(values)}
    order = [position[_key(c[name])] for c in res.candidates]
    for o, s in enumerate(scores):
        y = np.full(len(values), np.nan)
        y[order] = s
        line, = ax.plot(x, y, marker="o", ms=3, lw=1.2, label=f"fold {o}")
        best = order[res.best_index[o]]
        ax.plot(x[best], y[best], marker="*", ms=14, color=line.get_color(), mec="k", mew=0.6)
    if numeric and _log_spaced(x):
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(x, [_label(v) for v in values], rotation=30, ha="right")
    ax.set_xlabel(name)
    ax.set_ylabel(f"mean inner {metric}")
    ax.set_title("inner validation curve per outer fold (★ selected)", fontsize="medium")
    ax.legend(fontsize="small", ncols=2)
    ax.grid(alpha=0.3)


def _plot_heatmaps(fig, res, scores, metric, grid) -> None:
    (rname, rvalues), (cname, cvalues) = grid.items()
    n_cols = min(res.n_outer, _COLUMNS)
    axes = fig.subplots(-(-res.n_outer // n_cols), n_cols, squeeze=False).ravel()
    rpos = {_key(v): i for i, v in enumerate(rvalues)}
    cpos = {_key(v): i for i, v in enumerate(cvalues)}
    cells = [(rpos[_key(c[rname])], cpos[_key(c[cname])]) for c in res.candidates]
    finite = np.concatenate([s[np.isfinite(s)] for s in scores] or [np.zeros(1)])
    vmin, vmax = (finite.min(), finite.max()) if finite.size else (0, 1)
    image = None
    for o, ax in enumerate(axes):
        if o >= res.n_outer:
            ax.set_axis_off()
            continue
        table = np.full((len(rvalues), len(cvalues)), np.nan)
        for (i, j), v in zip(cells, scores[o]):
            table[i, j] = v
        image = ax.imshow(table, origin="lower", aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax)
        i, j = cells[res.best_index[o]]
        ax.plot(j, i, marker="*", ms=14, color="w", mec="k", mew=0.8)
        ax.set_title(f"outer fold {o}", fontsize="medium")
        _ticks(ax.set_xticks, cvalues)
        _ticks(ax.set_yticks, rvalues)
        ax.tick_params(axis="x", labelrotation=45)
        ax.set_xlabel(cname + (" (log)" if _log_spaced_values(cvalues) else ""), fontsize="small")
        if o % n_cols == 0:
            ax.set_ylabel(rname + (" (log)" if _log_spaced_values(rvalues) else ""), fontsize="small")
    fig.colorbar(image, ax=list(axes), label=f"mean inner {metric}", shrink=0.9)
    fig.suptitle("inner search per outer fold (★ selected)", fontsize="medium")


def _plot_candidates(fig, res, scores, metric) -> None:
    ax = fig.subplots()
    x = np.arange(len(res.candidates))
    for o, s in enumerate(scores):
        line, = ax.plot(x, s, marker="o", ms=3, lw=0.8, label=f"fold {o}")
        ax.plot(x[res.best_index[o]], s[res.best_index[o]], marker="*", ms=14, color=line.get_color(),
                mec="k", mew=0.6)
    ax.set_xlabel("candidate (index in cv_results(outer=o)['params'])")
    ax.set_ylabel(f"mean inner {metric}")
    ax.set_title("inner search per outer fold (★ selected)", fontsize="medium")
    ax.legend(fontsize="small", ncols=2)
    ax.grid(alpha=0.3)


def _grid_axes(candidates: list[dict]) -> dict[str, list] | None:
    """The one or two parameters a full grid varies, with their values; None for anything else."""
    keys = list(dict.fromkeys(k for c in candidates for k in c))
    if any(set(c) != set(keys) for c in candidates):
        return None
    values: dict[str, list] = {}
    for k in keys:
        seen: dict[str, Any] = {}
        for c in candidates:
            seen.setdefault(_key(c[k]), c[k])
        values[k] = list(seen.values())
    varying = {k: v for k, v in values.items() if len(v) > 1}
    if len(varying) not in (1, 2):
        return None
    if len(candidates) != int(np.prod([len(v) for v in varying.values()])):
        return None
    combos = {tuple(_key(c[k]) for k in varying) for c in candidates}
    if len(combos) != len(candidates):
        return None
    return {k: (sorted(v) if _numeric(v) else v) for k, v in varying.items()}


def _key(v: Any) -> str:
    return repr(v.item() if isinstance(v, np.generic) else v)


def _numeric(values: list) -> bool:
    return all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in values)


def _log_spaced(x: np.ndarray) -> bool:
    """Positive values whose logs are more evenly spaced than the values themselves."""
    x = np.sort(np.asarray(x, dtype=float))
    if len(x) < 3 or x[0] <= 0 or x[-1] / x[0] < 20:
        return False

    def spread(d):
        return np.std(d) / np.mean(d) if np.mean(d) > 0 else np.inf

    return bool(spread(np.diff(np.log(x))) < spread(np.diff(x)))


def _log_spaced_values(values: list) -> bool:
    return _numeric(values) and _log_spaced(np.asarray(values, dtype=float))


def _label(v: Any) -> str:
    v = v.item() if isinstance(v, np.generic) else v
    if isinstance(v, float):
        return f"{v:.3g}"
    if hasattr(v, "get_params"):
        return type(v).__name__
    return str(v)


def _ticks(set_ticks, values: list) -> None:
    step = max(len(values) // 8, 1)  # at most ~8 labels per axis stay readable
    positions = list(range(0, len(values), step))
    set_ticks(positions, [_label(values[i]) for i in positions], fontsize="small")


_PANELS = 6  # targets drawn as null distributions; beyond, one chart of -log10(p)


def plot_permutations(res, metric: str):
    """The null distribution of ``metric``'s score with the observed score, per target (up to six
    panels), or -log10(p) per target, uncorrected and max-T corrected, beyond that."""
    require("matplotlib", "Results.plot()")
    from matplotlib.figure import Figure

    if metric not in res.metrics:
        raise ValueError(f"metric: {metric!r} is not one of the metrics {res.metrics}")
    scores = np.atleast_2d(res.permutation_scores[metric])
    observed = np.atleast_1d(res.observed_score[metric])
    pvalues, fwer = np.atleast_1d(res.pvalues[metric]), np.atleast_1d(res.pvalues_fwer[metric])
    n_targets = scores.shape[0]
    if n_targets > _PANELS:
        fig = Figure(figsize=(max(6.0, 0.35 * n_targets + 2), 4.0), layout="constrained")
        ax = fig.subplots()
        x = np.arange(n_targets)
        ax.bar(x - 0.2, -np.log10(pvalues), width=0.4, color="C0", label="uncorrected")
        ax.bar(x + 0.2, -np.log10(fwer), width=0.4, color="C3", label="FWER (max-T)")
        ax.axhline(-np.log10(0.05), color="k", ls="--", lw=1, label="p = 0.05")
        ax.set_xticks(x)
        ax.set_xlabel("target")
        ax.set_ylabel("-log10(p)")
        ax.set_title(f"{metric}: {res.n_permutations} permutations")
        ax.legend(loc="best", fontsize="small")
        return fig
    fig = Figure(figsize=(max(4.0 * n_targets, 5.0), 3.6), layout="constrained")
    axes = fig.subplots(1, n_targets, squeeze=False)[0]
    for t, ax in enumerate(axes):
        ax.hist(scores[t], bins=min(30, max(5, res.n_permutations // 5)), color="C0", alpha=0.7,
                label="permutations")
        ax.axvline(observed[t], color="C3", lw=2, label=f"score {observed[t]:.3f}")
        title = f"p = {pvalues[t]:.3g}" + (f", FWER p = {fwer[t]:.3g}" if res.per_target else "")
        ax.set_title((f"target {t}: " if res.per_target else "") + title, fontsize="medium")
        ax.set_xlabel(metric)
        ax.legend(loc="best", fontsize="small")
    axes[0].set_ylabel("permutations")
    return fig
