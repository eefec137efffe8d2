"""Jobs: everything, or everything but the fetch (rebuild from the raw archive). Both end
with the unpartitioned `dashboard`, which Dagster runs in the same run, after the tables."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from de_pipeline.defs.assets import RAW_MESSAGES
from de_pipeline.defs.freshness import FRESHNESS_CHECKS
from de_pipeline.defs.partitions import DAILY

# the freshness checks run on their own, by their sensor, not inside every backfill run
TABLES_AND_THEIR_CHECKS = AssetSelection.all() - AssetSelection.checks(*FRESHNESS_CHECKS)

all_assets_job = define_asset_job(
    "all_assets",
    selection=TABLES_AND_THEIR_CHECKS,
    partitions_def=DAILY,
    description="Fetch the days from the API, rebuild messages and every daily table, then the dashboard.",
)

rebuild_from_archive_job = define_asset_job(
    "rebuild_from_archive",
    selection=TABLES_AND_THEIR_CHECKS - AssetSelection.assets(*RAW_MESSAGES),
    partitions_def=DAILY,
    description="Rebuild messages, every daily table and the dashboard from the raw archive, without fetching.",
)
