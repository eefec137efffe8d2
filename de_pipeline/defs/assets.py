"""The asset graph: raw_messages -> messages -> the daily aggregates.

Each asset is a thin step: it resolves settings, calls `api/` or `warehouse/`, and reports
metadata. A run covers at most 7 days (one legal API window).
"""

# No `from __future__ import annotations`: Dagster reads the context and config annotations.

from dataclasses import dataclass
from typing import TypeVar

import duckdb
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    DailyPartitionsDefinition,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)

from de_pipeline.accounts import Account
from de_pipeline.api import Window
from de_pipeline.defs.catalog import (
    CatalogSettings,
    OwnedArguments,
    TableAssetArguments,
    asset_catalog,
    owned,
    preview_table,
)
from de_pipeline.defs.partitions import BACKFILL_POLICY, day_bounds
from de_pipeline.defs.resources import DigitalEngagementApi, Warehouse
from de_pipeline.ingest import empty_run_warning, fetch_days
from de_pipeline.warehouse.aggregates import refresh_aggregate
from de_pipeline.warehouse.checks import MESSAGE_CHECKS, CheckOutcome, message_checks, reconcile
from de_pipeline.warehouse.connection import write_conflicts_retried, writer
from de_pipeline.warehouse.days import DayBounds, day_bounds_table
from de_pipeline.warehouse.empty_days import unexplained_empty_run
from de_pipeline.warehouse.messages import load_messages
from de_pipeline.warehouse.provenance import archive_source, claim_warehouse_source
from de_pipeline.warehouse.schema import one_row
from de_pipeline.warehouse.settings import LakeSettings, WarehouseSettings
from de_pipeline.warehouse.summary import daily_metrics, top_rows
from de_pipeline.warehouse.tables import DAILY_TABLES, MESSAGES, DailyTable, Table

API_POOL = "digital_engagement_api"
WAREHOUSE_POOL = "duckdb_warehouse"  # DuckDB allows one writing process: limit 1
PREVIEW_ROWS = 10
_Arguments = TypeVar("_Arguments", bound=OwnedArguments)  # owned() or asset_catalog()


def _window_text(days: list[DayBounds]) -> str:
    return f"{days[0].day} .. {days[-1].day} ({Window(days[0].start_ms, days[-1].end_ms)})"


def _table_metadata(table: Table, settings: WarehouseSettings, total_rows: int) -> dict[str, str | int]:
    """Where the table lives (database.schema.table, as lineage tools read it) and its rows."""
    return {"dagster/table_name": f"{settings.database_name}.main.{table.name}", "dagster/row_count": total_rows}


def _total_rows(connection: duckdb.DuckDBPyConnection, table: Table) -> int:
    return one_row(connection.execute(f"SELECT count(*) FROM {table.name}"))[0]


@dataclass(frozen=True)
class GraphSettings:
    """What every account's assets share, from the settings: the daily partitions, and the
    catalog's owners, tags and freshness policy."""

    daily: DailyPartitionsDefinition
    catalog: CatalogSettings
    freshness: FreshnessPolicy
    warehouse_pool: str | None = WAREHOUSE_POOL  # the write steps' pool (warehouse_pool); None: none


def warehouse_pool(lake: LakeSettings | None) -> str | None:
    """The pool of the steps that write the warehouse: one DuckDB file (or a lake whose
    catalog is a DuckDB file) has one writer at a time, so WAREHOUSE_POOL (limit 1); a lake
    with a PostgreSQL catalog takes many, each retrying a write conflict, so none."""
    return None if lake is not None and lake.parallel_writers else WAREHOUSE_POOL


@dataclass(frozen=True)
class AccountAssets:
    """One account's asset graph: raw_messages -> messages -> the daily tables."""

    account: Account
    raw_messages: AssetsDefinition
    messages: AssetsDefinition
    daily_tables: tuple[AssetsDefinition, ...]

    @property
    def tables(self) -> list[AssetsDefinition]:
        """The assets that write warehouse tables."""
        return [self.messages, *self.daily_tables]


