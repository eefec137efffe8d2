"""Fetch and archive: days of the API into the raw archive, up to DE_MAX_IN_FLIGHT days at once.

Shared by the `raw_messages` asset, the `refresh_journey` job and `de-pipeline session`.
It knows the API client and the archive writer; it knows nothing of Dagster.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from de_pipeline.api import (
    DAY_MS,
    RETENTION_DAYS,
    ApiEpochUnitError,
    ApiSettings,
    ApiSource,
    ClientStats,
    DigitalEngagementClient,
    Page,
    Window,
)
from de_pipeline.api.client import Logger
from de_pipeline.api.windows import TsSample, window_parts
from de_pipeline.env import SettingsError
from de_pipeline.warehouse.archive import ArchivedDay, ArchiveWriter, archived
from de_pipeline.warehouse.days import DayBounds, calendar_days
from de_pipeline.warehouse.empty_days import EmptyRun
from de_pipeline.warehouse.files import owned_scratch_dir, remove_leftovers
from de_pipeline.warehouse.provenance import claim_archive_source
from de_pipeline.warehouse.settings import WarehouseSettings

_log = logging.getLogger(__name__)
PROGRESS_EVERY_PAGES = 100
MAX_JOURNEY_DAYS = 31
MAX_DAY_PARTS = 24
# More 429s than this share of a fetch's requests: the setting is above the key's budget
MAX_REFUSED_SHARE = 0.01


class RetentionError(RuntimeError):
    """Days past the vendor's retention that the raw archive does not hold."""


@dataclass(frozen=True)
class RetentionSplit:
    """A run's days by the vendor's retention, at one moment."""

    gone: list[DayBounds]  # wholly past it: the API answers nothing
    partial: list[DayBounds]  # cut by it: the earliest messages are gone
    served: list[DayBounds]  # wholly inside it

    @classmethod
    def of(cls, days: list[DayBounds], now_ms: int) -> RetentionSplit:
        cutoff_ms = now_ms - RETENTION_DAYS * DAY_MS
        return cls(
            gone=[d for d in days if d.end_ms <= cutoff_ms],
            partial=[d for d in days if d.start_ms < cutoff_ms < d.end_ms],
            served=[d for d in days if d.start_ms >= cutoff_ms],
        )


@dataclass
class Ingest:
    """What one fetch did: per day, the archive's record counts and notes; in total, the
    client's counters."""

    fetched: list[ArchivedDay] = field(default_factory=list)
    kept_from_archive: list[date] = field(default_factory=list)
    partial: list[date] = field(default_factory=list)
    stats: ClientStats = field(default_factory=ClientStats)  # summed over the fetch's workers
    seconds: float = 0.0  # the fetch's wall time
    worker_seconds: float = 0.0  # the time each worker spent fetching, summed

    @property
    def requests_per_second(self) -> float:
        """The request rate achieved, to compare with DE_MAX_REQUESTS_PER_SECOND."""
        return self.stats.requests / self.seconds if self.seconds else 0.0

    @property
    def limiter_wait_share(self) -> float:
        """The share of the workers' time spent waiting for the shared rate limiter: well
        above 0, the vendor's limit holds them back; near 0 with a rate below the limit, the
        server's latency or this machine is the bottleneck."""
        return self.stats.limiter_wait_seconds / self.worker_seconds if self.worker_seconds else 0.0

    def day_metadata(self, simulated: bool) -> dict[date, dict[str, Any]]:
        """Per-partition metadata: records, and what the retention did to the day."""
        metadata: dict[date, dict[str, Any]] = {day: {"kept_from_archive": True} for day in self.kept_from_archive}
        for day in self.fetched:
            metadata[day.day] = {"records": day.records, "simulated": simulated}
            if day.day in self.partial:
                metadata[day.day]["partial_retention"] = True
            if day.kept_archived_copy:
                metadata[day.day] |= {"kept_archived_copy": True, "records_refetched": day.fetched}
        return metadata


