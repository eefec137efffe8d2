"""The numbers behind the dashboard: one small aggregate query per chart, over the days
$first_day..$last_day, from the warehouse's tables. Each returns at most a few rows per day
(never message rows), so the dashboard stays small whatever the volume.

DuckDB only: dashboard/ turns the frames into charts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import duckdb
import pandas as pd

from de_pipeline.warehouse.empty_days import DAY_HISTORY, UNEXPECTED, ensure_loaded_days
from de_pipeline.warehouse.extensions import sql_string
from de_pipeline.warehouse.schema import one_row
from de_pipeline.warehouse.tables import TABLES

# Customer messages per day and channel: the mean sentiment of those that have one, and
# the share of all of them that are negative (as the demo's headline computes it).
SENTIMENT_BY_CHANNEL = """
SELECT day, coalesce(sessionchannel, '(no channel)') AS channel,
       CAST(sum(messages) AS BIGINT) AS messages,
       sum(avg_sentiment * (messages - without_sentiment))
           / nullif(sum(messages - without_sentiment), 0) AS avg_sentiment,
       sum(negative) / sum(messages) AS negative_share
FROM sentiment_trends
WHERE sendertype = 'customer' AND day BETWEEN $first_day AND $last_day
GROUP BY ALL ORDER BY channel, day
"""

# Every sender type per day (customer, bot, agent, and any other the API sends).
SENTIMENT_BY_SENDER = """
SELECT day, coalesce(sendertype, '(no sender type)') AS sendertype,
       CAST(sum(messages) AS BIGINT) AS messages,
       sum(avg_sentiment * (messages - without_sentiment))
           / nullif(sum(messages - without_sentiment), 0) AS avg_sentiment
FROM sentiment_trends
WHERE day BETWEEN $first_day AND $last_day
GROUP BY ALL ORDER BY sendertype, day
"""

# The six topics with the most messages: per day their p10, median and p90 confidence,
# the day's low-confidence share, and the window's (topic_low_share).
TOP_TOPIC_CONFIDENCE = """
WITH window_rows AS (
    SELECT * FROM intent_confidence
    WHERE topic IS NOT NULL AND day BETWEEN $first_day AND $last_day
), top_topics AS (
    SELECT topic, sum(messages) AS topic_messages, sum(low_confidence) / sum(messages) AS topic_low_share
    FROM window_rows GROUP BY topic ORDER BY topic_messages DESC, topic LIMIT 6
)
SELECT day, topic, messages, p10_score, p50_score, p90_score,
       low_confidence / messages AS low_confidence_share,
       CAST(topic_messages AS BIGINT) AS topic_messages, topic_low_share
FROM window_rows JOIN top_topics USING (topic)
ORDER BY topic_messages DESC, topic, day
"""

# The ten topics with the lowest mean confidence over the days.
LEAST_CONFIDENT_INTENTS = """
SELECT topic, CAST(sum(messages) AS BIGINT) AS messages,
       sum(avg_score * messages) / sum(messages) AS avg_score,
       sum(low_confidence) / sum(messages) AS low_confidence_share
FROM intent_confidence
WHERE topic IS NOT NULL AND day BETWEEN $first_day AND $last_day
GROUP BY topic ORDER BY avg_score NULLS LAST, topic LIMIT 10
"""

# Placeholders per day and entity type; '' is a placeholder whose label was not found.
REDACTED_ENTITIES = """
SELECT day, coalesce(nullif(entity_type, ''), '(no label)') AS entity_type,
       CAST(sum(occurrences) AS BIGINT) AS occurrences, CAST(sum(messages) AS BIGINT) AS messages
FROM redaction_entity_counts
WHERE day BETWEEN $first_day AND $last_day
GROUP BY ALL ORDER BY entity_type, day
"""

# The ten most frequent journey paths, with their share of all journeys of the days.
JOURNEY_PATHS = """
SELECT path, count(*) AS journeys, count(*) / sum(count(*)) OVER () AS share,
       avg(sentiment_change::DECIMAL(18, 15)) AS avg_sentiment_change
