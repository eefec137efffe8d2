"""The definitions, built from the settings when they are asked for, never on import.

Importing a module of de_pipeline reads no setting: `build_pipeline` reads them, each in its
one place (CalendarSettings, CatalogSettings, AlertSettings, the accounts, the resources'
variables), and a bad one stops the build with its SettingsError, one line naming it.
definitions.py builds them for `dagster dev`; the in-process runner, the CLI and the tests
ask `pipeline()`, which builds them once per process and again only when a setting changed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dagster import AssetsDefinition, DailyPartitionsDefinition, Definitions, in_process_executor

from de_pipeline.accounts import Account, accounts_from_env
from de_pipeline.alerts import AlertSettings
from de_pipeline.defs.assets import WAREHOUSE_POOL, AccountAssets, GraphSettings, account_assets, warehouse_pool
from de_pipeline.defs.catalog import CatalogSettings
from de_pipeline.defs.check import check_connection_job
from de_pipeline.defs.dashboard import dashboard_asset
from de_pipeline.defs.freshness import freshness_policy
from de_pipeline.defs.jobs import all_assets_job, rebuild_from_archive_job
from de_pipeline.defs.journey import refresh_journey
from de_pipeline.defs.lake_upkeep import lake_upkeep, weekly_lake_upkeep
from de_pipeline.defs.partitions import CalendarSettings, daily_partitions
from de_pipeline.defs.resources import bound_resources, set_resource_variables
from de_pipeline.defs.schedules import daily_refresh_schedule
from de_pipeline.defs.sensors import alert_sensor, free_stale_pool_slots, publish_readers_copy
from de_pipeline.env import Env
from de_pipeline.warehouse.settings import LakeSettings

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True)
class DefinitionSettings:
    """Every setting that shapes the definitions."""

    calendar: CalendarSettings
    catalog: CatalogSettings
    alerts: AlertSettings
    accounts: tuple[Account, ...]
    resource_variables: frozenset[str]  # those set: the resources' fields bind them as EnvVar
    warehouse_pool: str | None = WAREHOUSE_POOL  # the write steps' pool: none for a lake of many writers
    lake: bool = False  # DE_WAREHOUSE is a lake: its upkeep job and schedule too

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DefinitionSettings:
        lake = LakeSettings.from_env(Env(environ))
        return cls(
            CalendarSettings.from_env(environ),
            CatalogSettings.from_env(environ),
            AlertSettings.from_env(environ),
            accounts_from_env(environ),
            set_resource_variables(environ),
            warehouse_pool(lake),
            lake is not None,
        )


@dataclass(frozen=True)
class Pipeline:
    """The built definitions, with the parts the runner and the tests look at."""

    settings: DefinitionSettings
    daily: DailyPartitionsDefinition
    account_assets: tuple[AccountAssets, ...]
    defs: Definitions

    @property
    def accounts(self) -> tuple[Account, ...]:
        return self.settings.accounts

    @property
    def raw_messages(self) -> list[AssetsDefinition]:
        return _raw_messages(self.account_assets)

    @property
    def table_assets(self) -> list[AssetsDefinition]:
        return _table_assets(self.account_assets)


def _raw_messages(graphs: tuple[AccountAssets, ...]) -> list[AssetsDefinition]:
    return [graph.raw_messages for graph in graphs]


def _table_assets(graphs: tuple[AccountAssets, ...]) -> list[AssetsDefinition]:
    return [asset for graph in graphs for asset in graph.tables]


def build_pipeline(settings: DefinitionSettings | None = None) -> Pipeline:
    """The definitions of `settings` (read from the environment by default)."""
    settings = settings or DefinitionSettings.from_env()
    daily = daily_partitions(settings.calendar)
    shared = GraphSettings(daily, settings.catalog, freshness_policy(settings.calendar), settings.warehouse_pool)
    graphs = tuple(account_assets(account, shared) for account in settings.accounts)
    raw, tables = _raw_messages(graphs), _table_assets(graphs)
    everything = all_assets_job(daily)
    lake_jobs, lake_schedules = ([lake_upkeep], [weekly_lake_upkeep(settings.calendar)]) if settings.lake else ([], [])
    defs = Definitions(
        assets=[*raw, *tables, dashboard_asset(tables, settings.catalog)],
        jobs=[everything, rebuild_from_archive_job(daily, raw), refresh_journey, check_connection_job, *lake_jobs],
        schedules=[daily_refresh_schedule(settings.calendar, daily, everything), *lake_schedules],
        sensors=[free_stale_pool_slots, alert_sensor(settings.alerts), publish_readers_copy],
        resources=bound_resources(settings.resource_variables),
        # one process per run: the steps share the embedded simulator and run one after another
        executor=in_process_executor,
    )
    return Pipeline(settings, daily, graphs, defs)


_built: Pipeline | None = None
_building = threading.Lock()


def pipeline() -> Pipeline:
    """This process's definitions, built on the first call and again when a setting that
    shapes them has changed since (a test's monkeypatch, the CLI's --demo accounts)."""
    global _built
    settings = DefinitionSettings.from_env()
    with _building:
        if _built is None or _built.settings != settings:
            _built = build_pipeline(settings)
        return _built