def fetch_days(
    source: ApiSource,
    settings: WarehouseSettings,
    days: list[DayBounds],
    *,
    allow_source_change: bool,
    log: Logger,
) -> Ingest:
    """Fetch each day's window into the raw archive. A day past the vendor's retention keeps
    its archived copy (a RetentionError if there is none); a day the retention cuts keeps
    the larger of its archived copy and the re-fetch."""
    if source.simulated:
        log.info("DE_API_BASE_URL is not set: reading the embedded simulator at %s (simulated data)",
                 source.settings.base_url)  # fmt: skip
    remove_leftovers(settings.archive_dir, log)  # what killed runs left
    split = RetentionSplit.of(days, int(time.time() * 1000))
    result = Ingest(partial=[d.day for d in split.partial])
    result.kept_from_archive = archived(settings.archive_dir, [d.day for d in split.gone])
    missing = [str(d.day) for d in split.gone if d.day not in result.kept_from_archive]
    if missing:
        raise RetentionError(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} older than the vendor's "
            f"{RETENTION_DAYS}-day retention and not in the raw archive: the API would answer "
            "nothing, and an empty day would be stored as if it were real. Start the range later."
        )
    claim_archive_source(settings.archive_dir, source.label, allow_change=allow_source_change)
    for kept in result.kept_from_archive:
        log.info("%s is past the vendor's retention: keeping its archived copy", kept)
    for bounds in split.partial:
        log.warning("%s is cut by the vendor's %d-day retention: its earliest messages are gone, the day is partial",
                    bounds.day, RETENTION_DAYS)  # fmt: skip
    to_fetch = split.partial + split.served
    if not to_fetch:
        return result
    parts = day_parts(len(to_fetch), source.settings.max_in_flight)
    fetch = _archive(settings, source.settings, to_fetch, lambda client, w: client.provider_pages(w), log,
                     keep_larger=result.partial, parts=parts)  # fmt: skip
    result.fetched, result.stats = fetch.days, fetch.stats
    result.seconds, result.worker_seconds = fetch.seconds, fetch.worker_seconds
    for day in result.fetched:
        if day.kept_archived_copy:
            log.warning("%s: kept the archived copy of %d records; the retention-cut re-fetch returned only %d",
                        day.day, day.records, day.fetched)  # fmt: skip
    return result


def empty_run_warning(
    run: EmptyRun, account: str, source: str | None, records: int, environ: Mapping[str, str] | None = None
) -> str:
    """What a run that stored no message says (warehouse/empty_days.py decides when): what was
    asked, what came back, and which settings to check."""
    days = f"{run.days[0]} .. {run.days[-1]} ({len(run.days)} days)" if len(run.days) > 1 else str(run.days[0])
    came = (
        f"the API returned {records} records and every one was rejected (see rejected_messages)"
        if records
        else "every window came back empty"
    )
    if run.first_run:
        history = "the account has no message stored on any day"
    elif run.unexpected:
        history = (f"its history expected messages on {', '.join(map(str, run.unexpected))} "
                   "(the same weekday had messages in the weeks before)")  # fmt: skip
    else:
        history = "its history does not explain that"
    try:
        unit = ApiSettings.shared_from_env(environ).epoch_unit
    except SettingsError as error:  # a rebuild from the archive needs no API setting
        unit = f"unreadable ({error})"
    in_unit = {"s": " in seconds", "ms": " in milliseconds"}.get(unit, "")
    return (
        f"account {account}: no message was stored for {days}: {came}, and {history}. The fetch asked "
        f"{source or 'the API'} for start/end{in_unit} (DE_EPOCH_UNIT={unit}). If these days really were "
        "empty, ignore this; otherwise check DE_EPOCH_UNIT, DE_PROVIDER_ID, DE_PROVIDERID_IN and "
        "DE_API_BASE_URL, and run `de-pipeline check`"
    )


def journey_days(start: date, end: date, timezone: str) -> list[DayBounds]:
    """The days (both included) to look for one journey in."""
    if end < start:
        raise SettingsError(f"the window ends ({end}) before it starts ({start})")
    if (end - start).days >= MAX_JOURNEY_DAYS:
        raise SettingsError(f"a journey window covers at most {MAX_JOURNEY_DAYS} days ({start} .. {end})")
    return calendar_days(start, end, timezone)


