"""Data-quality checks over a range of days, as SQL. Dagster turns them into asset checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb

from de_pipeline.warehouse.settings import WarehouseSettings


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


# Each query returns the number of offending rows for $first_day..$last_day.
MESSAGE_CHECKS = {
    "message_key_unique": (
        "message_key is unique",
        "SELECT count(*) - count(DISTINCT message_key) FROM messages "
        "WHERE day BETWEEN $first_day AND $last_day",
    ),
    "ts_inside_partition": (
        "every ts lies in its day's half-open window",
        "SELECT count(*) FROM messages AS m JOIN day_bounds AS b USING (day) "
        "WHERE m.ts_ms < b.start_ms OR m.ts_ms >= b.end_ms",
    ),
    "score_in_unit_range": (
        "score is in [0, 1]",
        "SELECT count(*) FROM messages WHERE day BETWEEN $first_day AND $last_day "
        "AND (score < 0 OR score > 1)",
    ),
    "sentiment_finite": (
        "sentiment is a finite number",
        "SELECT count(*) FROM messages WHERE day BETWEEN $first_day AND $last_day "
        "AND NOT isfinite(sentiment)",
    ),
}


def message_checks(
    connection: duckdb.DuckDBPyConnection, first_day: date, last_day: date
) -> list[CheckOutcome]:
    """The blocking checks of `messages`. Needs the temp table day_bounds of the range."""
    span = {"first_day": first_day, "last_day": last_day}
    outcomes = []
    for name, (description, query) in MESSAGE_CHECKS.items():
        params = span if "$first_day" in query else None
        offending = connection.execute(query, params).fetchone()[0]
        outcomes.append(CheckOutcome(name, offending == 0, description, {"offending_rows": offending}))
    return outcomes


def message_warnings(
    connection: duckdb.DuckDBPyConnection,
    first_day: date,
    last_day: date,
    settings: WarehouseSettings,
) -> list[CheckOutcome]:
    """Warnings on `messages`: too many unparseable sessionids, and rejected records."""
    span = {"first_day": first_day, "last_day": last_day}
    stored, unparsed = connection.execute(
        "SELECT count(*), count(*) FILTER (WHERE conversation_id IS NULL) FROM messages "
        "WHERE day BETWEEN $first_day AND $last_day",
        span,
    ).fetchone()
    share = unparsed / stored if stored else 0.0
    rejected = connection.execute(
        "SELECT count(*) FROM rejected_messages WHERE archive_day BETWEEN $first_day AND $last_day",
        span,
    ).fetchone()[0]
    threshold = settings.unparsed_sessionid_threshold
    return [
        CheckOutcome(
            "unparsed_sessionid_share",
            share <= threshold,
            f"at most {threshold:.1%} of sessionids cannot be split into conversation.segment",
            {"unparsed": unparsed, "share": round(share, 6), "threshold": threshold},
        ),
        CheckOutcome(
            "no_rejected_records",
            rejected == 0,
            "no record went to rejected_messages",
            {"rejected": rejected},
        ),
    ]


# Per day: the table's own message count next to what `messages` holds (or should produce).
RECONCILIATION = {
    "sentiment_trends": """
        SELECT b.day, coalesce(t.n, 0), coalesce(m.n, 0) FROM day_bounds AS b
        LEFT JOIN (SELECT day, sum(messages) AS n FROM sentiment_trends GROUP BY day) AS t USING (day)
        LEFT JOIN (SELECT day, count(*) AS n FROM messages GROUP BY day) AS m USING (day)""",
    "intent_confidence": """
        SELECT b.day, coalesce(t.n, 0), coalesce(m.n, 0) FROM day_bounds AS b
        LEFT JOIN (SELECT day, sum(messages) AS n FROM intent_confidence GROUP BY day) AS t USING (day)
        LEFT JOIN (SELECT day, count(*) AS n FROM messages GROUP BY day) AS m USING (day)""",
    # placeholders counted without grouping by label: a placeholder whose label was lost
    # or split differently shows up as a difference
    "redaction_entity_counts": """
        SELECT b.day, coalesce(t.n, 0), coalesce(m.n, 0) FROM day_bounds AS b
        LEFT JOIN (SELECT day, sum(occurrences) AS n FROM redaction_entity_counts
                   WHERE entity_type <> '' GROUP BY day) AS t USING (day)
        LEFT JOIN (SELECT day, sum(len(regexp_extract_all(text, $placeholder_regex))) AS n
                   FROM messages WHERE day IN (SELECT day FROM day_bounds) GROUP BY day) AS m
            USING (day)""",
    # every message of the day's journeys is in one of their segments
    "conversation_segments": """
        SELECT b.day, coalesce(t.n, 0), coalesce(m.n, 0) FROM day_bounds AS b
        LEFT JOIN (SELECT day, sum(messages) AS n FROM conversation_segments GROUP BY day) AS t USING (day)
        LEFT JOIN (SELECT j.day, count(*) AS n FROM messages AS msg
                   JOIN (SELECT DISTINCT day, customersessionid FROM conversation_segments
                         WHERE day IN (SELECT day FROM day_bounds)) AS j USING (customersessionid)
                   WHERE msg.sessionid IS NOT NULL GROUP BY j.day) AS m USING (day)""",
    "customer_journeys": """
        SELECT b.day, coalesce(t.n, 0), coalesce(m.n, 0) FROM day_bounds AS b
        LEFT JOIN (SELECT day, sum(segments) AS n FROM customer_journeys GROUP BY day) AS t USING (day)
        LEFT JOIN (SELECT day, count(*) AS n FROM conversation_segments GROUP BY day) AS m USING (day)""",
}


def reconcile(
    connection: duckdb.DuckDBPyConnection, table: str, settings: WarehouseSettings
) -> CheckOutcome:
    """Does `table` account for every message of the range's days? Needs day_bounds."""
    query = RECONCILIATION[table]
    params = {"placeholder_regex": settings.placeholder_regex} if "$placeholder_regex" in query else None
    rows = connection.execute(query + " ORDER BY b.day", params).fetchall()
    mismatched = {day.isoformat(): [table_count, expected] for day, table_count, expected in rows if table_count != expected}
    return CheckOutcome(
        "counts_reconcile",
        not mismatched,
        f"{table}'s counts add up to what it is built from, day by day",
        {"days": len(rows), "mismatched_days": mismatched or "none"},
    )
