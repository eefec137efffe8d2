"""The asset graph: raw_messages -> messages -> the daily aggregates.

Each asset is a thin step: it resolves settings, calls `api/` or `warehouse/`, and reports
metadata. A run covers at most 7 days (one legal API window).
"""

# No `from __future__ import annotations`: Dagster reads the context and config annotations.

import time
from datetime import UTC, datetime

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from de_pipeline.api import RETENTION_DAYS, DigitalEngagementClient, Window
from de_pipeline.defs.partitions import BACKFILL_POLICY, DAILY, day_bounds
from de_pipeline.defs.resources import DigitalEngagementApi, Warehouse
from de_pipeline.warehouse.aggregates import AGGREGATES, refresh_aggregate
from de_pipeline.warehouse.archive import ArchiveWriter, archived
from de_pipeline.warehouse.checks import CheckOutcome, message_checks, message_warnings, reconcile
from de_pipeline.warehouse.connection import writer
from de_pipeline.warehouse.days import DayBounds, day_bounds_table
from de_pipeline.warehouse.files import remove_leftovers
from de_pipeline.warehouse.messages import load_messages
from de_pipeline.warehouse.summary import daily_metrics, top_rows
from de_pipeline.warehouse.source import archive_source, claim_archive_source, claim_warehouse_source

API_POOL = "digital_engagement_api"
WAREHOUSE_POOL = "duckdb_warehouse"  # DuckDB allows one writing process: limit 1
GROUP = "digital_engagement"
PROGRESS_EVERY_PAGES = 100
PREVIEW_ROWS = 10
DAY_MS = 86_400_000


def _window_text(days: list[DayBounds]) -> str:
    return f"{days[0].day} .. {days[-1].day} ({Window(days[0].start_ms, days[-1].end_ms)})"


def _split_by_retention(days: list[DayBounds]) -> tuple[list[DayBounds], list[DayBounds], list[DayBounds]]:
    """(gone, partial, served): days wholly past the vendor's retention, days it cuts, the rest."""
    cutoff_ms = int(time.time() * 1000) - RETENTION_DAYS * DAY_MS
    gone = [d for d in days if d.end_ms <= cutoff_ms]
    partial = [d for d in days if d.start_ms < cutoff_ms < d.end_ms]
    served = [d for d in days if d.start_ms >= cutoff_ms]
    return gone, partial, served


@asset(
    partitions_def=DAILY,
    backfill_policy=BACKFILL_POLICY,
    pool=API_POOL,
    group_name=GROUP,
    kinds={"api", "parquet"},
)
def raw_messages(
    context: AssetExecutionContext, api: DigitalEngagementApi, warehouse: Warehouse
) -> MaterializeResult:
    """Every record the API returned for the days, kept as sent in a Parquet file per day
    (the replayable raw archive)."""
    settings = warehouse.settings()
    source = api.source()
    if source.simulated:
        context.log.info(
            "DE_API_BASE_URL is not set: reading the embedded simulator at %s (simulated data)",
            source.settings.base_url,
        )
    days = day_bounds(DAILY, context.partition_key_range)
    remove_leftovers(settings.archive_dir, context.log)  # what killed runs left
    gone, partial, to_fetch = _split_by_retention(days)
    kept = archived(settings.archive_dir, [d.day for d in gone])
    if len(kept) < len(gone):
        missing = [str(d.day) for d in gone if d.day not in kept]
        raise Failure(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} older than the vendor's "
            f"{RETENTION_DAYS}-day retention and not in the raw archive: the API would answer "
            "nothing, and an empty day would be stored as if it were real. Start the range later."
        )
    to_fetch = partial + to_fetch
    claim_archive_source(settings.archive_dir, source.label, allow_change=warehouse.allow_source_change())
    for day in kept:
        context.log.info("%s is past the vendor's retention: keeping its archived copy", day)
        context.add_asset_metadata({"kept_from_archive": True}, partition_key=day.isoformat())
    for bounds in partial:
        context.log.warning(
            "%s is cut by the vendor's %d-day retention: its earliest messages are gone, the day is partial",
            bounds.day,
            RETENTION_DAYS,
        )
        context.add_asset_metadata({"partial_retention": True}, partition_key=bounds.day.isoformat())
    if not to_fetch:
        return MaterializeResult(metadata={"window": _window_text(days), "source": source.label})

    fetched_at = datetime.now(UTC)
    with DigitalEngagementClient(source.settings, logger=context.log) as client, ArchiveWriter(
        settings, fetched_at
    ) as archive:
        # one day's window at a time: a record belongs to the day the API answered it for
        for number, bounds in enumerate(to_fetch, 1):
            window = Window(bounds.start_ms, bounds.end_ms)
            context.log.info("window %d of %d: %s %s", number, len(to_fetch), bounds.day, window)
            for page in client.provider_pages(window):
                archive.add(bounds.day, page.body)
                if client.stats.pages % PROGRESS_EVERY_PAGES == 0:
                    context.log.info("page %d: %d records so far", client.stats.pages, client.stats.rows)
            archive.end_day(bounds.day)
        context.log.info(
            "fetched %d records in %d pages (%d requests, %d retries); finishing the archive",
            client.stats.rows,
            client.stats.pages,
            client.stats.requests,
            client.stats.retries,
        )
        written = archive.commit(keep_larger=[d.day for d in partial])
    for day in written:
        metadata = {"records": day.records, "simulated": source.simulated}
        if day.kept_archived_copy:
            context.log.warning(
                "%s: kept the archived copy of %d records; the retention-cut re-fetch returned only %d",
                day.day,
                day.records,
                day.fetched,
            )
            metadata |= {"kept_archived_copy": True, "records_refetched": day.fetched}
        context.add_asset_metadata(metadata, partition_key=day.day.isoformat())
    stats = client.stats
    return MaterializeResult(
        metadata={
            "window": _window_text(to_fetch),
            "source": source.label,
            "simulated": source.simulated,
            "records_fetched": stats.rows,
            "api_requests": stats.requests,
            "api_retries": stats.retries,
            "pages": stats.pages,
            "pages_with_repaired_utf8": stats.repaired_pages,
            "archive": MetadataValue.path(str(settings.archive_dir)),
        }
    )


