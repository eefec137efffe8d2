"""Daily tables derived from `messages` in SQL, one partition range at a time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import duckdb

from de_pipeline.warehouse.connection import transaction
from de_pipeline.warehouse.schema import run_sql
from de_pipeline.warehouse.settings import WarehouseSettings

AGGREGATES = ("sentiment_trends", "intent_confidence", "redaction_entity_counts")
# Keyed by the day a journey started; a run also completes journeys that cross into its days.
JOURNEY_TABLES = ("conversation_segments", "customer_journeys")
# SQL that a table's own file needs first, once per run (temp tables), by table.
PRELUDES = {"conversation_segments": "journey_candidates"}


def refresh_aggregate(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    first_day: date,
    last_day: date,
    settings: WarehouseSettings,
) -> int:
    """Recompute `table` for the days from `messages` in one transaction; returns its rows.

    Inside it, the table's SQL runs once per day (`day_steps`), so DuckDB holds about one
    day's messages at a time, whatever the length of the run, and the rows are the same as
    from one step over the whole run.
    """
    params = {
        "first_day": first_day,
        "last_day": last_day,
        "low_confidence": settings.low_confidence,
        "placeholder_regex": settings.placeholder_regex,
        "label_regex": settings.label_regex,
    }
    with transaction(connection):
        if table in PRELUDES:
            run_sql(connection, PRELUDES[table], params)
        for step in day_steps(table, first_day, last_day):
            run_sql(connection, table, {**params, **step})
        return connection.execute(
            f"SELECT count(*) FROM {table} WHERE day BETWEEN $first_day AND $last_day",
            {"first_day": first_day, "last_day": last_day},
        ).fetchone()[0]


def day_steps(table: str, first_day: date, last_day: date) -> Iterator[dict[str, Any]]:
    """The parameters of each daily step of a run over first_day..last_day.

    A daily aggregate's day depends on that day's messages only. The journey tables also
    rebuild journeys just before the run (journey_candidates.sql, customer_journeys.sql):
    the first step takes those too, each later step the journeys of its own day. So every
    journey is rebuilt once, from the same messages or segments as by one step over the
    whole run.
    """
    day = first_day
    while day <= last_day:
        step: dict[str, Any] = {"first_day": day, "last_day": day}
        if table == "conversation_segments":  # journeys first seen in the run from this day
            step["touched_from"] = first_day - timedelta(days=1) if day == first_day else day
        if table == "customer_journeys":  # journeys that started from this day
            step["started_from"] = first_day - timedelta(days=2) if day == first_day else day
        yield step
        day += timedelta(days=1)
