"""Data-quality checks over a range of days, as SQL. Dagster turns them into asset checks.

Each check is declared once, in MESSAGE_CHECKS (on `messages`) or by a daily table's
Reconcile entry in the registry (tables.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb

from de_pipeline.warehouse.empty_days import COMPARABLE_WEEKS, DAY_HISTORY, UNEXPECTED
from de_pipeline.warehouse.schema import named_parameters, one_row
from de_pipeline.warehouse.settings import WarehouseSettings
from de_pipeline.warehouse.tables import DailyTable


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    description: str
    blocking: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MessageCheck:
    """A check of `messages` for $first_day..$last_day (the temp table day_bounds holds the
    days). `query` gives one row of named values, which become the check's metadata;
    `passes` is a SQL condition over them. A blocking check that fails stops the tables
    built from messages (Dagster severity ERROR); the others warn (WARN)."""

    name: str
    description: str
    query: str
    passes: str
    blocking: bool = True


MESSAGE_CHECKS = (
    MessageCheck(
        "message_key_unique",
        "message_key is unique",
        "SELECT count(*) - count(DISTINCT message_key) AS offending_rows FROM messages "
        "WHERE provider = $provider AND day BETWEEN $first_day AND $last_day",
        "offending_rows = 0",
    ),
    MessageCheck(
        "ts_inside_partition",
        "every ts lies in its day's half-open window",
        "SELECT count(*) AS offending_rows FROM messages AS m JOIN day_bounds AS b USING (day) "
        "WHERE m.provider = $provider AND (m.ts_ms < b.start_ms OR m.ts_ms >= b.end_ms)",
        "offending_rows = 0",
    ),
    MessageCheck(
        "score_in_unit_range",
        "score is in [0, 1]",
        "SELECT count(*) AS offending_rows FROM messages "
        "WHERE provider = $provider AND day BETWEEN $first_day AND $last_day "
        "AND (score < 0 OR score > 1)",
        "offending_rows = 0",
    ),
    MessageCheck(
        "sentiment_finite",
        "sentiment is a finite number",
        "SELECT count(*) AS offending_rows FROM messages "
        "WHERE provider = $provider AND day BETWEEN $first_day AND $last_day "
        "AND NOT isfinite(sentiment)",
        "offending_rows = 0",
    ),
    MessageCheck(
        "unparsed_sessionid_share",
        "at most DE_UNPARSED_SESSIONID_THRESHOLD of the sessionids cannot be split into conversation.segment",
        "SELECT count(*) FILTER (WHERE conversation_id IS NULL) AS unparsed, "
        "round(coalesce(count(*) FILTER (WHERE conversation_id IS NULL) / nullif(count(*), 0), 0), 6) AS share, "
        "$threshold AS threshold FROM messages WHERE provider = $provider AND day BETWEEN $first_day AND $last_day",
        "share <= threshold",
        blocking=False,
    ),
    MessageCheck(
        "no_unexpected_empty_days",
        f"no day came back empty where the account's history expected messages (its weekday had "
        f"messages in most of the {COMPARABLE_WEEKS} weeks before: empty_days.py)",
        "SELECT count(*) AS unexpected_empty_days, "
        "coalesce(string_agg(CAST(day AS VARCHAR), ', ' ORDER BY day), 'none') AS days "
        f"FROM ({DAY_HISTORY}) WHERE provider = $provider AND {UNEXPECTED}",
        "unexpected_empty_days = 0",
        blocking=False,
    ),
    MessageCheck(
        "no_rejected_records",
        "no record went to rejected_messages",
        "SELECT count(*) AS rejected FROM rejected_messages "
        "WHERE provider = $provider AND archive_day BETWEEN $first_day AND $last_day",
        "rejected = 0",
        blocking=False,
    ),
)


def message_checks(
    connection: duckdb.DuckDBPyConnection, first_day: date, last_day: date, settings: WarehouseSettings
) -> list[CheckOutcome]:
    """Every check of MESSAGE_CHECKS over the days. Needs the temp table day_bounds."""
    params = {
        "provider": settings.account,
        "first_day": first_day,
        "last_day": last_day,
        "threshold": settings.unparsed_sessionid_threshold,
    }
    outcomes = []
    for check in MESSAGE_CHECKS:
        cursor = connection.execute(
            f"SELECT *, ({check.passes}) AS passed FROM ({check.query})", named_parameters(check.query, params)
        )
        *values, passed = one_row(cursor)
        metadata = dict(zip([c[0] for c in cursor.description][:-1], values))
        outcomes.append(CheckOutcome(check.name, bool(passed), check.description, check.blocking, metadata))
    return outcomes


# Per day of day_bounds: the table's own count next to what its upstream holds. One shape
# for every daily table; the registry entry says what is counted on each side.
RECONCILE = """
SELECT b.day, coalesce(t.n, 0), coalesce(u.n, 0) FROM day_bounds AS b
LEFT JOIN (SELECT day, {counted} AS n FROM {table} WHERE provider = $provider AND {where} GROUP BY day) AS t USING (day)
LEFT JOIN ({expected}) AS u USING (day)
ORDER BY b.day
"""


def reconcile(connection: duckdb.DuckDBPyConnection, table: DailyTable, settings: WarehouseSettings) -> CheckOutcome:
    """Does `table` account for everything of the range's days it is built from? Needs day_bounds."""
    spec = table.reconcile
    assert spec is not None  # DailyTable requires one
    query = RECONCILE.format(counted=spec.counted, table=table.name, where=spec.where, expected=spec.expected)
    rows = connection.execute(
        query, named_parameters(query, {"provider": settings.account, "placeholder_regex": settings.placeholder_regex})
    ).fetchall()
    mismatched = {day.isoformat(): [counted, expected] for day, counted, expected in rows if counted != expected}
    return CheckOutcome(
        "counts_reconcile",
        not mismatched,
        f"{table.name}'s counts add up to {table.upstream}, day by day",
        metadata={"days": len(rows), "mismatched_days": mismatched or "none"},
    )
