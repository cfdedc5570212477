"""The tables of a Results' summary: text for a terminal, HTML for a notebook."""
from __future__ import annotations

from typing import Any

import numpy as np


def _stats(scores: np.ndarray) -> tuple[float, float, float]:
    """Mean, std and median over outer folds; NaN without a fold (partial results, none done yet)."""
    if not len(scores):
        return (float("nan"),) * 3
    return np.mean(scores), np.std(scores), np.median(scores)


class Summary(str):
    """The summary table: a str, shown as HTML in a notebook."""

    def __new__(cls, text: str, html: str) -> "Summary":
        self = super().__new__(cls, text)
        self._html = html
        return self

    @property
    def html(self) -> str:
        """The same tables as HTML (what a notebook shows; the report embeds it)."""
        return self._html

    def _repr_html_(self) -> str:
        return self._html


class _P(float):
    """A p-value: shown with significant digits, not four decimals."""


def _cell(value: Any) -> str:
    if isinstance(value, _P):
        return f"{value:.4g}"
    if isinstance(value, (float, np.floating)):
        return f"{value:.4f}"
    return str(value)


def _text_table(header: list[str], rows: list[list]) -> str:
    cells = [header] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(header))]
    # Text columns (metrics, parameters) to the left, numbers to the right.
    left = [not isinstance(rows[0][k], (int, float, np.number)) if rows else True for k in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if lft else c.rjust(w) for c, w, lft in zip(r, widths, left)).rstrip()
                     for r in cells)


def _html_table(cls: str, header: list[str], rows: list[list]) -> str:
    from html import escape

    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _single_metric(scoring: dict) -> bool:
    """Whether GridSearchCV would name the metric "score" (scoring None, a name or a callable)."""
    if len(scoring) != 1:
        return False
    name, value = next(iter(scoring.items()))
    return name == "score" or value == name


def _json_value(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return [_json_value(x) for x in v.tolist()]
    v = v.item() if isinstance(v, np.generic) else v
    if isinstance(v, float) and np.isnan(v):
        return None
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return repr(v)


def _format_params(params: dict[str, Any]) -> str:
    def show(v: Any) -> str:
        v = v.item() if isinstance(v, np.generic) else v
        return f"{v:g}" if isinstance(v, float) else repr(v)

    return ", ".join(f"{k}={show(v)}" for k, v in params.items())
