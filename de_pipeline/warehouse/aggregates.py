"""Daily tables derived from `messages` in SQL, one partition range at a time."""

from __future__ import annotations

from datetime import date

import duckdb

from de_pipeline.warehouse.connection import transaction
from de_pipeline.warehouse.schema import run_sql
from de_pipeline.warehouse.settings import WarehouseSettings

AGGREGATES = ("sentiment_trends", "intent_confidence", "redaction_entity_counts")
# Keyed by the day a journey started; a run also completes journeys that cross into its days.
JOURNEY_TABLES = ("conversation_segments", "customer_journeys")
# SQL that a table's own file needs first (temp tables), by table.
PRELUDES = {"conversation_segments": "journey_candidates"}


def refresh_aggregate(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    first_day: date,
    last_day: date,
    settings: WarehouseSettings,
) -> int:
    """Recompute `table` for the days from `messages` in one transaction; returns its rows."""
    params = {
        "first_day": first_day,
        "last_day": last_day,
        "low_confidence": settings.low_confidence,
        "placeholder_regex": settings.placeholder_regex,
        "label_regex": settings.label_regex,
    }
    with transaction(connection):
        if table in PRELUDES:
            run_sql(connection, PRELUDES[table], params)
        run_sql(connection, table, params)
        return connection.execute(
            f"SELECT count(*) FROM {table} WHERE day BETWEEN $first_day AND $last_day",
            {"first_day": first_day, "last_day": last_day},
        ).fetchone()[0]
