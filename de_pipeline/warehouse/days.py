"""The calendar days a run covers, as epoch-millisecond bounds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import duckdb


@dataclass(frozen=True)
class DayBounds:
    """One calendar day of DE_TIMEZONE: `start_ms <= ts < end_ms` (23, 24 or 25 hours)."""

    day: date
    start_ms: int
    end_ms: int


def calendar_days(first: date, last: date, timezone: str) -> list[DayBounds]:
    """Each day from `first` to `last` (included) with its bounds in `timezone`."""
    zone = ZoneInfo(timezone)
    days = []
    day = first
    while day <= last:
        start = datetime.combine(day, time(), zone)
        end = datetime.combine(day + timedelta(days=1), time(), zone)
        days.append(DayBounds(day, round(start.timestamp() * 1000), round(end.timestamp() * 1000)))
        day += timedelta(days=1)
    return days


def day_bounds_table(connection: duckdb.DuckDBPyConnection, days: list[DayBounds]) -> None:
    """(Re)create the temp table day_bounds(day, start_ms, end_ms) that the SQL files join."""
    connection.execute(
        "CREATE OR REPLACE TEMP TABLE day_bounds (day DATE, start_ms BIGINT, end_ms BIGINT)"
    )
    connection.executemany(
        "INSERT INTO day_bounds VALUES (?, ?, ?)",
        [(bounds.day, bounds.start_ms, bounds.end_ms) for bounds in days],
    )
