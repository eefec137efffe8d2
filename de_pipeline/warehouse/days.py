"""The calendar days a run covers, as epoch-millisecond bounds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb


@dataclass(frozen=True)
class DayBounds:
    """One calendar day of DE_TIMEZONE: `start_ms <= ts < end_ms` (23, 24 or 25 hours)."""

    day: date
    start_ms: int
    end_ms: int


def day_bounds_table(connection: duckdb.DuckDBPyConnection, days: list[DayBounds]) -> None:
    """(Re)create the temp table day_bounds(day, start_ms, end_ms) that the SQL files join."""
    connection.execute(
        "CREATE OR REPLACE TEMP TABLE day_bounds (day DATE, start_ms BIGINT, end_ms BIGINT)"
    )
    connection.executemany(
        "INSERT INTO day_bounds VALUES (?, ?, ?)",
        [(bounds.day, bounds.start_ms, bounds.end_ms) for bounds in days],
    )
