"""The readers' copy: a snapshot of the warehouse for analysts and BI tools.

DuckDB lets one process hold the file read-write, or many read-only, never both, so a BI
tool holding the warehouse open would stop every run. Readers get their own file instead.
After each successful run the warehouse is checkpointed (everything in the file, nothing
in its WAL) and copied, under the writer's lock, to a temporary file beside the copy; the
temporary file is stamped with `_published`, flushed to disk and renamed over the copy.
A reader opens the old copy or the new one, never a torn one, and a reader that holds the
old copy open keeps reading it (its inode) and blocks nobody.

The copy is in the storage format of DuckDB 1.4 (READERS_STORAGE_VERSION), which BI drivers
that bundle an older DuckDB open. A warehouse created in that format (every one since) is
copied as a file; one in DuckDB 2's own format is converted table by table instead, slower.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from de_pipeline.warehouse.connection import WarehouseBusyError, reader, session_defaults, writer
from de_pipeline.warehouse.files import replace_durably
from de_pipeline.warehouse.schema import one_row, run_sql
from de_pipeline.warehouse.settings import READERS_STORAGE_VERSION, WarehouseSettings

PUBLISHED_TABLE = "_published"
_UNFINISHED_SUFFIX = ".publishing"


@dataclass(frozen=True)
class Published:
    """A copy that was published: where, when, which days, how big, and how long it took."""

    path: Path
    published_at: datetime
    first_day: date | None
    last_day: date | None
    size_bytes: int
    seconds: float
    converted: bool = False  # from a warehouse in DuckDB 2's storage format, table by table

    def line(self) -> str:
        days = f"{self.first_day} .. {self.last_day}" if self.last_day else "no days yet"
        how = (
            f", converted to DuckDB {READERS_STORAGE_VERSION}'s storage format table by table: "
            "the warehouse is in DuckDB 2's (see docs/readers-copy.md)"
            if self.converted
            else ""
        )
        return (
            f"published the readers' copy {self.path} ({days}, {self.size_bytes / 1e6:,.1f} MB) "
            f"in {self.seconds:.1f}s{how}"
        )


def publish_reader_copy(
    settings: WarehouseSettings, *, trigger: str, lock_timeout_seconds: float | None = None
) -> Published | None:
    """Replace the readers' copy (DE_READER_COPY_PATH) with the warehouse as it is now.

    None when the copy is off or there is no warehouse yet. Waits for the writer's lock as
    long as `lock_timeout_seconds` (default DE_LOCK_TIMEOUT_SECONDS), then raises
    WarehouseBusyError; writers wait for the publish the same way.
    """
    target = settings.reader_copy_path
    if target is None or (settings.lake is None and not settings.duckdb_path.exists()):
        return None
    started = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    if lock_timeout_seconds is not None:
        settings = replace(settings, lock_timeout_seconds=lock_timeout_seconds)
    with _source(settings) as connection:
        # Under the lock no other publish of this warehouse runs: leftovers are a killed one's
        for leftover in target.parent.glob(f".{target.name}-*{_UNFINISHED_SUFFIX}*"):
            leftover.unlink(missing_ok=True)
        unfinished = target.with_name(f".{target.name}-{os.getpid()}{_UNFINISHED_SUFFIX}")
        converted = settings.lake is None and not readable_by_older_duckdb(connection)
        try:
            if settings.lake is not None or converted:
                convert_database(connection, unfinished)
            else:
                copy_database_file(settings.duckdb_path, unfinished)
            published_at, first_day, last_day = _stamp(unfinished, settings, trigger)
            # read-only: a reader that forgets read_only is refused, not left writing
            replace_durably(unfinished, target, read_only=True)
        finally:
            unfinished.unlink(missing_ok=True)
            unfinished.with_name(unfinished.name + ".wal").unlink(missing_ok=True)
    seconds = time.monotonic() - started
    return Published(target, published_at, first_day, last_day, target.stat().st_size, seconds, converted)


@contextmanager
def _source(settings: WarehouseSettings) -> Iterator[duckdb.DuckDBPyConnection]:
    """What a publish copies: the DuckDB file checkpointed under the writer's lock, or a
    lake's snapshot (a reader's: a lake's writers never wait for it)."""
    if settings.lake is not None:
        with reader(settings) as connection:
            yield connection
        return
    with writer(settings) as connection:
        connection.execute("CHECKPOINT")
        yield connection


