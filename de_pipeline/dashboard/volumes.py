"""Volumes: redacted entities per day, and the data's health (messages and rejected records per day)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pandas as pd

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
from de_pipeline.dashboard.spec import Figure, bar, scatter, subplots


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
    figure = Figure()
    totals = frame.groupby("entity_type", sort=False)["occurrences"].sum().sort_values(ascending=False)
    for color, entity in zip(colours(len(totals)), totals.index):
        rows = frame[frame["entity_type"] == entity]
        figure.add_trace(
            bar(
                x=iso_days(rows),
                y=rows["occurrences"].to_numpy(),
                name=as_text(entity),
                marker={"color": color},
                customdata=rows["messages"].to_numpy(),
                hovertemplate="%{y:,} placeholders in %{customdata:,} messages",
            )
        )
    figure.layout["barmode"] = "stack"
    figure.update_axes("y", title={"text": "placeholders"})
    return Chart(name, title, source, laid_out(figure, 420, hovermode="x unified", days=days))


def data_health(frame: pd.DataFrame, last_day: date) -> Chart:
    """Messages stored and records rejected per day; days without messages in red, and a
    cross on those that came back empty where the account's history expected messages."""
    name = "data_health"
    title = f"Data health: messages stored and records rejected per day; the last loaded day is {last_day}"
    source = "messages, rejected_messages, loaded_days"
    days = iso_days(frame)
    unexpected = [d for d, n in zip(days, frame["unexpected_empty"]) if n > 0]
    empty = [(d, bool(loaded)) for d, n, loaded in zip(days, frame["messages"], frame["loaded"]) if n == 0]
    quiet_days = [d for d, loaded in empty if loaded and d not in unexpected]
    not_loaded = [d for d, loaded in empty if not loaded]
    empty_days = [d for d, _ in empty]  # a bar of 0 is not seen: each gets a red mark
    figure = subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        row_heights=[0.65, 0.35],
        subplot_titles=("messages stored (red: none)", "records rejected, by the day they arrived"),
    )
    figure.add_trace(
        bar(
            x=days,
            y=frame["messages"].to_numpy(),
            name="messages",
            marker={"color": [RED if n == 0 else PALETTE[0] for n in frame["messages"]]},
            hovertemplate="%{y:,} messages",
        ),
        row=1,
        col=1,
    )
    _mark_at_zero(figure, empty_days, "no messages", {"color": RED, "size": 10, "symbol": "square"}, "no messages")
    _mark_at_zero(
        figure,
        unexpected,
        "empty, though expected",
        {"color": PALETTE[3], "symbol": "x", "size": 12},
        "came back empty; its weekday usually has messages",
    )
    figure.add_trace(
        bar(
            x=days,
            y=frame["rejected"].to_numpy(),
            name="rejected",
            marker={"color": PALETTE[1]},
            hovertemplate="%{y:,} rejected",
        ),
        row=2,
        col=1,
    )
    figure.update_axes("y", rangemode="tozero")
    note_if_empty(figure, frame["rejected"], "No rejected records in these days.", row=2, col=1, zero_is_none=True)
    notes = [
        "Duplicates dropped while loading are not stored in the warehouse: each messages partition's "
        "metadata in Dagster has them (duplicates_dropped)."
    ]
    if unexpected:
        notes.append(
            f"{len(unexpected)} day(s) came back empty although the account's history expected messages "
            f"(its weekday had messages in most of the weeks before; marked ×): {_listed(unexpected)}. "
            "An outage, or a setting: run `de-pipeline check`."
        )
    if quiet_days:
        notes.append(f"{len(quiet_days)} day(s) loaded without any message, like their weekday before, or "
                     f"without a history to tell: {_listed(quiet_days)}.")  # fmt: skip
    if not_loaded:
        notes.append(f"{len(not_loaded)} day(s) not loaded: {_listed(not_loaded)}.")
    figure = laid_out(figure, 400, hovermode="x unified", legend=False, days=list(frame["day"].dt.date))
    return Chart(name, title, source, figure, tuple(notes), wide=True)


def _mark_at_zero(figure: Figure, days: list[str], name: str, marker: dict[str, object], hover: str) -> None:
    """A marker at 0 on each of `days` in the upper plot (a bar of 0 is not seen)."""
    if days:
        figure.add_trace(
            scatter(
                x=days,
                y=[0] * len(days),
                name=name,
                mode="markers",
                marker=marker,
                hovertemplate=hover,
                cliponaxis=False,
            ),
            row=1,
            col=1,
        )


def _listed(days: list[str]) -> str:
    return ", ".join(days[:10]) + (" …" if len(days) > 10 else "")
