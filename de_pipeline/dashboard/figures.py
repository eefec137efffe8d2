"""What every chart of the dashboard shares: the Chart it is, its colours and layout, and
how labels from the vendor's data are shown."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go

PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b", "#9d755d", "#bab0ac")


@dataclass(frozen=True)
class Chart:
    name: str  # its query in dashboard_queries.QUERIES, and its place on the page
    title: str  # what to read from it
    source: str  # the tables its numbers come from
    figure: go.Figure | None  # None: nothing to draw, `notes` say why
    notes: tuple[str, ...] = ()
    wide: bool = False  # spans the page's width


def laid_out(figure: go.Figure, height: int, *, hovermode: str = "closest", legend: bool = True) -> go.Figure:
    """`figure` in the dashboard's look, `height` pixels tall; its title is the card's heading."""
    figure.update_layout(
        template="plotly_white",
        height=height,
        hovermode=hovermode,
        showlegend=legend,
        margin={"l": 60, "r": 20, "t": 40, "b": 40},
        font={"family": "system-ui, sans-serif", "size": 12},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.04, "x": 0},
    )
    figure.update_annotations(font_size=12)  # subplot titles
    return figure


def iso_days(frame: pd.DataFrame) -> list[str]:
    """The frame's `day` column as YYYY-MM-DD (plotly reads them as dates)."""
    return [day.isoformat()[:10] for day in frame["day"]]


def as_text(value: object) -> str:
    """A label from the vendor's data, shown as text: plotly reads a few HTML tags in labels."""
    return html.escape(str(value), quote=False)


def as_texts(values: Sequence[object]) -> list[str]:
    """Each value as_text."""
    return [as_text(value) for value in values]


def colours(count: int) -> list[str]:
    """`count` colours of PALETTE, repeating after the last."""
    return [PALETTE[i % len(PALETTE)] for i in range(count)]
