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

MAX_PARTITIONS_PER_RUN = 7  # one run is one legal API window


@dataclass(frozen=True)
class CalendarSettings:
    """The partitions' calendar: DE_TIMEZONE (read by the warehouse settings, which own it),
    DE_START_DATE, DE_LOOKBACK_DAYS, and DE_FRESH_BY (the hour by which yesterday should be
    loaded)."""

    timezone: str
    start: date  # the first partition
    lookback_days: int  # days before yesterday that each daily run re-fetches
    fresh_by: time = time(6, 0)  # yesterday should be loaded by then (DE_FRESH_BY)

    @property
    def fresh_by_cron(self) -> str:
        """The daily deadline as a cron schedule (in `timezone`)."""
        return f"{self.fresh_by.minute} {self.fresh_by.hour} * * *"

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
        fresh_by = env.text("DE_FRESH_BY", "06:00")
        try:
            deadline = time.fromisoformat(fresh_by)
        except ValueError:
            raise SettingsError(f"DE_FRESH_BY={fresh_by!r} is not a time of day like 06:00") from None
        return cls(timezone, start, lookback, deadline.replace(second=0, microsecond=0))


CALENDAR = CalendarSettings.from_env()
# days from DE_START_DATE to yesterday, in DE_TIMEZONE
DAILY = DailyPartitionsDefinition(start_date=CALENDAR.start.isoformat(), timezone=CALENDAR.timezone, end_offset=0)
BACKFILL_POLICY = BackfillPolicy.multi_run(max_partitions_per_run=MAX_PARTITIONS_PER_RUN)


def day_bounds(keys: PartitionKeyRange, timezone: str) -> list[DayBounds]:
    """Each day of the range with its half-open epoch-ms bounds (23, 24 or 25 hours long) in
    `timezone`: DE_TIMEZONE, or an account's own (a partition is that account's calendar day)."""
    return calendar_days(date.fromisoformat(keys.start), date.fromisoformat(keys.end), timezone)
