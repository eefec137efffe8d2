"""The raw archive: what the API returned, one Parquet file per day, replayable.

Pages are fetched one day's window at a time and staged on disk as they arrive (memory
holds one page); then one DuckDB statement per day writes them into
`<archive>/day=YYYY-MM-DD/data.parquet`. A record belongs to the day whose window the API
answered it for, so the archive does not depend on how days were grouped into runs. Each
day's file is replaced whole, so re-fetching a day never mixes two fetches.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb

from de_pipeline.warehouse.connection import session_defaults
from de_pipeline.warehouse.days import DayBounds
from de_pipeline.warehouse.schema import run_sql
from de_pipeline.warehouse.settings import WarehouseSettings


class ArchiveMissingError(FileNotFoundError):
    """A day that `messages` needs was never fetched into the archive."""


def archive_file(archive_dir: Path, day: date) -> Path:
    return archive_dir / f"day={day.isoformat()}" / "data.parquet"


def archived(archive_dir: Path, days: Iterable[date]) -> list[date]:
    """Those of `days` that the archive holds."""
    return [day for day in days if archive_file(archive_dir, day).exists()]


def archive_files(archive_dir: Path, days: Iterable[date]) -> list[str]:
    """The archive files of `days`; an error naming the first day that was never fetched."""
    files = []
    for day in days:
        path = archive_file(archive_dir, day)
        if not path.exists():
            raise ArchiveMissingError(
                f"the raw archive has no {day} (expected {path}); materialise raw_messages "
                "for that day first"
            )
        files.append(str(path))
    return files


class PageStager:
    """Writes each page's bytes to its own file in a private staging folder, by day."""

    def __init__(self, archive_dir: Path) -> None:
        archive_dir.mkdir(parents=True, exist_ok=True)
        self.directory = Path(tempfile.mkdtemp(prefix=".staging-", dir=archive_dir))
        self.pages: dict[date, list[str]] = {}
        self._count = 0

    def add(self, day: date, body: bytes) -> None:
        self._count += 1
        path = self.directory / f"page-{self._count:07d}.json"
        path.write_bytes(body)
        self.pages.setdefault(day, []).append(str(path))

    def cleanup(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PageStager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()


@dataclass(frozen=True)
class ArchivedDay:
    day: date
    records: int
    path: Path


def write_archive(
    stager: PageStager,
    days: list[DayBounds],
    settings: WarehouseSettings,
    fetched_at: datetime,
) -> list[ArchivedDay]:
    """Replace the archive files of `days` with the staged pages. A day with no record gets an
    empty file, which says that the day was fetched and held nothing."""
    connection = duckdb.connect(
        config={
            **settings.duckdb_config,
            "preserve_insertion_order": False,
            "temp_directory": str(stager.directory / "spill"),
        }
    )
    try:
        session_defaults(connection)
        produced = []
        # one day per statement: memory stays flat however big a day is
        for bounds in days:
            path = stager.directory / f"{bounds.day.isoformat()}.parquet"
            pages = stager.pages.get(bounds.day)
            if pages:
                stats = run_sql(
                    connection,
                    "archive_pages",
                    {"pages": pages, "fetched_at": fetched_at, "target": str(path)},
                ).fetchall()
                count = sum(row[1] for row in stats)
            else:
                connection.execute(EMPTY_ARCHIVE_FILE, {"target": str(path)})
                count = 0
            produced.append((bounds.day, path, count))
        # every day's file is written before any replaces the archive's
        result = []
        for day, path, count in produced:
            target = archive_file(settings.archive_dir, day)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            result.append(ArchivedDay(day, count, target))
        return result
    finally:
        connection.close()


EMPTY_ARCHIVE_FILE = """
COPY (SELECT CAST(NULL AS VARCHAR) AS raw, CAST(NULL AS INTEGER) AS page,
             CAST(NULL AS TIMESTAMPTZ) AS fetched_at LIMIT 0)
TO $target (FORMAT parquet)
"""
