"""Jobs: everything, or everything but the fetch (rebuild from the raw archive). Both end
with the unpartitioned `dashboard`, which Dagster runs in the same run, after the tables."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster import AssetsDefinition, AssetSelection, DailyPartitionsDefinition, define_asset_job

if TYPE_CHECKING:  # what define_asset_job returns; Dagster does not export its name
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition


def all_assets_job(daily: DailyPartitionsDefinition) -> UnresolvedAssetJobDefinition:
    return define_asset_job(
        "all_assets",
        selection=AssetSelection.all(),
        partitions_def=daily,
        description="Fetch the days from the API, rebuild messages and every daily table, then the dashboard.",
    )


def rebuild_from_archive_job(
    daily: DailyPartitionsDefinition, raw_messages: list[AssetsDefinition]
) -> UnresolvedAssetJobDefinition:
    return define_asset_job(
        "rebuild_from_archive",
        selection=AssetSelection.all() - AssetSelection.assets(*raw_messages),
        partitions_def=daily,
        description="Rebuild messages, every daily table and the dashboard from the raw archive, without fetching.",
    )