@contextmanager
def fetched_journey(
    source: ApiSource,
    settings: WarehouseSettings,
    customersessionid: str,
    days: list[DayBounds],
    log: Logger = _log,
) -> Iterator[list[str]]:
    """The customer-session endpoint's answer for one journey, archived day by day in a
    scratch folder of the raw archive (named after this process, so a later run removes it
    if this one is killed); yields the archive files, and removes the folder afterwards."""
    remove_leftovers(settings.archive_dir, log)
    scratch = owned_scratch_dir(settings.archive_dir, "journey")
    try:
        pages = lambda client, window: client.customer_session_pages(customersessionid, window)  # noqa: E731
        fetch = _archive(replace(settings, archive_dir=scratch), source.settings, days, pages, log)
        yield [str(day.path) for day in fetch.days]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def day_parts(days: int, in_flight: int) -> int:
    """Into how many parts to cut each day's window, so that a run of fewer days than
    DE_MAX_IN_FLIGHT still has that many requests in flight (a daily run: one day in 8
    parts). Paging stays sequential within a part; each part costs one more request, the
    `[]` that ends it. At most hours."""
    return max(1, min(MAX_DAY_PARTS, in_flight // max(days, 1)))


@dataclass
class _Fetched:
    days: list[ArchivedDay]
    stats: ClientStats
    seconds: float
    worker_seconds: float


class _Cancelled(Exception):
    """Another day failed: this one stops between pages."""


class _SharedLog:
    """The run's logger, one message at a time, for the fetching threads."""

    def __init__(self, log: Logger) -> None:
        self._log = log
        self._lock = threading.Lock()

    def info(self, msg: str, *args: Any) -> None:
        with self._lock:
            self._log.info(msg, *args)

    def warning(self, msg: str, *args: Any) -> None:
        with self._lock:
            self._log.warning(msg, *args)

    def debug(self, msg: str, *args: Any) -> None:
        with self._lock:
            self._log.debug(msg, *args)


def _archive(
    settings: WarehouseSettings,
    api: ApiSettings,
    days: list[DayBounds],
    pages_of: Callable[[DigitalEngagementClient, Window], Iterable[Page]],
    log: Logger,
    *,
    keep_larger: Iterable[date] = (),
    parts: int = 1,
) -> _Fetched:
    """Up to DE_MAX_IN_FLIGHT windows at once into the archive, each day's window in `parts`
    consecutive parts, each worker thread with its own client (a session and deadline
    watchdog serve one request at a time), all sharing the account's rate limiter. Within a
    window, paging stays sequential: the next offset depends on the rows received. A record
    belongs to the day the API answered it for. Nothing replaces an archived day until every
    day is fetched: the first failure stops the other days between pages, and the archive
    stays as it was. A day whose records lie mostly outside it (a few ts of each page held
    against the day: windows.TsSample) is such a failure, ApiEpochUnitError."""
    log = _SharedLog(log)
    local = threading.local()
    clients: list[DigitalEngagementClient] = []
    failed = threading.Event()
    progress = {"pages": 0, "rows": 0}
    progress_lock = threading.Lock()

    windows: list[tuple[DayBounds, int, Window]] = []  # (day, part, its window)
    for bounds in days:
        day_window = Window(bounds.start_ms, bounds.end_ms)
        pieces = window_parts(day_window, parts)
        if len(pieces) > 1:  # said once for the day; each part at DEBUG
            log.info("%s %s: in %d parts, each paged on its own", bounds.day, day_window, len(pieces))
        windows += [(bounds, part, window) for part, window in enumerate(pieces)]
    parts_of_day = Counter(bounds.day for bounds, _, _ in windows)
    samples = {bounds.day: TsSample(Window(bounds.start_ms, bounds.end_ms)) for bounds in days}
    parts_ended: Counter[date] = Counter()

    def fetch(number: int, bounds: DayBounds, part: int, window: Window) -> float:
        began = time.monotonic()
        if not hasattr(local, "client"):  # one per worker, kept across its days (keep-alive)
            local.client = DigitalEngagementClient(api, logger=log)
            clients.append(local.client)
        if parts_of_day[bounds.day] == 1:
            log.info("window %d of %d: %s %s", number, len(windows), bounds.day, window)
        else:
            log.debug("window %d of %d: part %d of %s %s", number, len(windows), part + 1, bounds.day, window)
        for page in pages_of(local.client, window):
            if failed.is_set():
                raise _Cancelled
            archive.add(bounds.day, page.body, part)
            with progress_lock:
                samples[bounds.day].add(page.ts_sampled)
                progress["pages"] += 1
                progress["rows"] += page.rows
                if progress["pages"] % PROGRESS_EVERY_PAGES == 0:
                    log.info("page %d: %d records so far", progress["pages"], progress["rows"])
        archive.end_day(bounds.day, part, parts_of_day[bounds.day])
        with progress_lock:
            parts_ended[bounds.day] += 1
            whole = parts_ended[bounds.day] == parts_of_day[bounds.day]
        if whole and (problem := samples[bounds.day].mismatch(api.epoch_unit)):
            raise ApiEpochUnitError(f"{bounds.day} {samples[bounds.day].window}", problem)
        return time.monotonic() - began

    started = time.monotonic()
    worker_seconds = 0.0
    with ArchiveWriter(settings, datetime.now(UTC)) as archive:
        try:
            with ThreadPoolExecutor(max(1, min(api.max_in_flight, len(windows))), thread_name_prefix="fetch") as pool:
                futures = [pool.submit(fetch, number, *window) for number, window in enumerate(windows, 1)]
                try:
                    for future in as_completed(futures):
                        worker_seconds += future.result()
                except BaseException:
                    failed.set()
                    for future in futures:
                        future.cancel()
                    raise
        finally:
            for client in clients:
                client.close()
        seconds = time.monotonic() - started
        stats = ClientStats.total(client.stats for client in clients)
        log.info("fetched %d records in %d pages (%d requests, %d retries, %.1f requests/s); finishing the archive",
                 stats.rows, stats.pages, stats.requests, stats.retries, stats.requests / seconds)  # fmt: skip
        if stats.refused_429 > MAX_REFUSED_SHARE * stats.requests:
            log.warning("%d of %d requests (%.0f%%) were refused with 429 (rate limited; a Retry-After pauses "
                        "every request). The vendor counts every client of the key: if another one shares it, or "
                        "its limit is below DE_MAX_REQUESTS_PER_SECOND=%g a second, lower the setting to this "
                        "process's share", stats.refused_429, stats.requests, 100 * stats.refused_429 / stats.requests,
                        api.max_requests_per_second)  # fmt: skip
        return _Fetched(archive.commit(keep_larger=list(keep_larger)), stats, seconds, worker_seconds)