FROM customer_journeys
WHERE day BETWEEN $first_day AND $last_day
GROUP BY path ORDER BY journeys DESC, path LIMIT 10
"""

HANDOFFS_PER_DAY = """
SELECT day, count(*) AS journeys, avg(handoff_to_agent::INT) AS handoff_rate,
       avg(sentiment_change::DECIMAL(18, 15)) AS avg_sentiment_change
FROM customer_journeys
WHERE day BETWEEN $first_day AND $last_day
GROUP BY day ORDER BY day
"""

# The 30 busiest agents (sendername) over the days, the least happy customers first; the
# sentiment is weighted by customer messages; `agents` counts them all.
AGENTS = """
WITH per_agent AS (
    SELECT coalesce(agent, '(no name)') AS agent, CAST(sum(segments) AS BIGINT) AS segments,
           CAST(sum(customer_messages) AS BIGINT) AS customer_messages,
           sum(avg_customer_sentiment * customer_messages)
               / nullif(sum(customer_messages) FILTER (WHERE avg_customer_sentiment IS NOT NULL), 0)
               AS avg_customer_sentiment,
           CAST(sum(handoffs_received) AS BIGINT) AS handoffs_received
    FROM agent_performance
    WHERE day BETWEEN $first_day AND $last_day
    GROUP BY ALL
), busiest AS (
    SELECT *, count(*) OVER () AS agents FROM per_agent ORDER BY segments DESC, agent LIMIT 30
)
SELECT * FROM busiest ORDER BY avg_customer_sentiment NULLS LAST, agent
"""

# Every day of the window, also those without messages: messages stored, records rejected
# by the day they arrived in (duplicates are not stored in the warehouse), whether a run
# loaded it, and the accounts for which it came back empty although their history expected
# messages (empty_days.py).
DATA_HEALTH = f"""
WITH days AS (
    SELECT CAST(range AS DATE) AS day
    FROM range(CAST($first_day AS TIMESTAMP), CAST($last_day AS TIMESTAMP) + INTERVAL 1 DAY, INTERVAL 1 DAY)
), stored AS (
    SELECT day, count(*) AS messages FROM messages WHERE day BETWEEN $first_day AND $last_day GROUP BY day
), rejected AS (
    SELECT archive_day AS day, count(*) AS rejected FROM rejected_messages
    WHERE archive_day BETWEEN $first_day AND $last_day GROUP BY archive_day
), judged AS (
    SELECT day, count(*) FILTER (WHERE {UNEXPECTED}) AS unexpected_empty FROM ({DAY_HISTORY}) GROUP BY day
)
SELECT day, coalesce(messages, 0) AS messages, coalesce(rejected, 0) AS rejected,
       judged.day IS NOT NULL AS loaded, coalesce(unexpected_empty, 0) AS unexpected_empty
FROM days LEFT JOIN stored USING (day) LEFT JOIN rejected USING (day) LEFT JOIN judged USING (day)
ORDER BY day
"""

# The headline numbers, for the last loaded day and for the whole window.
KPIS = """
WITH periods(period, first_day, last_day) AS (
    VALUES ('last day', $last_day, $last_day), ('window', $first_day, $last_day)
)
SELECT period,
       (SELECT count(*) FROM messages WHERE day BETWEEN first_day AND last_day) AS messages,
       (SELECT count(*) FROM customer_journeys WHERE day BETWEEN first_day AND last_day) AS journeys,
       (SELECT avg(handoff_to_agent::INT) FROM customer_journeys
        WHERE day BETWEEN first_day AND last_day) AS handoff_rate,
       (SELECT sum(avg_sentiment * (messages - without_sentiment)) / nullif(sum(messages - without_sentiment), 0)
        FROM sentiment_trends
        WHERE sendertype = 'customer' AND day BETWEEN first_day AND last_day) AS customer_sentiment,
       (SELECT sum(low_confidence) / nullif(sum(messages), 0) FROM intent_confidence
        WHERE topic IS NOT NULL AND day BETWEEN first_day AND last_day) AS low_confidence_share
