"""Refreshing a daily table of the registry (tables.py) for a run's days, in SQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import duckdb

from de_pipeline.warehouse.connection import transaction, write_conflicts_retried
from de_pipeline.warehouse.days import in_steps
from de_pipeline.warehouse.schema import one_row, run_sql
from de_pipeline.warehouse.settings import WarehouseSettings
from de_pipeline.warehouse.tables import OF_THE_DAYS, DailyTable


def refresh_aggregate(
    connection: duckdb.DuckDBPyConnection,
    table: DailyTable,
    first_day: date,
    last_day: date,
    settings: WarehouseSettings,
) -> int:
    """Recompute `table` for the days of the account `settings.account` from `messages`,
    in one transaction; returns its rows.

    Inside it, the table's SQL runs once per step of the run (`day_steps`: one day), so
    DuckDB holds about one day's messages at a time, whatever the length of the run, and
    the rows are the same as from one step over the whole run.
    """
    params = {
        "provider": settings.account,
        "first_day": first_day,
        "last_day": last_day,
        "low_confidence": settings.low_confidence,
        "placeholder_regex": settings.placeholder_regex,
        "label_regex": settings.label_regex,
    }

    def recompute() -> int:
        with transaction(connection):
            if table.prelude is not None:
                run_sql(connection, table.prelude, params)
            for step in day_steps(table, first_day, last_day):
                run_sql(connection, table.name, {**params, **step})
            return one_row(
                connection.execute(
                    f"SELECT count(*) FROM {table.name} WHERE {OF_THE_DAYS}",
                    {"provider": settings.account, "first_day": first_day, "last_day": last_day},
                )
            )[0]

    return write_conflicts_retried(settings, recompute)


def day_steps(table: DailyTable, first_day: date, last_day: date) -> Iterator[dict[str, Any]]:
    """The parameters of each step of a run over first_day..last_day (days.in_steps).

    A "days" table's step replaces its days (first_day..last_day), from `reach_back` days
    before the run. A "journeys" table's run replaces the rows of the run's journeys first
    (its prelude), then each step builds the journeys of step_from..step_to (the day they
    were touched or started), the first step also those `reach_back` days before the run.
    So every journey is built once, from the same messages or segments as by one step over
    the whole run.
    """
    if table.steps == "days":
        for first, last in in_steps(first_day - timedelta(days=table.reach_back), last_day):
            yield {"first_day": first, "last_day": last}
        return
    for first, last in in_steps(first_day, last_day):
        reach = table.reach_back if first == first_day else 0
        yield {"step_from": first - timedelta(days=reach), "step_to": last}
