"""The daily schedule: yesterday, plus a lookback for late-arriving messages."""

# No `from __future__ import annotations`: Dagster reads the context and config annotations.

from datetime import timedelta
from typing import TYPE_CHECKING

from dagster import (
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    schedule,
)

from de_pipeline.defs.partitions import CalendarSettings, range_tags

if TYPE_CHECKING:  # what define_asset_job returns; Dagster does not export its name
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition


def daily_refresh_schedule(
    calendar: CalendarSettings, daily: DailyPartitionsDefinition, job: "UnresolvedAssetJobDefinition"
) -> ScheduleDefinition:
    """`daily_refresh`: `job` (all_assets, partitioned by `daily`) over yesterday and the
    DE_LOOKBACK_DAYS days before it."""

    @schedule(
        name="daily_refresh",
        job=job,
        cron_schedule=calendar.refresh_cron,
        execution_timezone=daily.timezone,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"At {calendar.refresh_at:%H:%M} (DE_REFRESH_AT) in DE_TIMEZONE: yesterday and the "
        "DE_LOOKBACK_DAYS days before it.",
    )
    def daily_refresh(context: ScheduleEvaluationContext) -> RunRequest:
        yesterday = (context.scheduled_execution_time - timedelta(days=1)).date()
        first = max(yesterday - timedelta(days=calendar.lookback_days), daily.start.date())
        first_key, last_key = first.isoformat(), yesterday.isoformat()
        return RunRequest(run_key=f"{first_key}..{last_key}", tags=range_tags(first_key, last_key))

    return daily_refresh
