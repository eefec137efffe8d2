"""One journey from the customer-session endpoint: next to the warehouse's copy (`de-pipeline
session`), or replacing it (the `refresh_journey` job). The journey tables themselves are
built by the registry (tables.py) like every daily table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb

from de_pipeline.warehouse.connection import (
    reader,
    reader_spill_config,
    session_defaults,
    transaction,
    write_conflicts_retried,
)
from de_pipeline.warehouse.days import DayBounds
from de_pipeline.warehouse.messages import parse_records
from de_pipeline.warehouse.schema import ensure_schema, one_row, run_sql
from de_pipeline.warehouse.settings import WarehouseSettings

if TYPE_CHECKING:  # DuckDB's .df() loads pandas when a journey is compared, not with the job's definitions
    import pandas as pd

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
    if settings.lake is None and not settings.duckdb_path.exists():
        with (
            reader_spill_config(settings) as spill,
            duckdb.connect(config=settings.duckdb_config | spill) as connection,
        ):
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
    # keyed here as the live rows are (parse_records.sql's macro), not by the stored key: a day
    # not loaded since the key's form changed still holds the older keys
    connection.execute(
        f"CREATE OR REPLACE TEMP TABLE stored AS SELECT {TRANSCRIPT_COLUMNS}, ts_ms FROM ("
        "SELECT * REPLACE (message_key(customersessionid, sessionid, ts_ms, sendertype, sendername, text) "
        f"AS message_key) FROM messages WHERE {OF_THE_JOURNEY})",
        _journey_window(customersessionid, days, settings),
    )
    missing = connection.execute(
        "SELECT * EXCLUDE (ts_ms) FROM live ANTI JOIN stored USING (message_key) ORDER BY ts_ms"
    ).df()
    extra = connection.execute(
        "SELECT * EXCLUDE (ts_ms) FROM stored ANTI JOIN live USING (message_key) ORDER BY ts_ms"
    ).df()
    stored = one_row(connection.execute("SELECT count(*) FROM stored"))[0]
    return JourneyComparison(transcript, missing, extra, stored)


@dataclass(frozen=True)
class JourneyReplacement:
    fetched: int
    before: int
    stored: int
    rejected: int


def replace_journey(
    connection: duckdb.DuckDBPyConnection,
    customersessionid: str,
    files: list[str],
    days: list[DayBounds],
    settings: WarehouseSettings,
) -> JourneyReplacement:
    """Replace one journey's messages inside `days` with the archived answer of the
    customer-session endpoint, in one transaction. Unusable records are counted, not stored
    (the day's own rebuild records them)."""
    window = _journey_window(customersessionid, days, settings)

    def replace() -> JourneyReplacement:
        with transaction(connection):
            parse_records(connection, files, days, settings)
            fetched, rejected = one_row(
                connection.execute("SELECT count(*), count(*) FILTER (WHERE reason IS NOT NULL) FROM parsed")
            )
            # only this journey's messages, even if the server answered more
            connection.execute(
                "DELETE FROM parsed WHERE customersessionid IS DISTINCT FROM $csid", {"csid": customersessionid}
            )
            before = one_row(connection.execute(f"DELETE FROM messages WHERE {OF_THE_JOURNEY}", window))[0]
            run_sql(connection, "messages", window)
            stored = one_row(connection.execute(f"SELECT count(*) FROM messages WHERE {OF_THE_JOURNEY}", window))[0]
            connection.execute("DROP TABLE parsed")
        return JourneyReplacement(fetched=fetched, before=before, stored=stored, rejected=rejected)

    return write_conflicts_retried(settings, replace)


# one journey's messages of the account, inside a window
OF_THE_JOURNEY = "provider = $provider AND customersessionid = $csid AND ts_ms >= $start_ms AND ts_ms < $end_ms"


def _journey_window(customersessionid: str, days: list[DayBounds], settings: WarehouseSettings) -> dict[str, object]:
    return {
        "provider": settings.account,
        "csid": customersessionid,
        "start_ms": days[0].start_ms,
        "end_ms": days[-1].end_ms,
    }
