"""Summaries of the tables: what `de-pipeline demo` prints, and the numbers and preview rows
that the Dagster UI shows for each partition."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from typing import Any

import duckdb

from de_pipeline.warehouse.schema import one_row
from de_pipeline.warehouse.tables import OF_THE_DAYS, TABLES, DailyTable

HEADLINES = {
    "Accounts": """
        SELECT provider AS account, count(*) AS messages, count(DISTINCT customersessionid) AS journeys,
               min(day) AS first_day, max(day) AS last_day
        FROM messages GROUP BY provider ORDER BY provider""",
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
        rows, first, last = one_row(
            connection.execute(f"SELECT count(*), min({table.day_column}), max({table.day_column}) FROM {table.name}")
        )
        sizes.append((table.name, rows, str(first or "-"), str(last or "-")))
    return sizes


def headlines(connection: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Each headline query's result as a small text table."""
    result = {}
    for title, query in HEADLINES.items():
        cursor = connection.execute(query)
        result[title] = markdown_table([c[0] for c in cursor.description], cursor.fetchall())
    return result


def daily_metrics(
    connection: duckdb.DuckDBPyConnection, table: DailyTable, account: str, first_day: date, last_day: date
) -> dict[date, dict[str, float | int]]:
    """{day: {metric: value}} of the table's row count and `metrics` for the account's days
    (NaN where a value is undefined)."""
    cursor = connection.execute(
        f'SELECT day, count(*) AS "dagster/partition_row_count", {table.metrics} '
        f"FROM {table.name} WHERE {OF_THE_DAYS} GROUP BY day",
        {"provider": account, "first_day": first_day, "last_day": last_day},
    )
    names = [column[0] for column in cursor.description][1:]
    return {day: {name: _number(value) for name, value in zip(names, values)} for day, *values in cursor.fetchall()}


def _number(value: Any) -> float | int:
    if value is None:
        return math.nan
    return value if isinstance(value, int) else float(value)


def top_rows(
    connection: duckdb.DuckDBPyConnection, table: str, account: str, first_day: date, last_day: date, rows: int
) -> list[dict[str, Any]]:
    """The first rows of `table` for the account's days, each as {column: value}. Data, not
    text to render: the vendor's strings in them are whatever the vendor sent."""
    cursor = connection.execute(
        f"SELECT * FROM {table} WHERE {OF_THE_DAYS} ORDER BY ALL LIMIT {int(rows)}",
        {"provider": account, "first_day": first_day, "last_day": last_day},
    )
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows as a Markdown table, aligned so that it reads in a terminal too, numbers right."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(name), 3, *(len(row[i]) for row in cells)]) for i, name in enumerate(columns)]
    numeric = [bool(rows) and all(isinstance(row[i], int | float) for row in rows) for i in range(len(columns))]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric)) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" if n else "-" * (w + 2) for w, n in zip(widths, numeric)) + "|"
    return "\n".join([line(columns), rule, *(line(row) for row in cells)])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value).replace("|", "\\|").replace("\n", " ")
