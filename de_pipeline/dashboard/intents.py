"""Intent confidence: the busiest topics' confidence bands, and the least confident topics."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from itertools import groupby

import numpy as np
import pandas as pd

from de_pipeline.dashboard.figures import (
    PALETTE,
    Chart,
    as_text,
    as_texts,
    every_day,
    iso_days,
    laid_out,
    note_if_empty,
)
from de_pipeline.dashboard.spec import Figure, bar, scatter, subplots


def topic_confidence(frame: pd.DataFrame, days: Sequence[date]) -> Chart:
    """A panel per busy topic: its daily p10–p90 band and median confidence."""
    name = "top_topic_confidence"
    title = (
        "Intent confidence of the six busiest topics: the band is p10–p90 and the line the median; "
        "a band sagging towards 0 means the bot often guesses"
    )
    source = "intent_confidence"
    if frame.empty:
        return Chart(name, title, source, None, ("No message with an intent in these days.",), wide=True)
    topics = list(dict.fromkeys(frame["topic"]))  # busiest first
    columns = 1 if len(topics) == 1 else 2
    rows_needed = math.ceil(len(topics) / columns)
    shares = frame.drop_duplicates("topic").set_index("topic")["topic_low_share"]
    frame = every_day(frame, days, by="topic")
    figure = subplots(
        rows=rows_needed,
        cols=columns,
        shared_xaxes=True,
        shared_yaxes=True,
        vertical_spacing=0.14 / rows_needed,
        horizontal_spacing=0.05,
        subplot_titles=[f"{as_text(t)}: {shares[t]:.0%} of its messages low confidence" for t in topics],
    )
    for index, topic in enumerate(topics):
        rows = frame[frame["topic"] == topic]
        row, col = divmod(index, columns)
        x, first = iso_days(rows), index == 0
        p10, p90 = rows["p10_score"].to_numpy(), rows["p90_score"].to_numpy()
        place = {"row": row + 1, "col": col + 1}
        band_x, band_y = band(x, p10, p90)
        figure.add_trace(
            scatter(
                x=band_x,
                y=band_y,
                mode="lines",
                line={"width": 0},
                fill="toself",
                fillcolor="rgba(76,120,168,0.25)",
                name="p10–p90",
                legendgroup="band",
                showlegend=first,
                hoverinfo="skip",
            ),
            **place,
        )
        figure.add_trace(
            scatter(
                x=x,
                y=rows["p50_score"].to_numpy(),
                mode="lines+markers",
                line={"color": PALETTE[0]},
                marker={"size": 4},
                name="median",
                legendgroup="median",
                showlegend=first,
                customdata=np.column_stack([p10, p90, rows["low_confidence_share"], rows["messages"]]),
                hovertemplate=(
                    "median %{y:.2f}, p10–p90 %{customdata[0]:.2f}–%{customdata[1]:.2f}<br>"
                    "%{customdata[2]:.0%} low confidence of %{customdata[3]:,} messages"
                    f"<extra>{as_text(topic)}</extra>"
                ),
            ),
            **place,
        )
        note_if_empty(
            figure,
            rows["p50_score"],
            "No confidence score for this topic in these days.",
            row=place["row"],
            col=place["col"],
        )
    figure.update_axes("y", range=[0, 1])
    return Chart(name, title, source, laid_out(figure, 170 + 190 * rows_needed, days=days), wide=True)


def band(x: list[str], low: np.ndarray, high: np.ndarray) -> tuple[list[str | None], list[float | None]]:
    """The band between `low` and `high` as one closed shape per run of days that have both,
    the shapes apart by None: plotly fills each (fill="toself") and leaves a day without data
    empty, where a fill "tonexty" to another line would reach across it."""
    has_both = ~(np.isnan(low) | np.isnan(high))
    band_x: list[str | None] = []
    band_y: list[float | None] = []
    for present, run in groupby(range(len(x)), key=lambda i: has_both[i]):
        if present:
            forth = list(run)
            back = forth[::-1]
            band_x += [x[i] for i in forth] + [x[i] for i in back] + [None]
            band_y += [float(high[i]) for i in forth] + [float(low[i]) for i in back] + [None]
    return band_x, band_y


def least_confident_intents(frame: pd.DataFrame) -> Chart:
    """Topics ranked by mean confidence, lowest first."""
    name = "least_confident_intents"
    title = "The least confident intents, lowest mean confidence on top: give these topics more training phrases first"
    source = "intent_confidence"
    if frame.empty:
        return Chart(name, title, source, None, ("No message with an intent in these days.",))
    figure = Figure(
        [
            bar(
                x=frame["avg_score"].to_numpy(),
                y=as_texts(frame["topic"]),
                orientation="h",
                marker={"color": PALETTE[3]},
                customdata=np.column_stack([frame["messages"], frame["low_confidence_share"]]),
                texttemplate="%{customdata[1]:.0%} low",
                textposition="auto",
                hovertemplate="%{y}: mean confidence %{x:.3f}<br>%{customdata[1]:.1%} low confidence "
                "of %{customdata[0]:,} messages<extra></extra>",
            )
        ]
    )
    figure.update_axes("y", autorange="reversed")
    figure.update_axes("x", range=[0, 1], title={"text": "mean confidence (0 … 1)"})
    note_if_empty(figure, frame["avg_score"], "No confidence score for these topics in these days.", zero_is_none=True)
    return Chart(name, title, source, laid_out(figure, 420, legend=False))