def account_assets(account: Account, shared: GraphSettings) -> AccountAssets:
    """The asset graph of one account. The single account of DE_PROVIDER_ID has the plain
    keys (`messages`); an account of DE_PROVIDERS_FILE has its name in front (`acme/messages`)
    and an API pool of its own, so that accounts fetch at once, each at its own rate limit
    (its key's limiter: api/limiter.py)."""
    raw = raw_messages_asset(account, shared)
    messages = messages_asset(account, raw, shared)
    built = {"messages": messages}
    for table in DAILY_TABLES:  # the registry lists a table after its upstream
        built[table.name] = daily_table_asset(table, account, built[table.upstream], shared)
    return AccountAssets(account, raw, messages, tuple(built[table.name] for table in DAILY_TABLES))


def account_key(account: Account, name: str) -> AssetKey:
    """`name`, or `<account>/name` for an account of DE_PROVIDERS_FILE."""
    return AssetKey([name] if account.is_default else [account.name, name])


def _grouped(account: Account, arguments: _Arguments) -> _Arguments:
    """An account of DE_PROVIDERS_FILE is a group of its own in the UI (materialise or backfill it alone)."""
    if account.is_default:
        return arguments
    regrouped = arguments.copy()
    regrouped["group_name"] = account.name
    return regrouped


def raw_messages_asset(account: Account, shared: GraphSettings) -> AssetsDefinition:
    @asset(
        key=account_key(account, "raw_messages"),
        partitions_def=shared.daily,
        backfill_policy=BACKFILL_POLICY,
        pool=API_POOL if account.is_default else f"{API_POOL}_{account.name}",
        kinds={"api", "parquet"},
        **_grouped(account, owned(shared.catalog)),
    )
    def raw_messages(
        context: AssetExecutionContext, api: DigitalEngagementApi, warehouse: Warehouse
    ) -> MaterializeResult:
        """Every record the Digital Engagement API returned for each day, kept exactly as sent:
        one Parquet file per day in the raw archive (DE_ARCHIVE_DIR). `messages` is rebuilt from
        it, also after the vendor has deleted the day (it keeps 365 days)."""
        settings = warehouse.settings(account)
        source = api.source(account)
        days = day_bounds(context.partition_key_range, settings.timezone)
        done = fetch_days(source, settings, days, allow_source_change=settings.allow_source_change, log=context.log)
        for day, metadata in done.day_metadata(source.simulated).items():
            context.add_asset_metadata(metadata, partition_key=day.isoformat())
        return MaterializeResult(
            metadata={
                "account": account.name,
                "window": _window_text(days),
                "source": source.label,
                "simulated": source.simulated,
                "records_fetched": done.stats.rows,
                "api_requests": done.stats.requests,
                "api_retries": done.stats.retries,
                "api_429s": done.stats.refused_429,  # over 1% of api_requests: a WARNING says what to do
                "pages": done.stats.pages,
                "pages_with_repaired_utf8": done.stats.repaired_pages,
                # near DE_MAX_REQUESTS_PER_SECOND with a wait share well above 0: the vendor's limit
                # is the bottleneck; below it with a share near 0: the server's latency or this machine
                "requests_per_second": round(done.requests_per_second, 2),
                "limiter_wait_share": round(done.limiter_wait_share, 3),
                "archive": MetadataValue.path(str(settings.archive_dir)),
            }
        )

    return raw_messages


def _check_result(outcome: CheckOutcome, asset_key: AssetKey) -> AssetCheckResult:
    return AssetCheckResult(
        asset_key=asset_key,
        check_name=outcome.name,
        passed=outcome.passed,
        severity=AssetCheckSeverity.ERROR if outcome.blocking else AssetCheckSeverity.WARN,
        description=outcome.description,
        metadata=outcome.metadata,
    )


def _table_asset(
    account: Account,
    key: AssetKey,
    table: Table,
    upstream: AssetsDefinition,
    checks: list[AssetCheckSpec],
    shared: GraphSettings,
) -> TableAssetArguments:
    """The @asset arguments of a warehouse table: partitioned like the rest, one writer at a
    time (the warehouse pool) unless the warehouse takes many, in the catalog with its columns."""
    return {
        "key": key,
        "partitions_def": shared.daily,
        "backfill_policy": BACKFILL_POLICY,
        "pool": shared.warehouse_pool,
        "kinds": {"duckdb"},
        "deps": [upstream],
        "check_specs": checks,
        **_grouped(account, asset_catalog(table, shared.catalog, shared.freshness)),
    }