def _check_result(outcome: CheckOutcome, asset_key: str, severity: AssetCheckSeverity) -> AssetCheckResult:
    return AssetCheckResult(
        asset_key=asset_key,
        check_name=outcome.name,
        passed=outcome.passed,
        severity=severity,
        description=outcome.description,
        metadata=outcome.metadata,
    )


MESSAGE_CHECK_SPECS = [
    AssetCheckSpec("message_key_unique", asset="messages", blocking=True),
    AssetCheckSpec("ts_inside_partition", asset="messages", blocking=True),
    AssetCheckSpec("score_in_unit_range", asset="messages", blocking=True),
    AssetCheckSpec("sentiment_finite", asset="messages", blocking=True),
    AssetCheckSpec("unparsed_sessionid_share", asset="messages"),
    AssetCheckSpec("no_rejected_records", asset="messages"),
]


@asset(
    partitions_def=DAILY,
    backfill_policy=BACKFILL_POLICY,
    pool=WAREHOUSE_POOL,
    group_name=GROUP,
    kinds={"duckdb"},
    deps=[raw_messages],
    check_specs=MESSAGE_CHECK_SPECS,
)
def messages(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
    """One row per unique message, typed, rebuilt from the raw archive; unusable records go
    to rejected_messages with a reason."""
    settings = warehouse.settings()
    days = day_bounds(DAILY, context.partition_key_range)
    source = archive_source(settings.archive_dir)
    with writer(settings) as connection:
        if source is not None:
            claim_warehouse_source(
                connection,
                source,
                allow_change=warehouse.allow_source_change(),
                where=str(settings.duckdb_path),
            )
        load = load_messages(connection, days, settings)
        checks = message_checks(connection, days[0].day, days[-1].day)
        warnings = message_warnings(connection, days[0].day, days[-1].day, settings)
    for day in load.days:
        context.add_asset_metadata(
            {
                "messages": day.stored,
                "records_archived": day.archived,
                "duplicates_dropped": day.duplicates,
                "rejected": day.rejected,
                "conversations": day.conversations,
                "avg_sentiment": float("nan") if day.avg_sentiment is None else round(day.avg_sentiment, 4),
            },
            partition_key=day.day.isoformat(),
        )
    context.log.info(
        "messages for %s: %d stored, %d duplicates dropped, %d rejected",
        _window_text(days),
        load.total("stored"),
        load.total("duplicates"),
        load.total("rejected"),
    )
    return MaterializeResult(
        # the run's totals; each partition also gets its own day's numbers (above)
        metadata={
            "run_window": _window_text(days),
            "run_records_archived": load.total("archived"),
            "run_rows_stored": load.total("stored"),
            "run_duplicates_dropped": load.total("duplicates"),
            "run_rows_rejected": load.total("rejected"),
            "run_rejected_reasons": load.rejected_reasons or "none",
            "run_unparsed_sessionids": load.total("unparsed_sessionids"),
            "source": source or "nothing archived",
        },
        check_results=[_check_result(c, "messages", AssetCheckSeverity.ERROR) for c in checks]
        + [_check_result(c, "messages", AssetCheckSeverity.WARN) for c in warnings],
    )


def aggregate_asset(table: str, upstream: AssetsDefinition, description: str) -> AssetsDefinition:
    """A daily table computed in SQL from `upstream` (see warehouse/sql/<table>.sql)."""

    @asset(
        name=table,
        partitions_def=DAILY,
        backfill_policy=BACKFILL_POLICY,
        pool=WAREHOUSE_POOL,
        group_name=GROUP,
        kinds={"duckdb"},
        deps=[upstream],
        check_specs=[AssetCheckSpec("counts_reconcile", asset=table)],
        description=description,
    )
    def _aggregate(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
        settings = warehouse.settings()
        days = day_bounds(DAILY, context.partition_key_range)
        first_day, last_day = days[0].day, days[-1].day
        with writer(settings) as connection:
            rows = refresh_aggregate(connection, table, first_day, last_day, settings)
            day_bounds_table(connection, days)
            outcome = reconcile(connection, table, settings)
            plotted = daily_metrics(connection, table, first_day, last_day)
            preview = top_rows(connection, table, first_day, last_day, PREVIEW_ROWS)
        for day, metrics in plotted.items():
            context.add_asset_metadata(metrics, partition_key=day.isoformat())
        return MaterializeResult(
            metadata={
                "window": _window_text(days),
                "rows": rows,
                "preview": MetadataValue.md(preview),
            },
            check_results=[_check_result(outcome, table, AssetCheckSeverity.ERROR)],
        )

    return _aggregate


aggregates = [
    aggregate_asset(table, messages, f"Daily {table.replace('_', ' ')}, computed in SQL from messages.")
    for table in AGGREGATES
]
conversation_segments = aggregate_asset(
    "conversation_segments",
    messages,
    "One row per segment (sessionid) of each customer journey, by the day the journey started.",
)
customer_journeys = aggregate_asset(
    "customer_journeys",
    conversation_segments,
    "One row per customer journey: path of segments, handoffs, transfers, survey, sentiment change.",
)
journeys = [conversation_segments, customer_journeys]
