"""The daily partitions every asset shares, in DE_TIMEZONE."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from dagster import BackfillPolicy, DailyPartitionsDefinition, PartitionKeyRange

from de_pipeline.api.settings import RETENTION_DAYS
from de_pipeline.env import Env, SettingsError
from de_pipeline.warehouse.days import DayBounds, calendar_days

MAX_PARTITIONS_PER_RUN = 7  # one run is one legal API window


def daily_partitions(environ: Mapping[str, str] | None = None) -> DailyPartitionsDefinition:
    """Days from DE_START_DATE (default: as far back as the vendor's retention reaches) to
    yesterday, in DE_TIMEZONE."""
    env = Env(environ)
    timezone = env.timezone("DE_TIMEZONE")
    today = datetime.now(ZoneInfo(timezone)).date()
    start = env.day("DE_START_DATE") or today - timedelta(days=RETENTION_DAYS - 1)
    if start >= today:
        raise SettingsError(f"DE_START_DATE={start} must be before today ({today} in {timezone})")
    return DailyPartitionsDefinition(start_date=start.isoformat(), timezone=timezone, end_offset=0)


DAILY = daily_partitions()
BACKFILL_POLICY = BackfillPolicy.multi_run(max_partitions_per_run=MAX_PARTITIONS_PER_RUN)


def day_bounds(partitions: DailyPartitionsDefinition, keys: PartitionKeyRange) -> list[DayBounds]:
    """Each day of the range with its half-open epoch-ms bounds (23, 24 or 25 hours long)."""
    return calendar_days(date.fromisoformat(keys.start), date.fromisoformat(keys.end), partitions.timezone)