FROM periods ORDER BY period
"""

QUERIES: dict[str, str] = {
    "sentiment_by_channel": SENTIMENT_BY_CHANNEL,
    "sentiment_by_sender": SENTIMENT_BY_SENDER,
    "top_topic_confidence": TOP_TOPIC_CONFIDENCE,
    "least_confident_intents": LEAST_CONFIDENT_INTENTS,
    "redacted_entities": REDACTED_ENTITIES,
    "journey_paths": JOURNEY_PATHS,
    "handoffs_per_day": HANDOFFS_PER_DAY,
    "agents": AGENTS,
    "data_health": DATA_HEALTH,
    "kpis": KPIS,
}


@dataclass(frozen=True)
class DashboardData:
    """The frames of QUERIES for first_day..last_day; `last_day` is the last loaded day."""

    first_day: date
    last_day: date
    frames: dict[str, pd.DataFrame]
    source: str | None  # where the data came from, as the warehouse records it

    @property
    def days(self) -> list[date]:
        """Each day of first_day..last_day, those without data too."""
        return [self.first_day + timedelta(days=n) for n in range((self.last_day - self.first_day).days + 1)]


def dashboard_data(
    connection: duckdb.DuckDBPyConnection, days: int, account: str | None = None
) -> DashboardData | None:
    """The `days` days up to the last loaded day (the latest day a run loaded, with messages
    or without), from the first loaded day if that is later, of every account or of
    `account`; None when the warehouse holds no message (of it) yet."""
    ensure_loaded_days(connection)
    if account is not None:
        scope_to_account(connection, account)
    loaded_from, last_day, any_message = one_row(connection.execute(LOADED_SPAN))
    if not any_message:
        return None
    first_day = max(loaded_from, last_day - timedelta(days=days - 1))
    params = {"first_day": first_day, "last_day": last_day}
    frames = {name: connection.execute(query, params).df() for name, query in QUERIES.items()}
    source = one_row(connection.execute("SELECT any_value(value) FROM warehouse_meta WHERE key = 'source'"))[0]
    return DashboardData(first_day, last_day, frames, source)


def scope_to_account(connection: duckdb.DuckDBPyConnection, account: str) -> None:
    """Make each table of the warehouse show only `account`'s rows to this connection: a
    temp view of its name in front of it (an unqualified name finds a temp view first), so
    that every query above runs unchanged. Nothing is written to the warehouse."""
    database = one_row(connection.execute("SELECT current_database()"))[0]
    present = {
        name
        for (name,) in connection.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
    }
    for table in TABLES:
        if table.name in present:
            connection.execute(
                f'CREATE OR REPLACE TEMP VIEW {table.name} AS SELECT * FROM "{database}".main.{table.name} '
                f"WHERE provider = {sql_string(account)}"
            )


def empty_loaded_days(connection: duckdb.DuckDBPyConnection) -> list[date]:
    """The days runs loaded, when none of them held a message (what a page without data says)."""
    ensure_loaded_days(connection)
    return [day for (day,) in connection.execute("SELECT DISTINCT day FROM loaded_days ORDER BY day").fetchall()]


# The first and last day loaded (with messages or without), and whether any message is stored
LOADED_SPAN = """
SELECT min(day), max(day), bool_or(has_messages) FROM (
    SELECT min(day) AS day, true AS has_messages FROM messages
    UNION ALL SELECT max(day), true FROM messages
    UNION ALL SELECT min(day), false FROM loaded_days
    UNION ALL SELECT max(day), false FROM loaded_days
) WHERE day IS NOT NULL
"""
