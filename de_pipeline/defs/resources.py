"""Resources: the API and the warehouse, configured from DE_* environment variables.

Settings are read from the environment when a run starts, not stored as Dagster config, so
the API key never appears in run config, the UI or event metadata.
"""

from __future__ import annotations

from dagster import ConfigurableResource

from de_pipeline.api import ApiSource, resolve_source
from de_pipeline.warehouse.settings import WarehouseSettings, timezone_from_env


class DigitalEngagementApi(ConfigurableResource):
    """The vendor's API when DE_API_BASE_URL is set, otherwise the embedded simulator."""

    def source(self) -> ApiSource:
        return resolve_source(timezone=timezone_from_env())


class Warehouse(ConfigurableResource):
    """The DuckDB file (DE_DUCKDB_PATH) and the raw archive beside it (DE_ARCHIVE_DIR)."""

    def settings(self) -> WarehouseSettings:
        return WarehouseSettings.from_env()
