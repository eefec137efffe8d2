"""Volumes: redacted entities per day, and the data's health (messages and rejected records per day)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from de_pipeline.dashboard.figures import (
    PALETTE,
    RED,
    Chart,
    as_text,
    colours,
    every_day,
    iso_days,
    laid_out,
    note_if_empty,
)


def redacted_entities(frame: pd.DataFrame, days: Sequence[date]) -> Chart:
    """Placeholders per day, stacked by entity type, the commonest at the bottom."""
    name = "redacted_entities"
    title = (
        "Redacted entities per day, by type: a jump means customers share more personal data, or the redaction changed"
    )
    source = "redaction_entity_counts"
    if frame.empty:
        return Chart(name, title, source, None, ("No redaction placeholder in these days.",))
    frame = every_day(frame, days, by="entity_type")
    figure = go.Figure()
    totals = frame.groupby("entity_type", sort=False)["occurrences"].sum().sort_values(ascending=False)
    for color, entity in zip(colours(len(totals)), totals.index):
        rows = frame[frame["entity_type"] == entity]
        figure.add_trace(
            go.Bar(
                x=iso_days(rows),
                y=rows["occurrences"].to_numpy(),
                name=as_text(entity),
                marker={"color": color},
                customdata=rows["messages"].to_numpy(),
                hovertemplate="%{y:,} placeholders in %{customdata:,} messages",
            )
        )
    figure.update_layout(barmode="stack")
    figure.update_yaxes(title_text="placeholders")
    return Chart(name, title, source, laid_out(figure, 420, hovermode="x unified", days=days))


def data_health(frame: pd.DataFrame, last_day: date) -> Chart:
    """Messages stored and records rejected per day; days without messages in red."""
    name = "data_health"
    title = f"Data health: messages stored and records rejected per day; the last loaded day is {last_day}"
    source = "messages, rejected_messages"
    days = iso_days(frame)  # every day of the window: its query makes a row of each
    empty_days = [d for d, n in zip(days, frame["messages"]) if n == 0]
    figure = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        row_heights=[0.65, 0.35],
        subplot_titles=("messages stored (red: none)", "records rejected, by the day they arrived"),
    )
    figure.add_trace(
        go.Bar(
            x=days,
            y=frame["messages"].to_numpy(),
            name="messages",
            marker={"color": [RED if n == 0 else PALETTE[0] for n in frame["messages"]]},
            hovertemplate="%{y:,} messages",
        ),
        row=1,
        col=1,
    )
    if empty_days:  # a bar of 0 is not seen: a red mark on the axis is
        figure.add_trace(
            go.Scatter(
                x=empty_days,
                y=[0] * len(empty_days),
                name="no messages",
                mode="markers",
                marker={"color": RED, "size": 10, "symbol": "square"},
                hovertemplate="no messages",
                cliponaxis=False,
            ),
            row=1,
            col=1,
        )
    figure.add_trace(
        go.Bar(
            x=days,
            y=frame["rejected"].to_numpy(),
            name="rejected",
            marker={"color": PALETTE[1]},
            hovertemplate="%{y:,} rejected",
        ),
        row=2,
        col=1,
    )
    figure.update_yaxes(rangemode="tozero")
    note_if_empty(figure, frame["rejected"], "No rejected records in these days.", row=2, col=1, zero_is_none=True)
    notes = [
        "Duplicates dropped while loading are not stored in the warehouse: each messages partition's "
        "metadata in Dagster has them (duplicates_dropped)."
    ]
    if empty_days:
        shown = ", ".join(empty_days[:10]) + (" …" if len(empty_days) > 10 else "")
        notes.append(f"{len(empty_days)} day(s) without any message (an outage, or not loaded): {shown}.")
    figure = laid_out(figure, 400, hovermode="x unified", legend=False, days=list(frame["day"].dt.date))
    return Chart(name, title, source, figure, tuple(notes), wide=True)
