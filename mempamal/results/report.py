"""A report of a finished workdir: one self-contained HTML file (the summary
table, the experiment, and the figure as an embedded PNG), or the figure alone."""
from __future__ import annotations

import base64
import io
import os
from html import escape
from pathlib import Path

from ..workdir.files import atomic_open
from .loading import load_results
from .results import Results


def write_report(workdir: str | os.PathLike, output: str | os.PathLike | None = None) -> Path:
    """Write the report of ``workdir`` to ``output``.

    Parameters
    ----------
    workdir : path
        A directory whose workflow has completed.
    output : path, default=None
        A ``.html`` file (self-contained: the figure is embedded as base64 PNG) or a
        ``.png`` file (the figure alone); default: ``workdir/report.html``.

    Returns
    -------
    output : pathlib.Path
    """
    output = Path(output) if output is not None else Path(workdir) / "report.html"
    suffix = output.suffix.lower()
    if suffix not in (".html", ".htm", ".png"):
        raise ValueError(f"output: expected a .html or .png file name, got {str(output)!r}")
    res = load_results(workdir)
    fig = res.plot()
    if suffix == ".png":
        with atomic_open(output, "wb") as f:
            fig.savefig(f, format="png", dpi=110)
        return output
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    with atomic_open(output, "w") as f:
        f.write(_html(res, base64.b64encode(png.getvalue()).decode("ascii")))
    return output


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
thead th { background: #f0f0f0; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { font-weight: bold; } dd { margin: 0; font-family: monospace; white-space: pre-wrap; }
img { max-width: 100%; }
"""


def _html(res: Results, png_base64: str) -> str:
    doc = res.experiment
    about = [("workdir", str(res.workdir)), ("estimator", doc.estimator_repr),
             ("outer cv", f"{doc.cv} ({res.n_outer} folds)"),
             ("scoring", ", ".join(res.metrics) + (f" (selects on {res.refit})" if doc.with_search else ""))]
    if doc.with_search:
        about.append(("inner cv", f"{doc.inner_cv}"))
        about.append(("search", f"{doc.search}: {doc.n_candidates} candidates"))
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in about)
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>mempamal report: {escape(res.workdir.name)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>mempamal report</h1><dl>{rows}</dl>"
        f"<h2>Results</h2>{res.summary().html}"
        f"<h2>Figures</h2><img alt='outer-fold scores and inner searches' "
        f"src='data:image/png;base64,{png_base64}'>"
        "</body></html>\n"
    )
