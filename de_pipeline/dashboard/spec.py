"""Figures as plotly.js reads them: `{"data": [...], "layout": {...}}` built as plain dicts.

plotly's graph_objects validate every property and deep-copy their template on each change:
about a second per dashboard for figures the page only turns into JSON. This module builds the
same JSON directly: traces are dicts, `subplots` lays out a grid of axes as plotly's
make_subplots does, and `to_json` writes NaN, inf and missing values as null.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

Props = dict[str, Any]


def scatter(**props: Any) -> Props:
    """A scatter trace (lines and/or markers) with plotly.js's property names."""
    return {"type": "scatter", **props}


def bar(**props: Any) -> Props:
    """A bar trace with plotly.js's property names."""
    return {"type": "bar", **props}


@dataclass
class Figure:
    """A plotly.js figure; with `rows` × `cols` (from `subplots`), a grid of x/y axis pairs,
    numbered row by row from the top left, as make_subplots numbers them."""

    data: list[Props] = field(default_factory=list)
    layout: Props = field(default_factory=dict)
    rows: int = 0  # 0: one plot, whose traces name no axis
    cols: int = 0

    def add_trace(self, trace: Props, row: int | None = None, col: int | None = None) -> None:
        """Add `trace`, on the axes of the subplot at `row`, `col` (1-based) of a grid."""
        if self.rows:
            cell = self._cell(row or 1, col or 1)
            trace = {**trace, "xaxis": _axis_id("x", cell), "yaxis": _axis_id("y", cell)}
        self.data.append(trace)

    def axes(self, letter: str, row: int | None = None, col: int | None = None) -> list[Props]:
        """The layout's `letter` ("x" or "y") axes: the one of the subplot at `row`, `col`, or all."""
        if not self.rows:
            return [self.layout.setdefault(f"{letter}axis", {})]
        if row is not None and col is not None:
            return [self.layout[_axis_key(letter, self._cell(row, col))]]
        return [self.layout[_axis_key(letter, cell)] for cell in range(1, self.rows * self.cols + 1)]

    def update_axes(self, letter: str, row: int | None = None, col: int | None = None, **props: Any) -> None:
        """Set `props` on the `letter` axes (of one subplot, or all)."""
        for axis in self.axes(letter, row, col):
            axis.update(props)

    def axis_refs(self, row: int | None = None, col: int | None = None) -> tuple[str, str]:
        """The x and y axis ids ("x2", "y2") of the subplot at `row`, `col`, or of the one plot."""
        cell = self._cell(row or 1, col or 1) if self.rows else 1
        return _axis_id("x", cell), _axis_id("y", cell)

    def to_json(self) -> str:
        """The figure as plotly.js reads it."""
        return to_json({"data": self.data, "layout": self.layout})

    def _cell(self, row: int, col: int) -> int:
        if not (1 <= row <= self.rows and 1 <= col <= self.cols):
            raise ValueError(f"no subplot at row {row}, col {col} of a {self.rows}×{self.cols} grid")
        return (row - 1) * self.cols + col


def subplots(
    rows: int,
    cols: int,
    *,
    shared_xaxes: bool = False,
    shared_yaxes: bool = False,
    vertical_spacing: float = 0.3,
    horizontal_spacing: float = 0.2,
    row_heights: Sequence[float] | None = None,
    subplot_titles: Sequence[str] = (),
) -> Figure:
    """An empty figure of `rows` × `cols` subplots, laid out as plotly's make_subplots lays
    them (same domains, anchors, matched axes and titles as annotations; the same float sums,
    so the same numbers). Shared x axes match the bottom row's in their column and hide
    their tick labels; shared y axes match the first column's in their row."""
    widths = [(1.0 - horizontal_spacing * (cols - 1)) / cols] * cols
    if row_heights is None:
        heights = [(1.0 - vertical_spacing * (rows - 1)) / rows] * rows
    else:  # from the bottom row up, as plotly stacks them
        total = float(sum(row_heights))
        heights = [(1.0 - vertical_spacing * (rows - 1)) * (weight / total) for weight in reversed(row_heights)]
    layout: Props = {}
    titles: list[Props] = []
    for row in range(rows):
        up = rows - 1 - row  # rows below this one
        y_start = sum(heights[:up]) + up * vertical_spacing
        y_domain = [_clamped(y_start), _clamped(y_start + heights[up])]
        for col in range(cols):
            x_start = sum(widths[:col]) + col * horizontal_spacing
            x_domain = [x_start, x_start + widths[col]]
            cell = row * cols + col + 1
            layout[_axis_key("x", cell)] = {"anchor": _axis_id("y", cell), "domain": x_domain}
            layout[_axis_key("y", cell)] = {"anchor": _axis_id("x", cell), "domain": y_domain}
            if cell <= len(subplot_titles) and subplot_titles[cell - 1]:
                titles.append(_subplot_title(subplot_titles[cell - 1], sum(x_domain) / 2.0, y_domain[1]))
    for row in range(1, rows + 1):
        for col in range(1, cols + 1):
            cell = (row - 1) * cols + col
            if shared_xaxes and row < rows:
                layout[_axis_key("x", cell)].update(
                    matches=_axis_id("x", (rows - 1) * cols + col), showticklabels=False
                )
            if shared_yaxes and col > 1:
                layout[_axis_key("y", cell)].update(matches=_axis_id("y", (row - 1) * cols + 1), showticklabels=False)
    if titles:
        layout["annotations"] = titles
    return Figure(layout=layout, rows=rows, cols=cols)


def to_json(value: object) -> str:
    """`value` as JSON plotly.js reads: numpy and pandas values as plain numbers, NaN, inf
    and missing values as null (plotly draws a gap), dates as ISO strings."""
    return json.dumps(plain(value), separators=(",", ":"), allow_nan=False)


def plain(value: object) -> Any:
    """`value` made of what json writes: dicts, lists, str, int, finite float, bool, None."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, (np.ndarray, pd.Series, pd.Index)):
        return plain(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return plain(value.item())
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, date):  # datetime and pd.Timestamp too
        return value.isoformat()
    if isinstance(value, (str, int)):
        return value
    raise TypeError(f"a figure holds a {type(value).__name__}, which JSON cannot hold: {value!r}")


def _axis_key(letter: str, cell: int) -> str:
    return f"{letter}axis{cell if cell > 1 else ''}"


def _axis_id(letter: str, cell: int) -> str:
    return f"{letter}{cell if cell > 1 else ''}"


def _clamped(y: float) -> float:
    """A y domain bound summed just past 0 or 1 (float error), back at it, as plotly does."""
    return min(max(y, 0.0), 1.0)


def _subplot_title(text: str, x: float, y: float) -> Props:
    return {
        "text": text,
        "x": x,
        "y": y,
        "xref": "paper",
        "yref": "paper",
        "xanchor": "center",
        "yanchor": "bottom",
        "showarrow": False,
        "font": {"size": 16},
    }
