"""Short-lived DuckDB connections that wait politely for the file lock, or attach a lake.

DuckDB lets one process hold the file read-write, or many read-only, never both. Writers
hold their connection only for one transaction; readers open read-only and briefly. Both
retry a lock conflict with backoff for a bounded time, then fail with one clear line.

A DuckLake warehouse (DE_WAREHOUSE, docs/lake.md) is attached instead to an in-memory
DuckDB with the same settings, and made the default database (`USE`), so that every SQL
file runs unchanged. Many processes write it at once: a transaction that loses the race to
another's commit on the same table is run again whole (write_conflicts_retried).
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TypeVar

import duckdb

from de_pipeline.warehouse.extensions import load_extension, sql_string
from de_pipeline.warehouse.files import private_spill_dir
from de_pipeline.warehouse.schema import database_tables, ensure_schema
from de_pipeline.warehouse.settings import LAKE_ALIAS, DuckDBConfig, LakeSettings, WarehouseSettings

_T = TypeVar("_T")
_log = logging.getLogger(__name__)

# A lake's transaction that conflicts with another process's commit is run this many times
# in all, with jittered backoff of at most WRITE_CONFLICT_MAX_WAIT_SECONDS, before the run
# fails: a conflict is per table, so every account's step of one table races the others'
# (4 accounts rerun at once lost 6 races), and with many accounts one step may lose often
WRITE_CONFLICT_ATTEMPTS = 10
WRITE_CONFLICT_MAX_WAIT_SECONDS = 5.0
# writers that start together on a new lake race to create its catalog (one wins, at once)
CATALOG_RACE_ATTEMPTS = 5

# DuckDB still opens the database file itself, and its temp folder (reader_spill_config):
# with external access off it lets queries use that folder too, whatever allowed_directories says
SEALED_CONFIG: DuckDBConfig = {"enable_external_access": False}


class WarehouseBusyError(RuntimeError):
    """Another process held the DuckDB file for longer than we were willing to wait."""


class WarehouseMissingError(FileNotFoundError):
    """A reader asked for a warehouse file that does not exist yet."""


class LakeUnavailableError(RuntimeError):
    """The lake's catalog or its data could not be attached (the message is one line)."""


class WriteConflictError(RuntimeError):
    """Other processes kept committing to the same lake tables first."""


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
    if settings.lake is None:
        settings.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    with _writer_spill_config(settings) as spill:
        connection = _connect(settings, read_only=False, extra_config=spill)
        try:
            with memory_budget(settings):
                write_conflicts_retried(settings, lambda: ensure_schema(connection, lake=settings.lake is not None))
                yield connection
        finally:
            connection.close()


@contextmanager
def _writer_spill_config(settings: WarehouseSettings) -> Iterator[DuckDBConfig]:
    """Where a writer spills: beside a DuckDB file (`<file>.tmp`, one writer at a time), and
    for a lake's in-memory DuckDB a private folder of this process, not `.tmp` in the working
    folder, which writers started in one folder shared (one removed another's spill file
    mid-transaction, and one crashed)."""
    if settings.lake is None:
        yield {}
        return
    with private_spill_dir() as folder:
        yield {"temp_directory": str(folder)}


