"""The daily schedule: yesterday, plus a lookback for late-arriving messages."""

# No `from __future__ import annotations`: Dagster reads the context and config annotations.

from datetime import timedelta

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, schedule

from de_pipeline.defs.jobs import all_assets_job
from de_pipeline.defs.partitions import CALENDAR, DAILY, range_tags


@schedule(
    job=all_assets_job,
    cron_schedule=CALENDAR.refresh_cron,
    execution_timezone=DAILY.timezone,
    default_status=DefaultScheduleStatus.RUNNING,
    description=f"At {CALENDAR.refresh_at:%H:%M} (DE_REFRESH_AT) in DE_TIMEZONE: yesterday and the DE_LOOKBACK_DAYS "
    "days before it.",
)
def daily_refresh(context: ScheduleEvaluationContext) -> RunRequest:
    yesterday = (context.scheduled_execution_time - timedelta(days=1)).date()
    first = max(yesterday - timedelta(days=CALENDAR.lookback_days), DAILY.start.date())
    first_key, last_key = first.isoformat(), yesterday.isoformat()
    return RunRequest(run_key=f"{first_key}..{last_key}", tags=range_tags(first_key, last_key))
