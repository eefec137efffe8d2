"""Resources: the API and the warehouse, with typed fields that the Dagster UI shows.

Each field is filled with `EnvVar` from its DE_* variable (build.py), so the UI shows
which variable configures it and never its value: the API key is not in run config, the
UI or event metadata. The knobs an operator turns for one run (how many days are fetched at
once, the request rate, writing another source's data) are fields too, set in the launchpad's
run config. A field left empty falls back to the environment when a run starts. Either way
the value goes through the one place that checks it (ApiSettings, WarehouseSettings), which
parses the process's settings once; an account's are a copy with its own fields replaced
(accounts.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from de_pipeline.accounts import Account
from de_pipeline.api import ApiSettings, ApiSource
from de_pipeline.warehouse.settings import DEFAULT_ACCOUNT, WarehouseSettings

DEFAULT = Account(DEFAULT_ACCOUNT)


class _Settings(ConfigurableResource):
    """A resource whose fields stand for DE_* variables (RESOURCE_VARIABLES)."""

    def environment(self) -> dict[str, str]:
        """The process environment, with the fields that are set laid over their variables,
        for the settings' one parser to check."""
        variables = RESOURCE_VARIABLES[type(self).__name__]
        fields = {variable: getattr(self, field) for field, variable in variables.items()}
        return dict(os.environ) | {variable: str(value) for variable, value in fields.items() if value}


class DigitalEngagementApi(_Settings):
    """The vendor's API when base_url is set, otherwise the embedded simulator."""

    base_url: str | None = Field(default=None, description="DE_API_BASE_URL; empty: the embedded simulator")
    provider_id: str | None = Field(default=None, description="DE_PROVIDER_ID: the account's id at the vendor")
    api_key: str | None = Field(default=None, description="DE_API_KEY: a secret, set from the environment")
    max_in_flight: str | None = Field(default=None, description="DE_MAX_IN_FLIGHT: windows fetched at once (1-64)")
    max_requests_per_second: str | None = Field(
        default=None, description="DE_MAX_REQUESTS_PER_SECOND: the request rate, for the whole process"
    )

    def source(self, account: Account = DEFAULT) -> ApiSource:
        return account.api_source(self.environment())

    def settings(self) -> ApiSettings | None:
        """The real API's settings of the single account, or None (the simulator)."""
        return ApiSettings.from_env(self.environment())


class Warehouse(_Settings):
    """The DuckDB file and the raw archive beside it."""

    duckdb_path: str | None = Field(default=None, description="DE_DUCKDB_PATH: the warehouse file")
    archive_dir: str | None = Field(default=None, description="DE_ARCHIVE_DIR: the raw archive")
    allow_source_change: str | None = Field(
        default=None, description="DE_ALLOW_SOURCE_CHANGE: write another source's data into this warehouse (1/0)"
    )

    def settings(self, account: Account = DEFAULT) -> WarehouseSettings:
        """The warehouse as `account`'s runs write it (the single account's by default)."""
        return account.warehouse_settings(WarehouseSettings.from_env(self.environment()))


# each field of a resource, by the variable it stands for
RESOURCE_VARIABLES = {
    "DigitalEngagementApi": {
        "base_url": "DE_API_BASE_URL",
        "provider_id": "DE_PROVIDER_ID",
        "api_key": "DE_API_KEY",
        "max_in_flight": "DE_MAX_IN_FLIGHT",
        "max_requests_per_second": "DE_MAX_REQUESTS_PER_SECOND",
    },
    "Warehouse": {
        "duckdb_path": "DE_DUCKDB_PATH",
        "archive_dir": "DE_ARCHIVE_DIR",
        "allow_source_change": "DE_ALLOW_SOURCE_CHANGE",
    },
}


def set_resource_variables(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The resources' variables that are set (in os.environ by default)."""
    environ = os.environ if environ is None else environ
    return frozenset(name for names in RESOURCE_VARIABLES.values() for name in names.values() if environ.get(name))


def bound_resources(set_variables: frozenset[str]) -> dict[str, ConfigurableResource]:
    """The resources, each field an EnvVar of its variable where that was set when the
    definitions were built (an unset one cannot be an EnvVar: Dagster would refuse to start a run)."""

    def bound(resource: type[_Settings]) -> dict[str, EnvVar]:
        variables = RESOURCE_VARIABLES[resource.__name__]
        return {field: EnvVar(variable) for field, variable in variables.items() if variable in set_variables}

    return {"api": DigitalEngagementApi(**bound(DigitalEngagementApi)), "warehouse": Warehouse(**bound(Warehouse))}
