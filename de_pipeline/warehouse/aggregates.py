"""Daily tables derived from `messages` in SQL, one partition range at a time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import duckdb

from de_pipeline.warehouse.connection import transaction
from de_pipeline.warehouse.days import in_steps
from de_pipeline.warehouse.schema import run_sql
from de_pipeline.warehouse.settings import WarehouseSettings

AGGREGATES = ("sentiment_trends", "intent_confidence", "redaction_entity_counts")
# Keyed by the day a journey started; a run also completes journeys that cross into its days.
JOURNEY_TABLES = ("conversation_segments", "customer_journeys")
# SQL run once per run before a journey table's daily steps: the journeys the run
# rebuilds, and the removal of their old rows.
PRELUDES = {"conversation_segments": "journey_candidates", "customer_journeys": "rebuilt_journeys"}
# How many days before the run the journeys that a journey table rebuilds reach: those with
# a message in the day before the run, and those that started two days before it.
JOURNEYS_REACH_BACK = {"conversation_segments": 1, "customer_journeys": 2}


def refresh_aggregate(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    first_day: date,
    last_day: date,
    settings: WarehouseSettings,
) -> int:
    """Recompute `table` for the days from `messages` in one transaction; returns its rows.

    Inside it, the table's SQL runs once per step of the run (`day_steps`: one day), so
    DuckDB holds about one day's messages at a time, whatever the length of the run, and
    the rows are the same as from one step over the whole run.
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
    """The parameters of each step of a run over first_day..last_day (days.in_steps).

    A daily aggregate's step replaces its days (first_day..last_day). A journey table's
    run replaces the rows of the run's journeys first (PRELUDES), then each step builds
    the journeys of step_from..step_to (the day they were touched or started), the first
    step also those just before the run. So every journey is built once, from the same
    messages or segments as by one step over the whole run.
    """
    for first, last in in_steps(first_day, last_day):
        if table in JOURNEYS_REACH_BACK:
            reach = JOURNEYS_REACH_BACK[table] if first == first_day else 0
            yield {"step_from": first - timedelta(days=reach), "step_to": last}
        else:
            yield {"first_day": first, "last_day": last}