def copy_database_file(source: Path, target: Path) -> None:
    """Copy the checkpointed warehouse file (the kernel copies it, no Python loop)."""
    shutil.copyfile(source, target)


def storage_version(connection: duckdb.DuckDBPyConnection) -> str | None:
    """The storage format of the connection's database file, as DuckDB tags it (`v1.4.0+`)."""
    (version,) = one_row(
        connection.execute(
            "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = current_database()"
        )
    )
    return version


def readable_by_older_duckdb(connection: duckdb.DuckDBPyConnection) -> bool:
    """Whether DuckDB 1.4 opens the connection's database file as it is."""
    version = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)\+?", storage_version(connection) or "")
    limit = tuple(int(part) for part in READERS_STORAGE_VERSION.removeprefix("v").split("."))
    return version is not None and tuple(int(part) for part in version.groups()) <= limit


def convert_database(connection: duckdb.DuckDBPyConnection, target: Path) -> None:
    """Write the connection's database to a new file `target` in READERS_STORAGE_VERSION's
    format: every table, view, comment and type, compacted."""
    (source,) = one_row(connection.execute("SELECT current_database()"))
    quoted_path = str(target).replace("'", "''")
    connection.execute(f"ATTACH '{quoted_path}' AS readers_copy (STORAGE_VERSION '{READERS_STORAGE_VERSION}')")
    try:
        connection.execute(f"COPY FROM DATABASE {_identifier(source)} TO readers_copy")
    finally:
        connection.execute("DETACH readers_copy")


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _stamp(path: Path, settings: WarehouseSettings, trigger: str) -> tuple[datetime, date | None, date | None]:
    """Record in the copy when it was published and which days it holds."""
    published_at = datetime.now(UTC)
    connection = session_defaults(duckdb.connect(str(path), config=settings.duckdb_config))
    try:
        connection.execute(
            f"""CREATE OR REPLACE TABLE {PUBLISHED_TABLE} AS
                SELECT $published_at::TIMESTAMPTZ AS published_at, min(day) AS first_day,
                       max(day) AS last_day, count(*) AS messages, $trigger AS published_after
                FROM messages""",
            {"published_at": published_at, "trigger": trigger},
        )
        connection.execute(
            f"COMMENT ON TABLE {PUBLISHED_TABLE} IS 'when this readers'' copy was published, "
            "the days of messages it holds, and the run it followed'"
        )
        run_sql(connection, "readers_copy")
        first_day, last_day = one_row(connection.execute(f"SELECT first_day, last_day FROM {PUBLISHED_TABLE}"))
        connection.execute("CHECKPOINT")
    finally:
        connection.close()
    return published_at, first_day, last_day


def publish_for_readers(
    settings: WarehouseSettings,
    trigger: str,
    say: Callable[[str], None],
    *,
    lock_timeout_seconds: float | None = None,
) -> Published | None:
    """Publish the readers' copy after a run and `say` one line of what happened. A busy
    warehouse or a failed copy is said, not raised: the run itself succeeded, and the
    previous copy stays whole until the next publish."""
    try:
        published = publish_reader_copy(settings, trigger=trigger, lock_timeout_seconds=lock_timeout_seconds)
    except (WarehouseBusyError, OSError, duckdb.Error) as exc:
        detail = " ".join(str(exc).split())
        say(f"the readers' copy was not published ({detail}); it stays as it was until the next successful run")
        return None
    if published is not None:
        say(published.line())
    return published


def settings_for_readers(settings: WarehouseSettings, *, live: bool = False) -> tuple[WarehouseSettings, str | None]:
    """The settings a reader opens: the readers' copy when there is one (`live`: the
    warehouse itself), else the warehouse, with a note that says why."""
    copy = settings.reader_copy_path
    if live or copy is None:
        return settings, None
    if copy.exists():
        return replace(settings, duckdb_path=copy, lake=None), None
    note = f"no readers' copy at {copy} yet (each successful run publishes it); reading the warehouse"
    return settings, note
