"""What `de-pipeline demo` and `backfill` print: each table's size and a few headlines."""

from __future__ import annotations

import duckdb

TABLES = (
    "messages",
    "rejected_messages",
    "sentiment_trends",
    "intent_confidence",
    "redaction_entity_counts",
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
    return {
        title: connection.execute(query).df().to_string(index=False)
        for title, query in HEADLINES.items()
    }
