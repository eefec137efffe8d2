"""One journey as the customer-session endpoint returns it, next to the warehouse's copy."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from de_pipeline.warehouse.connection import reader, session_defaults
from de_pipeline.warehouse.days import DayBounds
from de_pipeline.warehouse.messages import parse_records
from de_pipeline.warehouse.schema import ensure_schema
from de_pipeline.warehouse.settings import WarehouseSettings

TRANSCRIPT_COLUMNS = "message_key, ts, sessionid, sendertype, sendername, text, sessionchannel, chattype"


@dataclass(frozen=True)
class JourneyComparison:
    transcript: pd.DataFrame  # the live journey, one row per unique message, in time order
    missing: pd.DataFrame  # live messages the warehouse does not hold
    extra: pd.DataFrame  # warehouse messages the live journey no longer has
    warehouse_messages: int | None  # None: there is no warehouse to compare with


def compare_journey(
    settings: WarehouseSettings, customersessionid: str, files: list[str], days: list[DayBounds]
) -> JourneyComparison:
    """Parse the archived endpoint answer and compare it by message_key with the warehouse's
    rows of the journey, on a read-only connection (temp tables only)."""
    if not settings.duckdb_path.exists():
        with duckdb.connect(config=settings.duckdb_config) as connection:
            session_defaults(connection)
            ensure_schema(connection)
            return _compare(connection, customersessionid, files, days, settings, has_warehouse=False)
    with reader(settings) as connection:
        return _compare(connection, customersessionid, files, days, settings, has_warehouse=True)


def _compare(
    connection: duckdb.DuckDBPyConnection,
    customersessionid: str,
    files: list[str],
    days: list[DayBounds],
    settings: WarehouseSettings,
    *,
    has_warehouse: bool,
) -> JourneyComparison:
    parse_records(connection, files, days, settings)
    connection.execute(
        f"""CREATE OR REPLACE TEMP TABLE live AS
            SELECT {TRANSCRIPT_COLUMNS}, ts_ms FROM (
                SELECT *, epoch_ms(ts_ms)::TIMESTAMPTZ AS ts FROM parsed
                WHERE reason IS NULL AND customersessionid = $csid
                QUALIFY row_number() OVER (PARTITION BY message_key ORDER BY raw_hash) = 1)""",
        {"csid": customersessionid},
    )
    transcript = connection.execute("SELECT * EXCLUDE (ts_ms) FROM live ORDER BY ts_ms, message_key").df()
    if not has_warehouse:
        empty = transcript.iloc[0:0]
        return JourneyComparison(transcript, empty, empty, None)
    window = {"csid": customersessionid, "start_ms": days[0].start_ms, "end_ms": days[-1].end_ms}
    connection.execute(
        f"""CREATE OR REPLACE TEMP TABLE stored AS
            SELECT {TRANSCRIPT_COLUMNS}, ts_ms FROM messages
            WHERE customersessionid = $csid AND ts_ms >= $start_ms AND ts_ms < $end_ms""",
        window,
    )
    missing = connection.execute(
        "SELECT * EXCLUDE (ts_ms) FROM live ANTI JOIN stored USING (message_key) ORDER BY ts_ms"
    ).df()
    extra = connection.execute(
        "SELECT * EXCLUDE (ts_ms) FROM stored ANTI JOIN live USING (message_key) ORDER BY ts_ms"
    ).df()
    stored = connection.execute("SELECT count(*) FROM stored").fetchone()[0]
    return JourneyComparison(transcript, missing, extra, stored)
