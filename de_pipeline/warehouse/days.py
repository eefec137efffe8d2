"""The calendar days a run covers, as epoch-millisecond bounds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import duckdb

# The asset steps of a run work on this many days at a time, inside the run's one
# transaction, so that DuckDB holds one day's rows whatever the length of the run (a week
# at once ran out of the 128MB budget at 300,000 messages a day). The rows do not depend
# on it.
DAYS_PER_STEP = 1


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
    connection.execute("CREATE OR REPLACE TEMP TABLE day_bounds (day DATE, start_ms BIGINT, end_ms BIGINT)")
    connection.executemany(
        "INSERT INTO day_bounds VALUES (?, ?, ?)",
        [(bounds.day, bounds.start_ms, bounds.end_ms) for bounds in days],
    )


def in_steps(first: date, last: date) -> list[tuple[date, date]]:
    """first..last (included) as the (first, last) days of consecutive steps of DAYS_PER_STEP."""
    steps = []
    while first <= last:
        end = min(first + timedelta(days=DAYS_PER_STEP - 1), last)
        steps.append((first, end))
        first = end + timedelta(days=1)
    return steps
