"""One customer journey from the customer-session endpoint: fetch it, compare it with the
warehouse, or replace the warehouse's rows of it (the `refresh_journey` job), then rebuild
the dashboard from the corrected tables."""

# No `from __future__ import annotations`: Dagster reads the context and config annotations.

from datetime import date

from dagster import AssetMaterialization, Config, In, Nothing, OpExecutionContext, Out, job, op

from de_pipeline.accounts import account_named
from de_pipeline.defs.assets import WAREHOUSE_POOL, account_key
from de_pipeline.defs.dashboard import build_dashboard
from de_pipeline.defs.resources import DigitalEngagementApi, Warehouse
from de_pipeline.env import SettingsError
from de_pipeline.ingest import fetched_journey, journey_days
from de_pipeline.warehouse.aggregates import refresh_aggregate
from de_pipeline.warehouse.connection import writer
from de_pipeline.warehouse.journeys import replace_journey
from de_pipeline.warehouse.tables import DAILY_TABLES


class RefreshJourneyConfig(Config):
    """Which journey to refresh, and the days (in DE_TIMEZONE, both included) to look in."""

    customersessionid: str
    start: str
    end: str
    account: str = ""  # the account's name in DE_PROVIDERS_FILE; empty: the only account


@op(pool=WAREHOUSE_POOL, out=Out(Nothing))
def refresh_journey_rows(
    context: OpExecutionContext,
    config: RefreshJourneyConfig,
    api: DigitalEngagementApi,
    warehouse: Warehouse,
) -> None:
    """Replace one journey's messages from the customer-session endpoint, then rebuild the
    daily tables of the days it touches (so their counts still add up)."""
    account = account_named(config.account)
    settings = warehouse.settings(account)
    try:
        start, end = date.fromisoformat(config.start), date.fromisoformat(config.end)
    except ValueError as exc:
        raise SettingsError(f"start/end must be dates like 2026-01-31: {exc}") from None
    days = journey_days(start, end, settings.timezone)
    csid = config.customersessionid
    with fetched_journey(api.source(account), settings, csid, days, context.log) as files:
        with writer(settings) as connection:
            result = replace_journey(connection, csid, files, days, settings)
            for table in DAILY_TABLES:
                refresh_aggregate(connection, table, days[0].day, days[-1].day, settings)
    context.log.info(
        "journey %s: %d records fetched, %d messages stored (was %d), %d unusable records skipped",
        csid,
        result.fetched,
        result.stored,
        result.before,
        result.rejected,
    )
    context.log_event(
        AssetMaterialization(
            asset_key=account_key(account, "messages"),
            # the UI renders a description as Markdown: the id (the vendor's text) stays in the metadata
            description="one journey refreshed from the customer-session endpoint",
            metadata={
                "customersessionid": csid,
                "window": f"{days[0].day} .. {days[-1].day}",
                "records_fetched": result.fetched,
                "messages_before": result.before,
                "messages_after": result.stored,
            },
        )
    )


@op(pool=WAREHOUSE_POOL, ins={"after": In(Nothing)})
def refresh_dashboard_file(context: OpExecutionContext, warehouse: Warehouse) -> None:
    """Rebuild the dashboard, so that it shows the corrected daily tables."""
    context.log_event(
        AssetMaterialization(
            asset_key="dashboard",
            description="rebuilt after a journey refresh",
            metadata=build_dashboard(warehouse.settings()),
        )
    )


@job(description="Refresh one customer journey's rows from the customer-session endpoint, then the dashboard.")
def refresh_journey() -> None:
    refresh_dashboard_file(refresh_journey_rows())