def messages_asset(account: Account, raw: AssetsDefinition, shared: GraphSettings) -> AssetsDefinition:
    key = account_key(account, MESSAGES.name)

    checks = [
        AssetCheckSpec(check.name, asset=key, blocking=check.blocking, description=check.description)
        for check in MESSAGE_CHECKS
    ]

    @asset(**_table_asset(account, key, MESSAGES, raw, checks, shared))
    def _messages(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
        settings = warehouse.settings(account)
        days = day_bounds(context.partition_key_range, settings.timezone)
        source = archive_source(settings.archive_dir)
        with writer(settings) as connection:
            if source is not None:
                write_conflicts_retried(
                    settings,
                    lambda: claim_warehouse_source(
                        connection,
                        source,
                        account=settings.account,
                        allow_change=settings.allow_source_change,
                        where=settings.where,
                    ),
                )
            load = load_messages(connection, days, settings)
            day_bounds_table(connection, days)  # the load left its last step's days in it
            checks = message_checks(connection, days[0].day, days[-1].day, settings)
            empty = unexplained_empty_run(connection, settings.account, days[0].day, days[-1].day)
            total_rows = _total_rows(connection, MESSAGES)
        for day in load.days:
            context.add_asset_metadata(
                {
                    "dagster/partition_row_count": day.stored,
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
            "messages of %s for %s: %d stored, %d duplicates dropped, %d rejected",
            account.name,
            _window_text(days),
            load.total("stored"),
            load.total("duplicates"),
            load.total("rejected"),
        )
        if empty is not None:  # a setting may be wrong: the tables would be built empty in silence
            records = load.total("archived")
            context.log.warning(empty_run_warning(empty, account.name, source, records))
        return MaterializeResult(
            # the run's totals; each partition also gets its own day's numbers (above)
            metadata={
                "account": account.name,
                "run_window": _window_text(days),
                "run_records_archived": load.total("archived"),
                "run_rows_stored": load.total("stored"),
                "run_duplicates_dropped": load.total("duplicates"),
                "run_rows_rejected": load.total("rejected"),
                "run_rejected_reasons": load.rejected_reasons or "none",
                "run_unparsed_sessionids": load.total("unparsed_sessionids"),
                "source": source or "nothing archived",
                **_table_metadata(MESSAGES, settings, total_rows),
            },
            check_results=[_check_result(c, key) for c in checks],
        )

    return _messages


def daily_table_asset(
    table: DailyTable, account: Account, upstream: AssetsDefinition, shared: GraphSettings
) -> AssetsDefinition:
    """The asset of a registry table computed in SQL from `upstream` (sql/<table>.sql)."""
    key = account_key(account, table.name)

    check = AssetCheckSpec("counts_reconcile", asset=key, description=f"counts add up to {table.upstream}")

    @asset(**_table_asset(account, key, table, upstream, [check], shared))
    def _daily_table(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
        settings = warehouse.settings(account)
        days = day_bounds(context.partition_key_range, settings.timezone)
        first_day, last_day = days[0].day, days[-1].day
        with writer(settings) as connection:
            rows = refresh_aggregate(connection, table, first_day, last_day, settings)
            day_bounds_table(connection, days)
            outcome = reconcile(connection, table, settings)
            plotted = daily_metrics(connection, table, settings.account, first_day, last_day)
            preview = top_rows(connection, table.name, settings.account, first_day, last_day, PREVIEW_ROWS)
            total_rows = _total_rows(connection, table)
        for day, metrics in plotted.items():
            context.add_asset_metadata(metrics, partition_key=day.isoformat())
        return MaterializeResult(
            metadata={
                "account": account.name,
                "window": _window_text(days),
                "rows": rows,
                "preview": preview_table(table, preview),
                **_table_metadata(table, settings, total_rows),
            },
            check_results=[_check_result(outcome, key)],
        )

    return _daily_table
