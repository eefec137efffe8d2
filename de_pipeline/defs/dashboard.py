"""The `dashboard` asset: one HTML file of charts, built after every daily table.

Unpartitioned: it is one file over the last DE_DASHBOARD_DAYS loaded days, so the UI shows
one latest materialisation with a link to the file, not a partition per day. Dagster 1.13
runs an unpartitioned asset inside a partitioned job's run, after its upstream steps: the
`all_assets` and `rebuild_from_archive` jobs (so the daily schedule) end with it, and an
asset backfill of the whole graph runs it once, after the last partition (docs/dashboard.md).
"""

# No `from __future__ import annotations`: Dagster reads the context annotation.

from typing import TYPE_CHECKING

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue, asset

from de_pipeline.accounts import accounts_from_env
from de_pipeline.dashboard.settings import DashboardSettings
from de_pipeline.defs.assets import WAREHOUSE_POOL
from de_pipeline.defs.catalog import CatalogSettings, owned
from de_pipeline.defs.resources import Warehouse
from de_pipeline.warehouse.settings import WarehouseSettings

if TYPE_CHECKING:
    from de_pipeline.dashboard.build import WrittenDashboard


def build_dashboard(settings: WarehouseSettings) -> dict[str, MetadataValue]:
    """Write the dashboard of all accounts (DE_DASHBOARD_PATH) and, with several accounts,
    one of each beside it (`dashboard-<account>.html`); the materialisation metadata."""
    # pandas and plotly load here, in the step that draws, not in every process that loads
    # the definitions (each run's steps, the backfill's weeks): about 40 MiB, 75 with pyarrow
    from de_pipeline.dashboard.build import write_dashboard

    dashboard = DashboardSettings.from_env(settings)
    metadata = dashboard_metadata(write_dashboard(settings, dashboard))
    accounts = [account.name for account in accounts_from_env()]
    if len(accounts) > 1:
        each = {name: write_dashboard(settings, dashboard.for_account(name), name) for name in accounts}
        metadata["account_dashboards"] = MetadataValue.json({n: str(w.path.resolve()) for n, w in each.items()})
    return metadata


def dashboard_metadata(written: "WrittenDashboard") -> dict[str, MetadataValue]:
    """What the UI shows of a written dashboard: the file (path and link), its days, its charts."""
    path = written.path.resolve()
    return {
        "path": MetadataValue.path(str(path)),
        "url": MetadataValue.url(path.as_uri()),
        "days": MetadataValue.text(f"{written.first_day} .. {written.last_day}" if written.last_day else "no data yet"),
        "last_loaded_day": MetadataValue.text(str(written.last_day or "none")),
        "charts_drawn": MetadataValue.int(len(written.drawn)),
        "charts_missing": MetadataValue.json(written.missing),
        "size_bytes": MetadataValue.int(written.size_bytes),
    }


def dashboard_asset(tables: list[AssetsDefinition], catalog: CatalogSettings) -> AssetsDefinition:
    """The `dashboard` asset, after every table asset."""

    @asset(
        # reads the DuckDB file, which a writer in another process locks: one step at a time
        pool=WAREHOUSE_POOL,
        kinds={"plotly", "html"},
        deps=tables,
        description=(
            "The morning dashboard: one self-contained HTML file (DE_DASHBOARD_PATH, default "
            "dashboard.html beside the warehouse) of charts over the last DE_DASHBOARD_DAYS loaded days: "
            "sentiment, intent confidence, redacted entities, journeys, agents and data health. "
            "Aggregates only; opens offline."
        ),
        **owned(catalog),
    )
    def dashboard(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
        metadata = build_dashboard(warehouse.settings())
        context.log.info("dashboard of %s written to %s", metadata["days"], metadata["path"].value)
        return MaterializeResult(metadata=metadata)

    return dashboard
