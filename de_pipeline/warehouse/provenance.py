"""The warehouse and the archive remember where their data came from, so that simulated and
real data never mix by accident."""

from __future__ import annotations

from pathlib import Path

import duckdb

from de_pipeline.warehouse.files import write_text_durably
from de_pipeline.warehouse.settings import DEFAULT_ACCOUNT

ARCHIVE_SOURCE_FILE = "_source.txt"
OVERRIDE_HINT = "set DE_ALLOW_SOURCE_CHANGE=1 to write anyway, or point {variable} elsewhere"


class SourceMismatchError(RuntimeError):
    """This run reads a different API than the one the warehouse's data came from."""


def claim_warehouse_source(
    connection: duckdb.DuckDBPyConnection, source: str, *, account: str, allow_change: bool, where: str
) -> None:
    """Record `source` as the source of the account `account`'s rows, or fail if they came
    from another one."""
    key = "source" if account == DEFAULT_ACCOUNT else f"source/{account}"
    row = connection.execute("SELECT value FROM warehouse_meta WHERE key = $key", {"key": key}).fetchone()
    what = f"the warehouse {where}" + ("" if account == DEFAULT_ACCOUNT else f" for account {account!r}")
    _check(row[0] if row else None, source, allow_change, what, "DE_DUCKDB_PATH")
    # no INSERT OR REPLACE: a lake's warehouse_meta has no primary key (schema.py); and a key
    # written only when it changes leaves a lake's table alone, clear of other writers' conflicts
    if row is None:
        connection.execute("INSERT INTO warehouse_meta VALUES ($key, $source)", {"key": key, "source": source})
    elif row[0] != source:
        connection.execute("UPDATE warehouse_meta SET value = $source WHERE key = $key", {"key": key, "source": source})


def claim_archive_source(archive_dir: Path, source: str, *, allow_change: bool) -> None:
    """The same for the raw archive folder."""
    recorded = archive_source(archive_dir)
    _check(recorded, source, allow_change, f"the raw archive {archive_dir}", "DE_ARCHIVE_DIR")
    if recorded != source:
        archive_dir.mkdir(parents=True, exist_ok=True)
        write_text_durably(archive_dir / ARCHIVE_SOURCE_FILE, source + "\n")


def archive_source(archive_dir: Path) -> str | None:
    """The source recorded by the raw archive, if it holds anything yet."""
    marker = archive_dir / ARCHIVE_SOURCE_FILE
    return marker.read_text().strip() if marker.exists() else None


def _check(recorded: str | None, source: str, allow_change: bool, what: str, variable: str) -> None:
    if recorded is not None and recorded != source and not allow_change:
        raise SourceMismatchError(
            f"{what} holds data from {recorded!r}, but this run reads {source!r}; "
            f"refusing to mix them ({OVERRIDE_HINT.format(variable=variable)})"
        )
