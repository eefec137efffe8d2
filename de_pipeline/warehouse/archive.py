"""The raw archive: what the API returned, one Parquet file per day, replayable.

Pages are fetched by day window, several days at once (a day in parts of its window when
a run has fewer days than fetching threads), and staged on disk as they arrive
(memory holds one page per fetching thread); once a day is complete, one DuckDB statement
writes its pages into `<archive>/day=YYYY-MM-DD/data.parquet` while other days are
fetched. A record belongs to the day whose window the API answered it for, so the archive
does not depend on how days were grouped into runs. Each day's file is replaced whole, so re-fetching a day never
mixes two fetches; a day that the vendor's retention has cut keeps its larger archived copy.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Collection, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb

from de_pipeline.env import format_size
from de_pipeline.warehouse.connection import memory_budget, session_defaults
from de_pipeline.warehouse.files import free_disk_bytes, fsync_directory, owned_scratch_dir, replace_durably
from de_pipeline.warehouse.schema import one_row, run_sql
from de_pipeline.warehouse.settings import WarehouseSettings


class ArchiveMissingError(FileNotFoundError):
    """A day that `messages` needs was never fetched into the archive."""


class StagingLimitError(RuntimeError):
    """A fetch would stage more than DE_MAX_STAGED_BYTES, or leave the archive's disk with
    less than DE_MIN_FREE_DISK_BYTES free: it stops, and the archive stays as it was."""


def archive_file(archive_dir: Path, day: date) -> Path:
    return archive_dir / f"day={day.isoformat()}" / "data.parquet"


def archive_day(path: str | Path) -> date:
    """The day of an archive file (see `archive_file`): its own folder's name, whatever the
    folders above it are called."""
    folder = Path(path).parent.name
    try:
        if folder.startswith("day="):
            return date.fromisoformat(folder.removeprefix("day="))
    except ValueError:
        pass
    raise ValueError(f"{path} is not a raw archive file (<archive>/day=YYYY-MM-DD/data.parquet)")


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
                f"the raw archive has no {day} (expected {path}); materialise raw_messages for that day first"
            )
        files.append(str(path))
    return files


@dataclass(frozen=True)
class ArchivedDay:
    """A day of the archive after a commit: `records` it holds, `fetched` by this fetch
    (fewer when the larger archived copy was kept)."""

    day: date
    records: int
    path: Path
    fetched: int

    @property
    def kept_archived_copy(self) -> bool:
        return self.records != self.fetched


class ArchiveWriter:
    """Writes fetched pages into the archive, day by day, while other days are fetched.

    `add` stages a page's bytes in a private folder (memory holds one page); several threads
    may add and end days at once. A day may come in parts (consecutive parts of its window,
    fetched at once); each part's pages must come from one thread, in order. Once `end_day`
    has been called for every part, the day's pages are numbered in order (the parts in
    order, each part's pages in order), and a background thread writes its Parquet file with
    one DuckDB statement: DuckDB releases the GIL, so that work overlaps with fetching.
    `commit` waits for every day, and only then replaces the archive's files, so a failed
    fetch or write leaves the archive as it was. A day with no record gets an empty file,
    which says that the day was fetched and held nothing. The staging folder is named after
    this process (see files.py), so a later run removes it if the process is killed.

    A hostile server can send pages for ever: the pages staged are bounded in total
    (DE_MAX_STAGED_BYTES), and the disk's free space is checked before the fetch and
    before each page (DE_MIN_FREE_DISK_BYTES); past either, StagingLimitError.
    """

    def __init__(self, settings: WarehouseSettings, fetched_at: datetime) -> None:
        self._settings = settings
        self._directory = owned_scratch_dir(settings.archive_dir, "staging")
        self._fetched_at = fetched_at
        self._staged: dict[tuple[date, int], list[Path]] = {}  # (day, part): its pages in order
        self._ended: dict[date, set[int]] = {}  # the parts of a day that are complete
        self._staged_count = 0
        self._staged_bytes = 0
        self._page_count = 0
        self._lock = threading.Lock()  # fetching threads add and end days at once
        # One DuckDB thread: the fetch needs the other core, and fewer JSON read buffers are
        # held at once (with a 96MB budget a 200k-message day failed on two threads). Its
        # share of the memory budget: a build may run beside the fetch (FETCH_MEMORY_SHARE).
        self._connection = duckdb.connect(
            config={
                **settings.duckdb_config,
                "memory_limit": settings.fetch_memory_limit,
                "preserve_insertion_order": False,
                "threads": 1,
                "temp_directory": str(self._directory / "spill"),
            }
        )
        session_defaults(self._connection)
        # one writer thread: the connection runs one statement at a time
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive-writer")
        self._days: list[Future[tuple[date, Path, int]]] = []
        try:
            self._check_free_space(0)
        except StagingLimitError:
            self.close()
            raise

    def add(self, day: date, body: bytes, part: int = 0) -> None:
        """Stage the next page of `day` (of its `part`); StagingLimitError if it would go
        past DE_MAX_STAGED_BYTES or below DE_MIN_FREE_DISK_BYTES."""
        self._check_free_space(len(body))  # a system call: outside the lock
        with self._lock:
            if self._staged_bytes + len(body) > self._settings.max_staged_bytes:
                raise StagingLimitError(
                    f"{day}: the fetch has staged {format_size(self._staged_bytes)} of pages and the server "
                    f"sends more, past DE_MAX_STAGED_BYTES ({format_size(self._settings.max_staged_bytes)}); "
                    "stopped, and the archive is as it was. Raise DE_MAX_STAGED_BYTES if the run's days "
                    "really hold that much"
                )
            self._staged_bytes += len(body)
            self._staged_count += 1
            path = self._directory / f"staged-{self._staged_count:07d}.json"
            self._staged.setdefault((day, part), []).append(path)
        path.write_bytes(body)  # outside the lock: only the part's own thread ends the part

    def end_day(self, day: date, part: int = 0, parts: int = 1) -> None:
        """Every page of `part` (of `parts`) of `day` is staged. Once every part is, number
        the day's pages in order (the number is in the file name; archive_pages.sql reads
        it) and start writing its file."""
        with self._lock:
            ended = self._ended.setdefault(day, set())
            ended.add(part)
            if len(ended) < parts:
                return
            del self._ended[day]
            pages = []
            for staged in (path for n in range(parts) for path in self._staged.pop((day, n), [])):
                self._page_count += 1
                pages.append(str(staged.rename(staged.with_name(f"page-{self._page_count:07d}.json"))))
            self._days.append(self._writer.submit(self._write_day, day, pages))

    def commit(self, keep_larger: Collection[date] = ()) -> list[ArchivedDay]:
        """Wait for every day's file, then replace the archive's files with them, each
        flushed to disk first. A day in `keep_larger` (one the vendor's retention has cut)
        keeps its archived file if that holds more records than the new one."""
        with memory_budget(self._settings):
            produced = sorted(future.result() for future in self._days)  # by day, however they ended
        result = []
        for day, path, count in produced:
            target = archive_file(self._settings.archive_dir, day)
            held = self._records(target) if day in keep_larger and target.exists() else 0
            if held > count:
                os.remove(path)
                result.append(ArchivedDay(day, held, target, fetched=count))
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            replace_durably(path, target)
            result.append(ArchivedDay(day, count, target, fetched=count))
        fsync_directory(self._settings.archive_dir)  # new day=... folders
        return result

    def close(self) -> None:
        self._writer.shutdown(wait=True, cancel_futures=True)
        self._connection.close()
        shutil.rmtree(self._directory, ignore_errors=True)

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_free_space(self, incoming: int) -> None:
        """StagingLimitError if writing `incoming` more bytes would leave the disk with less
        than DE_MIN_FREE_DISK_BYTES free (0: never)."""
        floor = self._settings.min_free_disk_bytes
        if not floor:
            return
        free = free_disk_bytes(self._directory)
        if free - incoming >= floor:
            return
        if incoming:
            what = f"staging the next page ({format_size(incoming)}) would leave less than"
            outcome = "the fetch stopped, and the archive is as it was"
        else:
            what, outcome = "less than", "the fetch did not start"
        raise StagingLimitError(
            f"the disk of the raw archive {self._settings.archive_dir} has {format_size(free)} free; {what} "
            f"DE_MIN_FREE_DISK_BYTES ({format_size(floor)}): {outcome}. Free some space, or lower "
            "DE_MIN_FREE_DISK_BYTES (0 turns the check off)"
        )

    def _records(self, path: Path) -> int:
        """How many records an archive file holds (from its Parquet footer)."""
        return one_row(self._connection.execute("SELECT count(*) FROM read_parquet($path)", {"path": str(path)}))[0]

    def _write_day(self, day: date, pages: list[str]) -> tuple[date, Path, int]:
        path = self._directory / f"{day.isoformat()}.parquet"
        if not pages:
            self._connection.execute(EMPTY_ARCHIVE_FILE, {"target": str(path)})
            return day, path, 0
        stats = run_sql(
            self._connection,
            "archive_pages",
            {"pages": pages, "fetched_at": self._fetched_at, "target": str(path)},
        ).fetchall()
        for page in pages:  # the day's pages are in its Parquet file now
            os.remove(page)
        return day, path, sum(row[1] for row in stats)


EMPTY_ARCHIVE_FILE = """
COPY (SELECT CAST(NULL AS VARCHAR) AS raw, CAST(NULL AS INTEGER) AS page,
             CAST(NULL AS TIMESTAMPTZ) AS fetched_at LIMIT 0)
TO $target (FORMAT parquet)
"""
