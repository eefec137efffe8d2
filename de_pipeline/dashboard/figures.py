"""What every chart of the dashboard shares: the Chart it is, its colours and layout, and
how labels from the vendor's data are shown."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

from de_pipeline.dashboard.spec import Figure

PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b", "#9d755d", "#bab0ac")
RED = PALETTE[3]  # what is missing

_AXIS = {  # plotly's "plotly_white" template: light grid and lines, no ticks
    "automargin": True,
    "gridcolor": "#EBF0F8",
    "linecolor": "#EBF0F8",
    "ticks": "",
    "title": {"standoff": 15},
    "zerolinecolor": "#EBF0F8",
    "zerolinewidth": 2,
}
# the keys of plotly_white that a 2-D chart of bars and lines shows (plotly's own template
# holds those of every kind of plot, and its colorway, which no trace here falls back to)
TEMPLATE = {
    "data": {"bar": [{"type": "bar", "marker": {"line": {"color": "white", "width": 0.5}}}]},
    "layout": {
        "autotypenumbers": "strict",  # a label such as "2024" stays a category
        "colorway": list(PALETTE),
        "font": {"color": "#2a3f5f"},
        "hoverlabel": {"align": "left"},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "xaxis": _AXIS,
        "yaxis": _AXIS,
    },
}


@dataclass(frozen=True)
class Chart:
    name: str  # its query in dashboard_queries.QUERIES, and its place on the page
    title: str  # what to read from it
    source: str  # the tables its numbers come from
    figure: Figure | None  # None: nothing to draw, `notes` say why
    notes: tuple[str, ...] = ()
    wide: bool = False  # spans the page's width


def laid_out(
    figure: Figure,
    height: int,
    *,
    hovermode: str = "closest",
    legend: bool = True,
    days: Sequence[date] | None = None,
) -> Figure:
    """`figure` in the dashboard's look, `height` pixels tall; its title is the card's heading.
    A daily figure (`days`, its frames through `every_day`) spans each of the days, whether
    or not its first and last have data, and its lines break where a day has none."""
    if days:
        noon_before, noon_after = (day.strftime("%Y-%m-%d 12:00") for day in (days[0] - timedelta(days=1), days[-1]))
        figure.update_axes("x", range=[noon_before, noon_after])
        for trace in figure.data:
            if trace["type"] == "scatter":
                trace["connectgaps"] = False
    figure.layout.update(
        template=TEMPLATE,
        height=height,
        hovermode=hovermode,
        showlegend=legend,
        margin={"l": 60, "r": 20, "t": 40, "b": 40},
        font={"family": "system-ui, sans-serif", "size": 12},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.04, "x": 0},
    )
    for annotation in figure.layout.get("annotations", []):  # subplot titles and notes
        annotation["font"] = {**annotation.get("font", {}), "size": 12}
    return figure


def every_day(frame: pd.DataFrame, days: Sequence[date], by: str | None = None) -> pd.DataFrame:
    """`frame` with a row for each of `days`, per value of its column `by` in the frame's
    order: a day without a row gets NaN, which a chart draws as a gap (a line never bridges
    a day without data, and the axis shows every day)."""
    every = pd.DataFrame({"day": pd.to_datetime(list(days))})
    frame = frame.assign(day=pd.to_datetime(frame["day"]))
    if by is None:
        return every.merge(frame, on="day", how="left")
    # a merge, not a reindex: several accounts give a series two rows on one day
    return frame[[by]].drop_duplicates().merge(every, how="cross").merge(frame, on=[by, "day"], how="left")


def note_if_empty(
    figure: Figure,
    values: Iterable[object],
    note: str,
    *,
    row: int | None = None,
    col: int | None = None,
    zero_is_none: bool = False,
) -> None:
    """Write `note` across the (sub)plot at `row`, `col` when `values` hold nothing to draw
    (no number; with `zero_is_none`, none but 0, as a bar of 0 is not seen), so that an empty
    plot says so instead of showing a bare axis."""
    numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").dropna()
    if zero_is_none:
        numbers = numbers[numbers != 0]
    if not numbers.empty:
        return
    x, y = figure.axis_refs(row, col)
    figure.layout.setdefault("annotations", []).append(
        {
            "text": note,
            "x": 0.5,
            "y": 0.5,
            "xref": f"{x} domain",
            "yref": f"{y} domain",
            "showarrow": False,
            "font": {"color": "#57606a"},  # its size: laid_out's
        }
    )
    figure.update_axes("y", row, col, showticklabels=False, showgrid=False, zeroline=False)


def iso_days(frame: pd.DataFrame) -> list[str]:
    """The frame's `day` column as YYYY-MM-DD (plotly reads them as dates)."""
    return [day.isoformat()[:10] for day in frame["day"]]


def as_text(value: object) -> str:
    """A label from the vendor's data, shown as text: plotly reads a few HTML tags in labels."""
    return html.escape(str(value), quote=False)


def as_texts(values: Iterable[object]) -> list[str]:
    """Each value as_text."""
    return [as_text(value) for value in values]


def colours(count: int) -> list[str]:
    """`count` colours of PALETTE, repeating after the last."""
    return [PALETTE[i % len(PALETTE)] for i in range(count)]