@contextmanager
def reader(settings: WarehouseSettings, *, sealed: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection, for queries and checks.

    `sealed` (for analysts' ad-hoc SQL) also shuts DuckDB off from every other file (no
    COPY TO, read_text, ATTACH, INSTALL) but its own spill folder (see query.py), and locks
    its settings (no SET memory_limit), so the query can read the warehouse and nothing
    else. The pipeline's own readers are not sealed: they read the Parquet archive.
    """
    if settings.lake is None and not settings.duckdb_path.exists():
        raise WarehouseMissingError(
            f"no warehouse at {settings.duckdb_path}: run `de-pipeline demo` or a backfill first"
        )
    # a lake is attached first, and sealed after (DuckDB attaches nothing with external access off)
    sealing = SEALED_CONFIG if sealed and settings.lake is None else {}
    with reader_spill_config(settings) as spill:
        connection = _connect(settings, read_only=True, extra_config=sealing | spill)
        try:
            if settings.lake is not None and not database_tables(connection):
                raise WarehouseMissingError(f"no tables in {settings.lake} yet: run a backfill first")
            if sealed:  # after session_defaults, which sets the time zone
                if settings.lake is not None:
                    _seal_lake(connection, settings.lake)
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


def write_conflicts_retried(settings: WarehouseSettings, action: Callable[[], _T]) -> _T:
    """`action()`, a whole transaction; with a lake, run again after a write conflict (another
    process committed to the same table since it began: DuckLake's optimistic concurrency),
    up to WRITE_CONFLICT_ATTEMPTS times in all, then a WriteConflictError of one line. The
    failed COMMIT left nothing behind: each attempt replaces the days whole or not at all."""
    delay = 0.2
    for attempt in range(1, WRITE_CONFLICT_ATTEMPTS + 1):
        try:
            return action()
        except duckdb.TransactionException as exc:
            if settings.lake is None or "conflict" not in str(exc).lower():
                raise
            if attempt == WRITE_CONFLICT_ATTEMPTS:
                detail = str(exc).splitlines()[-1]
                raise WriteConflictError(
                    f"other processes committed to the same tables of {settings.lake} first, "
                    f"{WRITE_CONFLICT_ATTEMPTS} times ({detail}); nothing of this transaction was written, "
                    "rerun the same days"
                ) from None
            _log.warning(
                "another process committed to the same table of the lake first; running the transaction "
                "again (attempt %d of %d)",
                attempt + 1,
                WRITE_CONFLICT_ATTEMPTS,
            )
        time.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, WRITE_CONFLICT_MAX_WAIT_SECONDS)
    raise AssertionError("unreachable")


def _open(settings: WarehouseSettings, *, read_only: bool, config: DuckDBConfig) -> duckdb.DuckDBPyConnection:
    """The warehouse's connection: the DuckDB file, or an in-memory DuckDB with the lake attached."""
    if settings.lake is None:
        return duckdb.connect(str(settings.duckdb_path), read_only=read_only, config=config)
    connection = duckdb.connect(config=config)
    try:
        attach_lake(connection, settings.lake, read_only=read_only)
    except BaseException:
        connection.close()
        raise
    return connection


def attach_lake(connection: duckdb.DuckDBPyConnection, lake: LakeSettings, *, read_only: bool) -> None:
    """Load the lake's extensions, make the S3 secret in this connection only, ATTACH the
    lake (READ_ONLY for readers) and USE it, so that every SQL file runs unchanged."""
    load_extension(connection, "ducklake")
    if lake.postgres_catalog:
        load_extension(connection, "postgres_scanner")
    if lake.on_s3:
        load_extension(connection, "httpfs")
        _create_s3_secret(connection, lake)
    try:
        _attach_racing_new_catalog(connection, lake, read_only=read_only)
    except duckdb.IOException as exc:
        if _is_lock_conflict(exc):  # a DuckDB-file catalog: _connect waits for its lock
            raise
        raise LakeUnavailableError(f"could not attach {lake}: {_one_line(exc)}") from None
    except duckdb.Error as exc:
        if read_only and "creating a new DuckLake" in str(exc):  # no writer has made its catalog yet
            raise WarehouseMissingError(f"no tables in {lake} yet: run a backfill first") from None
        raise LakeUnavailableError(f"could not attach {lake}: {_one_line(exc)}") from None
    connection.execute(f"USE {LAKE_ALIAS}")


def _attach_racing_new_catalog(connection: duckdb.DuckDBPyConnection, lake: LakeSettings, *, read_only: bool) -> None:
    """ATTACH the lake. The first writer of a new lake creates its catalog's tables; writers
    that start at once race to, and the losers' ATTACH fails ("already exists"): the catalog
    is there by then, so they attach again, a few times at most."""
    options = f"DATA_PATH {sql_string(lake.data_path)}" + (", READ_ONLY" if read_only else "")
    for attempt in range(1, CATALOG_RACE_ATTEMPTS + 1):
        try:
            connection.execute(f"ATTACH {sql_string(lake.attach_target)} AS {LAKE_ALIAS} ({options})")
            return
        except duckdb.Error as exc:
            lost_the_race = "initialize DuckLake" in str(exc) and re.search(r"already exists|duplicate key", str(exc))
            if not lost_the_race or attempt == CATALOG_RACE_ATTEMPTS:
                raise
            _log.info("another writer was creating the lake's catalog; attaching again")
            time.sleep(0.2 * attempt * random.uniform(0.5, 1.5))


def _seal_lake(connection: duckdb.DuckDBPyConnection, lake: LakeSettings) -> None:
    """Shut a lake's reader off from every file but the lake's own Parquet files (which its
    queries read): DuckDB attaches nothing with external access off, so this comes after the
    ATTACH. Writing there is refused too: the lake is attached READ_ONLY, and query.py
    refuses COPY."""
    connection.execute("SET allowed_directories = $folders", {"folders": [lake.data_path]})
    connection.execute("SET enable_external_access = false")


def _create_s3_secret(connection: duckdb.DuckDBPyConnection, lake: LakeSettings) -> None:
    """A temporary S3 secret of this connection, from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
    (and AWS_SESSION_TOKEN) in the environment, and DE_LAKE_S3_ENDPOINT; no key is ever in
    a message."""
    secrets = [os.environ.get(name, "") for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")]
    key_id, secret, token = secrets
    parts = [
        f"TYPE s3, KEY_ID {sql_string(key_id)}, SECRET {sql_string(secret)}",
        f"REGION {sql_string(lake.s3_region)}",
    ]
    if token:
        parts.append(f"SESSION_TOKEN {sql_string(token)}")
    if lake.s3_endpoint is not None:
        scheme, _, host = lake.s3_endpoint.partition("://")
        parts.append(f"ENDPOINT {sql_string(host)}, URL_STYLE 'path', USE_SSL {str(scheme == 'https').lower()}")
    try:
        connection.execute(f"CREATE TEMPORARY SECRET de_lake_s3 ({', '.join(parts)})")
    except duckdb.Error as exc:
        detail = _one_line(exc)
        for value in secrets:
            if value:
                detail = detail.replace(value, "***")
        raise LakeUnavailableError(f"could not make the S3 secret of {lake}: {detail}") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _connect(
    settings: WarehouseSettings, *, read_only: bool, extra_config: DuckDBConfig | None = None
) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + settings.lock_timeout_seconds
    delay = 0.05
    while True:
        try:
            # in this order: DuckDB 2.0 applies them in turn, and refuses a temp_directory
            # given before enable_external_access=false (but not after it)
            connection = _open(settings, read_only=read_only, config={**(extra_config or {}), **settings.duckdb_config})
        except duckdb.IOException as exc:
            if not _is_lock_conflict(exc):
                raise
            if time.monotonic() + delay > deadline:
                mode = "read" if read_only else "write"
                raise WarehouseBusyError(
                    f"the warehouse {settings.where} is locked by another process "
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
