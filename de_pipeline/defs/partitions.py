"""The daily partitions every asset shares, in DE_TIMEZONE."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dagster import BackfillPolicy, DailyPartitionsDefinition, PartitionKeyRange

from de_pipeline.api.settings import RETENTION_DAYS
from de_pipeline.env import Env, SettingsError
from de_pipeline.warehouse.days import DayBounds, calendar_days
from de_pipeline.warehouse.settings import timezone_from_env

MAX_PARTITIONS_PER_RUN = 7  # a run is one transaction; why 7: docs/performance.md, "Why runs of 7 days"


@dataclass(frozen=True)
class CalendarSettings:
    """The partitions' calendar: DE_TIMEZONE (read by the warehouse settings, which own it),
    DE_START_DATE, DE_LOOKBACK_DAYS, DE_REFRESH_AT (when the daily schedule loads yesterday)
    and DE_FRESH_BY (by when yesterday should be loaded: after DE_REFRESH_AT)."""

    timezone: str
    start: date  # the first partition
    lookback_days: int  # days before yesterday that each daily run re-fetches
    fresh_by: time = time(6, 0)  # yesterday should be loaded by then (DE_FRESH_BY)
    refresh_at: time = time(1, 0)  # the daily schedule loads yesterday then (DE_REFRESH_AT)

    @property
    def fresh_by_cron(self) -> str:
        """The daily deadline as a cron schedule (in `timezone`)."""
        return _daily_cron(self.fresh_by)

    @property
    def refresh_cron(self) -> str:
        """The daily refresh as a cron schedule (in `timezone`)."""
        return _daily_cron(self.refresh_at)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CalendarSettings:
        env = Env(environ)
        timezone = timezone_from_env(environ)
        today = datetime.now(ZoneInfo(timezone)).date()
        # default: as far back as the vendor's retention reaches
        start = env.day("DE_START_DATE") or today - timedelta(days=RETENTION_DAYS - 1)
        if start >= today:
            raise SettingsError(f"DE_START_DATE={start} must be before today ({today} in {timezone})")
        lookback = env.integer("DE_LOOKBACK_DAYS", 2, minimum=0, maximum=MAX_PARTITIONS_PER_RUN - 1)
        fresh_by, refresh_at = _time_of_day(env, "DE_FRESH_BY", "06:00"), _time_of_day(env, "DE_REFRESH_AT", "01:00")
        if refresh_at >= fresh_by:
            raise SettingsError(
                f"DE_REFRESH_AT={refresh_at:%H:%M} is not before DE_FRESH_BY={fresh_by:%H:%M}: yesterday would be "
                "late every day; refresh earlier, or move the deadline"
            )
        return cls(timezone, start, lookback, fresh_by, refresh_at)


def _time_of_day(env: Env, name: str, default: str) -> time:
    value = env.text(name, default)
    try:
        return time.fromisoformat(value).replace(second=0, microsecond=0)
    except ValueError:
        raise SettingsError(f"{name}={value!r} is not a time of day like {default}") from None


def _daily_cron(at: time) -> str:
    return f"{at.minute} {at.hour} * * *"


# The tags of a run over a range of partitions (as Dagster's own backfills tag them)
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def range_tags(first_key: str, last_key: str) -> dict[str, str]:
    return {RANGE_START_TAG: first_key, RANGE_END_TAG: last_key}


def daily_partitions(calendar: CalendarSettings) -> DailyPartitionsDefinition:
    """The days from DE_START_DATE to yesterday, in DE_TIMEZONE."""
    return DailyPartitionsDefinition(start_date=calendar.start.isoformat(), timezone=calendar.timezone, end_offset=0)


BACKFILL_POLICY = BackfillPolicy.multi_run(max_partitions_per_run=MAX_PARTITIONS_PER_RUN)


def day_bounds(keys: PartitionKeyRange, timezone: str) -> list[DayBounds]:
    """Each day of the range with its half-open epoch-ms bounds (23, 24 or 25 hours long) in
    `timezone`: DE_TIMEZONE, or an account's own (a partition is that account's calendar day)."""
    return calendar_days(date.fromisoformat(keys.start), date.fromisoformat(keys.end), timezone)
