"""Summaries of the tables: what `de-pipeline demo` prints, and the numbers and previews
that the Dagster UI shows for each partition."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from typing import Any

import duckdb

TABLES = (
    "messages",
    "rejected_messages",
    "sentiment_trends",
    "intent_confidence",
    "redaction_entity_counts",
    "conversation_segments",
    "customer_journeys",
)

HEADLINES = {
    "Sentiment by channel (customer messages)": """
        SELECT sessionchannel AS channel, CAST(sum(messages) AS BIGINT) AS messages,
               round(sum(avg_sentiment * (messages - without_sentiment))
                     / nullif(sum(messages - without_sentiment), 0), 3) AS avg_sentiment,
               round(sum(negative) / sum(messages), 3) AS negative_share
        FROM sentiment_trends WHERE sendertype = 'customer'
        GROUP BY ALL ORDER BY avg_sentiment""",
    "Least confident intents": """
        SELECT topic, CAST(sum(messages) AS BIGINT) AS messages,
               round(sum(avg_score * messages) / sum(messages), 3) AS avg_score,
               round(sum(low_confidence) / sum(messages), 3) AS low_confidence_share
        FROM intent_confidence WHERE topic IS NOT NULL
        GROUP BY ALL ORDER BY avg_score LIMIT 5""",
    "Customer journeys: handoff rate and sentiment change": """
        SELECT count(*) AS journeys,
               round(avg(handoff_to_agent::INT), 3) AS handoff_rate,
               round(avg(transfers), 3) AS transfers_per_journey,
               round(avg(sentiment_change), 3) AS avg_sentiment_change,
               round(avg(ended_with_survey::INT), 3) AS survey_share
        FROM customer_journeys""",
    "Top redacted entity types": """
        SELECT entity_type, CAST(sum(occurrences) AS BIGINT) AS occurrences,
               CAST(sum(messages) AS BIGINT) AS messages
        FROM redaction_entity_counts GROUP BY ALL ORDER BY occurrences DESC LIMIT 5""",
}


def table_sizes(connection: duckdb.DuckDBPyConnection) -> list[tuple[str, int, str, str]]:
    """(table, rows, first day, last day) for each table."""
    sizes = []
    for table in TABLES:
        day_column = "archive_day" if table == "rejected_messages" else "day"
        rows, first, last = connection.execute(
            f"SELECT count(*), min({day_column}), max({day_column}) FROM {table}"
        ).fetchone()
        sizes.append((table, rows, str(first or "-"), str(last or "-")))
    return sizes


def headlines(connection: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Each headline query's result as a small text table."""
    result = {}
    for title, query in HEADLINES.items():
        cursor = connection.execute(query)
        result[title] = text_table([c[0] for c in cursor.description], cursor.fetchall())
    return result


# Per day, the numbers of each daily table that the UI plots across partitions.
DAILY_METRICS = {
    "sentiment_trends": """SELECT day, sum(messages) AS messages,
        round(sum(avg_sentiment * (messages - without_sentiment))
              / nullif(sum(messages - without_sentiment), 0), 4) AS avg_sentiment
        FROM sentiment_trends""",
    "intent_confidence": """SELECT day, sum(messages) AS messages, sum(low_confidence) AS low_confidence,
        round(sum(avg_score * messages) FILTER (WHERE topic IS NOT NULL)
              / nullif(sum(messages) FILTER (WHERE topic IS NOT NULL), 0), 4) AS avg_score
        FROM intent_confidence""",
    "redaction_entity_counts": "SELECT day, sum(occurrences) AS occurrences FROM redaction_entity_counts",
    "conversation_segments": """SELECT day, count(*) AS segments, sum(messages) AS messages
        FROM conversation_segments""",
    "customer_journeys": """SELECT day, count(*) AS journeys, avg(handoff_to_agent::INT) AS handoff_share,
        avg(transfers) AS avg_transfers, favg(sentiment_change) AS avg_sentiment_change
        FROM customer_journeys""",
}


def daily_metrics(
    connection: duckdb.DuckDBPyConnection, table: str, first_day: date, last_day: date
) -> dict[date, dict[str, float]]:
    """{day: {metric: value}} for the days of `table` (NaN where a value is undefined)."""
    cursor = connection.execute(
        DAILY_METRICS[table] + " WHERE day BETWEEN $first_day AND $last_day GROUP BY day",
        {"first_day": first_day, "last_day": last_day},
    )
    names = [column[0] for column in cursor.description][1:]
    return {
        day: {name: math.nan if value is None else float(value) for name, value in zip(names, values)}
        for day, *values in cursor.fetchall()
    }


def top_rows(
    connection: duckdb.DuckDBPyConnection, table: str, first_day: date, last_day: date, rows: int
) -> str:
    """The first rows of `table` for the days, as a Markdown table."""
    cursor = connection.execute(
        f"SELECT * FROM {table} WHERE day BETWEEN $first_day AND $last_day ORDER BY ALL LIMIT {int(rows)}",
        {"first_day": first_day, "last_day": last_day},
    )
    columns = [column[0] for column in cursor.description]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in cursor.fetchall()]
    return "\n".join(lines)


def text_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows as aligned plain text, numbers to the right."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(name), *(len(row[i]) for row in cells)]) for i, name in enumerate(columns)]
    numeric = [bool(rows) and all(isinstance(row[i], int | float) for row in rows) for i in range(len(columns))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(columns), *(line(row) for row in cells)])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value).replace("|", "\\|").replace("\n", " ")
