"""The code location that `dagster dev` loads (see workspace.yaml)."""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from de_pipeline.defs.assets import RAW_MESSAGES, TABLE_ASSETS
from de_pipeline.defs.check import check_connection_job
from de_pipeline.defs.dashboard import dashboard
from de_pipeline.defs.jobs import all_assets_job, rebuild_from_archive_job
from de_pipeline.defs.journey import refresh_journey
from de_pipeline.defs.resources import resources_from_env
from de_pipeline.defs.schedules import daily_refresh
from de_pipeline.defs.sensors import alert_on_run_failure, free_stale_pool_slots, publish_readers_copy

defs = Definitions(
    assets=[*RAW_MESSAGES, *TABLE_ASSETS, dashboard],
    jobs=[all_assets_job, rebuild_from_archive_job, refresh_journey, check_connection_job],
    schedules=[daily_refresh],
    sensors=[free_stale_pool_slots, alert_on_run_failure, publish_readers_copy],
    resources=resources_from_env(),
    # one process per run: the steps share the embedded simulator and run one after another
    executor=in_process_executor,
)
