"""Customer journeys: their paths, the handoff rate and sentiment change per day, and the agents."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

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

# plotly's "RdBu" (plotly.js's own "RdBu" runs the other way): negative red, positive blue
RED_TO_BLUE = [
    [0.0, "rgb(103,0,31)"],
    [0.1, "rgb(178,24,43)"],
    [0.2, "rgb(214,96,77)"],
    [0.3, "rgb(244,165,130)"],
    [0.4, "rgb(253,219,199)"],
    [0.5, "rgb(247,247,247)"],
    [0.6, "rgb(209,229,240)"],
    [0.7, "rgb(146,197,222)"],
    [0.8, "rgb(67,147,195)"],
    [0.9, "rgb(33,102,172)"],
    [1.0, "rgb(5,48,97)"],
]
NO_JOURNEYS = (
    "No customer journeys in these days: conversation_segments and customer_journeys are empty "
    "(they are built from messages that have a customersessionid)."
)


def journey_paths(frame: pd.DataFrame) -> Chart:
    """The most frequent journey paths, ranked, coloured by sentiment change."""
    name = "journey_paths"
    title = "The ten most frequent journey paths (segments in order), coloured by the customer's sentiment change"
    source = "customer_journeys"
    if frame.empty:
        return Chart(name, title, source, None, (NO_JOURNEYS,))
    figure = Figure(
        [
            bar(
                x=frame["journeys"].to_numpy(),
                y=[as_text(p).replace("&gt;", " → ") for p in frame["path"]],
                orientation="h",
                customdata=np.column_stack([frame["share"], frame["avg_sentiment_change"]]),
                marker={
                    "color": frame["avg_sentiment_change"].to_numpy(),
                    "colorscale": RED_TO_BLUE,
                    "cmid": 0,
                    "line": {"color": "#8c959f", "width": 1},
                    "colorbar": {"title": {"text": "sentiment<br>change"}},
                },
                texttemplate="%{customdata[0]:.0%}",
                textposition="auto",
                hovertemplate="%{y}: %{x:,} journeys (%{customdata[0]:.1%})<br>"
                "mean sentiment change %{customdata[1]:+.3f}<extra></extra>",
            )
        ]
    )
    figure.update_axes("y", autorange="reversed")
    figure.update_axes("x", title={"text": "journeys"})
    return Chart(name, title, source, laid_out(figure, 420, legend=False))


def handoffs_per_day(frame: pd.DataFrame, days: Sequence[date]) -> Chart:
    """The handoff rate per day, above the mean sentiment change of the day's journeys."""
    name = "handoffs_per_day"
    title = (
        "Handoff rate and sentiment change per day: more handoffs mean the bot resolves less; "
        "below 0, customers left unhappier than they came"
    )
    source = "customer_journeys"
    if frame.empty:
        return Chart(name, title, source, None, (NO_JOURNEYS,))
    frame = every_day(frame, days)
    journeys = frame["journeys"].to_numpy()
    figure = subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        subplot_titles=("journeys handed from the bot to an agent", "mean sentiment change (last segment − first)"),
    )
    figure.add_trace(
        scatter(
            x=iso_days(frame),
            y=frame["handoff_rate"].to_numpy(),
            name="handoff rate",
            mode="lines+markers",
            line={"color": PALETTE[1]},
            customdata=journeys,
            hovertemplate="%{y:.1%} of %{customdata:,} journeys",
        ),
        row=1,
        col=1,
    )
    figure.add_trace(
        bar(
            x=iso_days(frame),
            y=frame["avg_sentiment_change"].to_numpy(),
            name="sentiment change",
            marker={"color": PALETTE[0]},
            hovertemplate="%{y:+.3f}",
        ),
        row=2,
        col=1,
    )
    figure.update_axes("y", tickformat=".0%", row=1, col=1)
    note_if_empty(
        figure,
        frame["avg_sentiment_change"],
        "No journey with a sentiment change in these days.",
        row=2,
        col=1,
        zero_is_none=True,
    )
    return Chart(name, title, source, laid_out(figure, 480, hovermode="x unified", days=days))


def agents(frame: pd.DataFrame) -> Chart:
    """Segments handled and customer sentiment, side by side, a row per agent."""
    name = "agents"
    title = "Agents, the least happy customers on top: their customers' sentiment beside the segments they handled"
    source = "agent_performance"
    if frame.empty:
        return Chart(name, title, source, None, ("No agent segments in these days: agent_performance is empty.",))
    names = as_texts(frame["agent"])
    details = np.column_stack([frame["customer_messages"], frame["handoffs_received"]])
    figure = subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.03,
        subplot_titles=("segments handled", "their customers' mean sentiment"),
    )
    figure.add_trace(
        bar(
            x=frame["segments"].to_numpy(),
            y=names,
            orientation="h",
            marker={"color": PALETTE[0]},
            customdata=details,
            hovertemplate="%{y}: %{x:,} segments, %{customdata[1]:,} of them handoffs from the bot<extra></extra>",
        ),
        row=1,
        col=1,
    )
    figure.add_trace(
        bar(
            x=frame["avg_customer_sentiment"].to_numpy(),
            y=names,
            orientation="h",
            marker={"color": PALETTE[1]},
            customdata=details,
            hovertemplate="%{y}: customer sentiment %{x:+.3f} over %{customdata[0]:,} customer messages<extra></extra>",
        ),
        row=1,
        col=2,
    )
    figure.update_axes("y", autorange="reversed")
    note_if_empty(
        figure,
        frame["avg_customer_sentiment"],
        "No customer message with a sentiment in these agents' segments.",
        row=1,
        col=2,
        zero_is_none=True,
    )
    total = int(frame["agents"].iloc[0])
    notes = (f"The {len(frame)} busiest of {total} agents.",) if total > len(frame) else ()
    return Chart(name, title, source, laid_out(figure, 120 + 24 * len(frame), legend=False), notes)
