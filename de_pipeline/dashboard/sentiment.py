"""Sentiment: per day and channel for customers, and per sender type."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pandas as pd

from de_pipeline.dashboard.figures import (
    PALETTE,
    Chart,
    as_text,
    colours,
    every_day,
    iso_days,
    laid_out,
    note_if_empty,
)
from de_pipeline.dashboard.spec import Figure, scatter, subplots

SENDER_ORDER = ("customer", "bot", "agent")


def sentiment_by_channel(frame: pd.DataFrame, days: Sequence[date]) -> Chart:
    """Customer sentiment per day, a line per channel, above the share of negative messages."""
    name = "sentiment_by_channel"
    title = "Customer sentiment per day and channel: a falling line, or a rising negative share, is where to look first"
    source = "sentiment_trends (sendertype = customer)"
    if frame.empty:
        return Chart(name, title, source, None, ("No customer messages in these days.",), wide=True)
    frame = every_day(frame, days, by="channel")
    figure = subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.1,
        row_heights=[0.6, 0.4],
        subplot_titles=("mean sentiment of customer messages (−1 … 1)", "share of customer messages that are negative"),
    )
    groups = list(frame.groupby("channel", sort=False))
    for color, (channel, rows) in zip(colours(len(groups)), groups):
        x, label = iso_days(rows), as_text(channel)
        figure.add_trace(
            scatter(
                x=x,
                y=rows["avg_sentiment"].to_numpy(),
                name=label,
                legendgroup=label,
                mode="lines+markers",
                line={"color": color},
                customdata=rows["messages"].to_numpy(),
                hovertemplate="%{y:.3f} (%{customdata:,} messages)",
            ),
            row=1,
            col=1,
        )
        figure.add_trace(
            scatter(
                x=x,
                y=rows["negative_share"].to_numpy(),
                name=label,
                legendgroup=label,
                showlegend=False,
                mode="lines+markers",
                line={"color": color, "dash": "dot"},
                hovertemplate="%{y:.1%} negative",
            ),
            row=2,
            col=1,
        )
    note_if_empty(figure, frame["avg_sentiment"], "No customer message with a sentiment in these days.", row=1, col=1)
    figure.update_axes("y", tickformat=".0%", row=2, col=1)
    channels = frame["channel"].unique()
    notes: tuple[str, ...] = ()
    if len(channels) == 1:
        notes = (f"Only one channel in these days ({channels[0]}): nothing to compare it with.",)
    return Chart(name, title, source, laid_out(figure, 520, hovermode="x unified", days=days), notes, wide=True)


def sentiment_by_sender(frame: pd.DataFrame, days: Sequence[date]) -> Chart:
    """Mean sentiment per day, a line per sender type."""
    name = "sentiment_by_sender"
    title = "Sentiment by sender type: customers below bots and agents is normal; a shrinking gap is good news"
    source = "sentiment_trends"
    if frame.empty:
        return Chart(name, title, source, None, ("No messages in these days.",))
    frame = every_day(frame, days, by="sendertype")
    figure = Figure()
    ranked = sorted(frame["sendertype"].unique(), key=lambda s: (SENDER_ORDER.index(s) if s in SENDER_ORDER else 9, s))
    for color, sender in zip(PALETTE, ranked):
        rows = frame[frame["sendertype"] == sender]
        figure.add_trace(
            scatter(
                x=iso_days(rows),
                y=rows["avg_sentiment"].to_numpy(),
                name=as_text(sender),
                mode="lines+markers",
                line={"color": color},
                customdata=rows["messages"].to_numpy(),
                hovertemplate="%{y:.3f} (%{customdata:,} messages)",
            )
        )
    figure.update_axes("y", title={"text": "mean sentiment (−1 … 1)"})
    note_if_empty(figure, frame["avg_sentiment"], "No message with a sentiment in these days.")
    return Chart(name, title, source, laid_out(figure, 420, hovermode="x unified", days=days))
