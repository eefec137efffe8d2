"""The daily schedule: yesterday, plus a lookback for late-arriving messages."""

# No `from __future__ import annotations`: Dagster reads the context and config annotations.

from datetime import timedelta

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, schedule

from de_pipeline.defs.jobs import all_assets_job
from de_pipeline.defs.partitions import DAILY, CalendarSettings

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def range_tags(first_key: str, last_key: str) -> dict[str, str]:
    return {RANGE_START_TAG: first_key, RANGE_END_TAG: last_key}


@schedule(
    job=all_assets_job,
    cron_schedule="0 1 * * *",
    execution_timezone=DAILY.timezone,
    default_status=DefaultScheduleStatus.RUNNING,
    description="At 01:00 in DE_TIMEZONE: yesterday and the DE_LOOKBACK_DAYS before it.",
)
def daily_refresh(context: ScheduleEvaluationContext) -> RunRequest:
    yesterday = (context.scheduled_execution_time - timedelta(days=1)).date()
    first = max(yesterday - timedelta(days=CalendarSettings.from_env().lookback_days), DAILY.start.date())
    first_key, last_key = first.isoformat(), yesterday.isoformat()
    return RunRequest(run_key=f"{first_key}..{last_key}", tags=range_tags(first_key, last_key))
