"""The code location that `dagster dev` loads (see workspace.yaml)."""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from de_pipeline.defs.assets import daily_tables, messages, raw_messages
from de_pipeline.defs.dashboard import dashboard
from de_pipeline.defs.jobs import all_assets_job, rebuild_from_archive_job
from de_pipeline.defs.journey import refresh_journey
from de_pipeline.defs.resources import DigitalEngagementApi, Warehouse
from de_pipeline.defs.schedules import daily_refresh
from de_pipeline.defs.sensors import free_stale_pool_slots

defs = Definitions(
    assets=[raw_messages, messages, *daily_tables, dashboard],
    jobs=[all_assets_job, rebuild_from_archive_job, refresh_journey],
    schedules=[daily_refresh],
    sensors=[free_stale_pool_slots],
    resources={"api": DigitalEngagementApi(), "warehouse": Warehouse()},
    # one process per run: the steps share the embedded simulator and run one after another
    executor=in_process_executor,
)
