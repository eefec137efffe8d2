"""Short-lived DuckDB connections that wait politely for the file lock.

DuckDB lets one process hold the file read-write, or many read-only, never both. Writers
hold their connection only for one transaction; readers open read-only and briefly. Both
retry a lock conflict with backoff for a bounded time, then fail with one clear line.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import duckdb

from de_pipeline.warehouse.files import private_spill_dir
from de_pipeline.warehouse.schema import ensure_schema
from de_pipeline.warehouse.settings import DuckDBConfig, WarehouseSettings

# DuckDB still opens the database file itself, and its temp folder (reader_spill_config):
# with external access off it lets queries use that folder too, whatever allowed_directories says
SEALED_CONFIG: DuckDBConfig = {"enable_external_access": False}


class WarehouseBusyError(RuntimeError):
    """Another process held the DuckDB file for longer than we were willing to wait."""


class WarehouseMissingError(FileNotFoundError):
    """A reader asked for a warehouse file that does not exist yet."""


class MemoryBudgetError(MemoryError):
    """DuckDB needed more memory than DE_DUCKDB_MEMORY_LIMIT allows."""


@contextmanager
def memory_budget(settings: WarehouseSettings, *, reading: bool = False) -> Iterator[None]:
    """Turn DuckDB's out-of-memory error into one that names the setting to raise: for a
    reader whose spill reached DE_READER_SPILL_LIMIT that one, else DE_DUCKDB_MEMORY_LIMIT."""
    try:
        yield
    except duckdb.OutOfMemoryException as exc:
        detail = str(exc).splitlines()[0].removeprefix("Out of Memory Error: ")
        if reading and "max_temp_directory_size" in str(exc):
            raise MemoryBudgetError(
                f"the query spilled more than DE_READER_SPILL_LIMIT={settings.reader_spill_limit} to disk "
                f"({detail}); raise it, e.g. DE_READER_SPILL_LIMIT=4GiB, or DE_DUCKDB_MEMORY_LIMIT"
            ) from None
        rerun = "rerun the query" if reading else "rerun the same days"
        raise MemoryBudgetError(
            f"DuckDB needed more than its memory budget DE_DUCKDB_MEMORY_LIMIT={settings.memory_limit} "
            f"({detail}); raise it, e.g. DE_DUCKDB_MEMORY_LIMIT=512MB, and {rerun}"
        ) from None


@contextmanager
def reader_spill_config(settings: WarehouseSettings) -> Iterator[DuckDBConfig]:
    """The DuckDB settings of a reader's spilling: a private folder of this process, removed
    afterwards (not `<database>.tmp` beside a shared file, where a query's spill stayed
    after a kill), holding at most DE_READER_SPILL_LIMIT; with `0`, no folder at all."""
    limit = settings.reader_spill_limit
    with private_spill_dir() if limit else nullcontext() as folder:
        yield _spill_config(folder, limit)


def _spill_config(folder: Path | None, limit: str | None) -> DuckDBConfig:
    if folder is None or limit is None:
        return {"temp_directory": ""}  # DuckDB fails a query past the memory budget instead
    return {"temp_directory": str(folder), "max_temp_directory_size": limit}


@contextmanager
def writer(settings: WarehouseSettings) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection with the schema in place. Do the work in one transaction."""
    settings.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    connection = _connect(settings, read_only=False)
    try:
        with memory_budget(settings):
            ensure_schema(connection)
            yield connection
    finally:
        connection.close()


@contextmanager
def reader(settings: WarehouseSettings, *, sealed: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection, for queries and checks.

    `sealed` (for analysts' ad-hoc SQL) also shuts DuckDB off from every other file (no
    COPY TO, read_text, ATTACH, INSTALL) but its own spill folder (see query.py), and locks
    its settings (no SET memory_limit), so the query can read the warehouse and nothing
    else. The pipeline's own readers are not sealed: they read the Parquet archive.
    """
    if not settings.duckdb_path.exists():
        raise WarehouseMissingError(
            f"no warehouse at {settings.duckdb_path}: run `de-pipeline demo` or a backfill first"
        )
    with reader_spill_config(settings) as spill:
        connection = _connect(settings, read_only=True, extra_config=(SEALED_CONFIG if sealed else {}) | spill)
        try:
            if sealed:  # after session_defaults, which sets the time zone
                connection.execute("SET lock_configuration = true")
            with memory_budget(settings, reading=True):
                yield connection
        finally:
            connection.close()


@contextmanager
def transaction(connection: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT, or ROLLBACK on any error: a partition is replaced whole or not at all."""
    connection.execute("BEGIN TRANSACTION")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _connect(
    settings: WarehouseSettings, *, read_only: bool, extra_config: DuckDBConfig | None = None
) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + settings.lock_timeout_seconds
    delay = 0.05
    while True:
        try:
            connection = duckdb.connect(
                str(settings.duckdb_path),
                read_only=read_only,
                # in this order: DuckDB 2.0 applies them in turn, and refuses a temp_directory
                # given before enable_external_access=false (but not after it)
                config={**(extra_config or {}), **settings.duckdb_config},
            )
        except duckdb.IOException as exc:
            if not _is_lock_conflict(exc):
                raise
            if time.monotonic() + delay > deadline:
                mode = "read" if read_only else "write"
                raise WarehouseBusyError(
                    f"the warehouse {settings.duckdb_path} is locked by another process "
                    f"(a running write?); gave up waiting to {mode} after "
                    f"{settings.lock_timeout_seconds:g}s (DE_LOCK_TIMEOUT_SECONDS)"
                ) from None
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 2.0)
            continue
        return session_defaults(connection)


def session_defaults(connection: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Timestamps in UTC (days come from DE_TIMEZONE explicitly), no progress bar in logs."""
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute("SET enable_progress_bar = false")
    return connection


def _is_lock_conflict(exc: duckdb.IOException) -> bool:
    return "lock" in str(exc).lower()
