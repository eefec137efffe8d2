"""Rebuilding `messages` and `rejected_messages` for a run's days from the raw archive."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb

from de_pipeline.warehouse.archive import archive_day, archive_files
from de_pipeline.warehouse.connection import transaction, write_conflicts_retried
from de_pipeline.warehouse.days import DayBounds, day_bounds_table, in_steps
from de_pipeline.warehouse.schema import one_row, run_sql
from de_pipeline.warehouse.settings import WarehouseSettings
from de_pipeline.warehouse.tables import OF_THE_DAYS


@dataclass(frozen=True)
class MessagesDay:
    """One day of a rebuild. `archived == stored + duplicates + rejected`."""

    day: date
    archived: int
    stored: int
    rejected: int
    unparsed_sessionids: int
    conversations: int
    avg_sentiment: float | None

    @property
    def duplicates(self) -> int:
        return self.archived - self.stored - self.rejected


@dataclass(frozen=True)
class MessagesLoad:
    """What one rebuild did, per day and in total."""

    days: list[MessagesDay]
    rejected_reasons: dict[str, int]

    def total(self, field: str) -> int:
        return sum(getattr(day, field) for day in self.days)


class ArchiveParseError(RuntimeError):
    """The records parsed from archive files are not all the records the files hold."""


def parse_records(
    connection: duckdb.DuckDBPyConnection,
    files: list[str],
    days: list[DayBounds],
    settings: WarehouseSettings,
) -> None:
    """Parse archive files of `days` into the temp table `parsed` (see parse_records.sql).
    Every record of the files is parsed, or this raises: a day whose archive file holds
    records never comes out empty."""
    day_bounds_table(connection, days)
    # each file's day, from its own folder (not hive partitioning: see parse_records.sql)
    connection.execute(
        "CREATE OR REPLACE TEMP TABLE archived_files AS "
        "SELECT unnest($files::VARCHAR[]) AS file, unnest($days::DATE[]) AS day",
        {"files": files, "days": [archive_day(file) for file in files]},
    )
    run_sql(connection, "parse_records", {"files": files, "timezone": settings.timezone})
    parsed, held = one_row(
        connection.execute(
            "SELECT (SELECT count(*) FROM parsed), "
            "(SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata($files::VARCHAR[]))",
            {"files": files},
        )
    )
    if parsed != held:
        raise ArchiveParseError(
            f"parsed {parsed:,} of the {held:,} records in the raw archive files {', '.join(files)} "
            f"for {days[0].day} .. {days[-1].day}: a file outside the days of the run, or not where "
            "the archive puts it? Nothing was stored"
        )


def load_messages(
    connection: duckdb.DuckDBPyConnection, days: list[DayBounds], settings: WarehouseSettings
) -> MessagesLoad:
    """Replace the days' rows of the account `settings.account` in one transaction: all of
    the new rows, or none of them; and record each day in `loaded_days`.

    Inside it, the days are parsed and stored a step at a time (days.in_steps: one day), so
    DuckDB holds one day's records, whatever the length of the run: parsing and
    deduplicating a week at once ran out of the 128MB budget at 300,000 messages a day. The
    rows are the same: a message belongs to its archive day (parse_records.sql), and
    message_key includes its ts, so no key spans two days.
    """
    dates = [bounds.day for bounds in days]
    files = dict(zip(dates, archive_files(settings.archive_dir, dates), strict=True))
    span = {"provider": settings.account, "first_day": days[0].day, "last_day": days[-1].day}

    def replace_days() -> MessagesLoad:
        per_day: list[MessagesDay] = []
        with transaction(connection):
            connection.execute(f"DELETE FROM messages WHERE {OF_THE_DAYS}", span)
            connection.execute(f"DELETE FROM rejected_messages WHERE {ARCHIVED_ON_THE_DAYS}", span)
            connection.execute(f"DELETE FROM loaded_days WHERE {OF_THE_DAYS}", span)
            for first, last in in_steps(days[0].day, days[-1].day):
                step = [bounds for bounds in days if first <= bounds.day <= last]
                parse_records(connection, [files[bounds.day] for bounds in step], step, settings)
                run_sql(connection, "messages", span)
                run_sql(connection, "rejected_messages", span)
                step_span = {**span, "first_day": first, "last_day": last}
                step_days = [MessagesDay(*row) for row in connection.execute(DAY_COUNTS, step_span).fetchall()]
                connection.executemany(
                    "INSERT INTO loaded_days (provider, day, messages, rejected) VALUES (?, ?, ?, ?)",
                    [(settings.account, d.day, d.stored, d.rejected) for d in step_days],
                )
                per_day.extend(step_days)
                connection.execute("DROP TABLE parsed")
            reasons = dict(
                connection.execute(
                    "SELECT reason, count(*) FROM rejected_messages "
                    f"WHERE {ARCHIVED_ON_THE_DAYS} GROUP BY reason ORDER BY reason",
                    span,
                ).fetchall()
            )
        return MessagesLoad(per_day, reasons)

    return write_conflicts_retried(settings, replace_days)


# OF_THE_DAYS (tables.py) for rejected_messages, whose day is the archive's
ARCHIVED_ON_THE_DAYS = "provider = $provider AND archive_day BETWEEN $first_day AND $last_day"

# Per day of the run: what the archive held, what was stored, what was rejected.
DAY_COUNTS = """
WITH archived AS (
    SELECT archive_day AS day, count(*) AS archived,
           count(DISTINCT raw) AS rejected  -- raw is kept for rejected records only
    FROM parsed GROUP BY ALL
),
stored AS (
    SELECT day, count(*) AS stored,
           count(*) FILTER (WHERE conversation_id IS NULL) AS unparsed_sessionids,
           count(DISTINCT conversation_id) AS conversations,
           avg(sentiment::DECIMAL(18, 15)) AS avg_sentiment
    FROM messages WHERE provider = $provider AND day BETWEEN $first_day AND $last_day GROUP BY ALL
)
SELECT b.day, coalesce(a.archived, 0), coalesce(s.stored, 0), coalesce(a.rejected, 0),
       coalesce(s.unparsed_sessionids, 0), coalesce(s.conversations, 0), s.avg_sentiment
FROM day_bounds AS b
LEFT JOIN archived AS a USING (day)
LEFT JOIN stored AS s USING (day)
ORDER BY b.day
"""
