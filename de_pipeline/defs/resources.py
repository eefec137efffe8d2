"""Resources: the API and the warehouse, with typed fields that the Dagster UI shows.

Each field is filled with `EnvVar` from its DE_* variable (definitions.py), so the UI shows
which variable configures it and never its value: the API key is not in run config, the
UI or event metadata. A field left empty falls back to the environment when a run starts.
Either way the value goes through the one place that checks it (ApiSettings,
WarehouseSettings).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from de_pipeline.accounts import DEFAULT_ACCOUNT, Account
from de_pipeline.api import ApiSource
from de_pipeline.warehouse.settings import WarehouseSettings

DEFAULT = Account(DEFAULT_ACCOUNT)


class DigitalEngagementApi(ConfigurableResource):
    """The vendor's API when base_url is set, otherwise the embedded simulator."""

    base_url: str | None = Field(default=None, description="DE_API_BASE_URL; empty: the embedded simulator")
    provider_id: str | None = Field(default=None, description="DE_PROVIDER_ID: the account")
    api_key: str | None = Field(default=None, description="DE_API_KEY: a secret, set from the environment")

    def source(self, account: Account = DEFAULT) -> ApiSource:
        fields = {"DE_API_BASE_URL": self.base_url, "DE_PROVIDER_ID": self.provider_id, "DE_API_KEY": self.api_key}
        return account.api_source(_environment(fields))


class Warehouse(ConfigurableResource):
    """The DuckDB file and the raw archive beside it."""

    duckdb_path: str | None = Field(default=None, description="DE_DUCKDB_PATH: the warehouse file")
    archive_dir: str | None = Field(default=None, description="DE_ARCHIVE_DIR: the raw archive")

    def settings(self, account: Account = DEFAULT) -> WarehouseSettings:
        """The warehouse as `account`'s runs write it (the single account's by default)."""
        return account.warehouse_settings(
            _environment({"DE_DUCKDB_PATH": self.duckdb_path, "DE_ARCHIVE_DIR": self.archive_dir})
        )


RESOURCE_VARIABLES = {
    "api": {"base_url": "DE_API_BASE_URL", "provider_id": "DE_PROVIDER_ID", "api_key": "DE_API_KEY"},
    "warehouse": {"duckdb_path": "DE_DUCKDB_PATH", "archive_dir": "DE_ARCHIVE_DIR"},
}


def resources_from_env() -> dict[str, ConfigurableResource]:
    """The resources, each field an EnvVar of its variable where that is set when the code
    location loads (an unset one cannot be an EnvVar: Dagster would refuse to start a run)."""

    def bound(name: str) -> dict[str, EnvVar]:
        return {
            field: EnvVar(variable) for field, variable in RESOURCE_VARIABLES[name].items() if os.environ.get(variable)
        }

    return {"api": DigitalEngagementApi(**bound("api")), "warehouse": Warehouse(**bound("warehouse"))}


def _environment(fields: Mapping[str, str | None]) -> dict[str, str]:
    """The process environment, with the resource's fields over it."""
    return dict(os.environ) | {name: value for name, value in fields.items() if value}
