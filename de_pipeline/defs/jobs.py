"""Jobs: everything, or everything but the fetch (rebuild from the raw archive). Both end
with the unpartitioned `dashboard`, which Dagster runs in the same run, after the tables."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from de_pipeline.defs.assets import RAW_MESSAGES
from de_pipeline.defs.partitions import DAILY

all_assets_job = define_asset_job(
    "all_assets",
    selection=AssetSelection.all(),
    partitions_def=DAILY,
    description="Fetch the days from the API, rebuild messages and every daily table, then the dashboard.",
)

rebuild_from_archive_job = define_asset_job(
    "rebuild_from_archive",
    selection=AssetSelection.all() - AssetSelection.assets(*RAW_MESSAGES),
    partitions_def=DAILY,
    description="Rebuild messages, every daily table and the dashboard from the raw archive, without fetching.",
)
