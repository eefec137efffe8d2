"""One customer journey from the customer-session endpoint: fetch it, compare it with the
warehouse, or replace the warehouse's rows of it (the `refresh_journey` job)."""

# No `from __future__ import annotations`: Dagster reads the context and config annotations.

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime

from dagster import AssetMaterialization, Config, OpExecutionContext, job, op

from de_pipeline.api import ApiSource, DigitalEngagementClient, Window
from de_pipeline.api.client import Logger
from de_pipeline.defs.assets import WAREHOUSE_POOL
from de_pipeline.defs.resources import DigitalEngagementApi, Warehouse
from de_pipeline.env import SettingsError
from de_pipeline.warehouse.aggregates import AGGREGATES, JOURNEY_TABLES, refresh_aggregate
from de_pipeline.warehouse.archive import ArchiveWriter
from de_pipeline.warehouse.connection import writer
from de_pipeline.warehouse.days import DayBounds, calendar_days
from de_pipeline.warehouse.files import owned_scratch_dir, remove_leftovers
from de_pipeline.warehouse.messages import replace_journey
from de_pipeline.warehouse.settings import WarehouseSettings

MAX_JOURNEY_DAYS = 31


def journey_days(start: date, end: date, timezone: str) -> list[DayBounds]:
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
    logger: Logger | None = None,
) -> Iterator[list[str]]:
    """The endpoint's answer for the journey, archived day by day in a scratch folder that
    is removed afterwards; yields the archive files. The scratch folder lives in the raw
    archive folder, named after this process, so a later run removes it if this one is
    killed (and this one removes those of killed runs)."""
    remove_leftovers(settings.archive_dir, logger or logging.getLogger(__name__))
    scratch = owned_scratch_dir(settings.archive_dir, "journey")
    try:
        with DigitalEngagementClient(source.settings, logger=logger) as client, ArchiveWriter(
            replace(settings, archive_dir=scratch), datetime.now(UTC)
        ) as archive:
            for bounds in days:
                for page in client.customer_session_pages(
                    customersessionid, Window(bounds.start_ms, bounds.end_ms)
                ):
                    archive.add(bounds.day, page.body)
                archive.end_day(bounds.day)
            archived = archive.commit()
        yield [str(day.path) for day in archived]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class RefreshJourneyConfig(Config):
    """Which journey to refresh, and the days (in DE_TIMEZONE, both included) to look in."""

    customersessionid: str
    start: str
    end: str


@op(pool=WAREHOUSE_POOL)
def refresh_journey_rows(
    context: OpExecutionContext,
    config: RefreshJourneyConfig,
    api: DigitalEngagementApi,
    warehouse: Warehouse,
) -> None:
    """Replace one journey's messages from the customer-session endpoint, then rebuild the
    daily tables of the days it touches (so their counts still add up)."""
    settings = warehouse.settings()
    try:
        start, end = date.fromisoformat(config.start), date.fromisoformat(config.end)
    except ValueError as exc:
        raise SettingsError(f"start/end must be dates like 2026-01-31: {exc}") from None
    days = journey_days(start, end, settings.timezone)
    csid = config.customersessionid
    with fetched_journey(api.source(), settings, csid, days, context.log) as files:
        with writer(settings) as connection:
            result = replace_journey(connection, csid, files, days, settings)
            for table in (*AGGREGATES, *JOURNEY_TABLES):
                refresh_aggregate(connection, table, days[0].day, days[-1].day, settings)
    context.log.info(
        "journey %s: %d records fetched, %d messages stored (was %d), %d unusable records skipped",
        csid, result.fetched, result.stored, result.before, result.rejected,
    )
    context.log_event(
        AssetMaterialization(
            asset_key="messages",
            description=f"journey {csid} refreshed from the customer-session endpoint",
            metadata={
                "customersessionid": csid,
                "window": f"{days[0].day} .. {days[-1].day}",
                "records_fetched": result.fetched,
                "messages_before": result.before,
                "messages_after": result.stored,
            },
        )
    )


@job(description="Refresh one customer journey's rows from the customer-session endpoint.")
def refresh_journey() -> None:
    refresh_journey_rows()
