"""The daily schedule asks for yesterday plus the lookback, in DE_TIMEZONE."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta

import pytest
from dagster import build_schedule_context

from de_pipeline.defs.definitions import defs
from de_pipeline.defs.jobs import all_assets_job
from de_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG, CalendarSettings, daily_partitions
from de_pipeline.defs.schedules import daily_refresh_schedule
from de_pipeline.env import SettingsError
from de_pipeline.warehouse.tables import DAILY_TABLES


def evaluate(moment: datetime, calendar: CalendarSettings | None = None) -> tuple[str, str]:
    """The range the schedule of `calendar` (the environment's by default) asks for at `moment`."""
    calendar = calendar or CalendarSettings.from_env()
    daily = daily_partitions(calendar)
    daily_refresh = daily_refresh_schedule(calendar, daily, all_assets_job(daily))
    request = daily_refresh(build_schedule_context(scheduled_execution_time=moment))
    return request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]


def todays_tick() -> tuple[datetime, str]:
    """01:00 UTC today, the default tick, and yesterday: a fixed day falls out of the partitions
    (the last 365 days by default) a year on, and the schedule starts no range before them."""
    today = datetime.now(UTC).date()
    return datetime.combine(today, time(1), UTC), str(today - timedelta(days=1))


def test_yesterday_and_two_days_of_lookback_by_default():
    moment, yesterday = todays_tick()
    assert evaluate(moment) == (str(moment.date() - timedelta(days=3)), yesterday)


def test_lookback_is_configurable():
    """The tick uses the calendar the definitions were built with (their one read of DE_LOOKBACK_DAYS)."""
    calendar = CalendarSettings.from_env({"DE_LOOKBACK_DAYS": "0"})
    moment, yesterday = todays_tick()
    assert evaluate(moment, calendar) == (yesterday, yesterday)
    with pytest.raises(SettingsError, match=r"DE_LOOKBACK_DAYS=9 must be in \[0, 6\]"):
        CalendarSettings.from_env({"DE_LOOKBACK_DAYS": "9"})


def test_schedule_runs_every_asset_daily_and_is_on_by_default():
    schedule = defs().resolve_schedule_def("daily_refresh")
    assert schedule.cron_schedule == "0 1 * * *"
    assert schedule.default_status.value == "RUNNING"
    job = defs().resolve_job_def(schedule.job_name)
    tables = {"messages", *(t.name for t in DAILY_TABLES)}  # rejected_messages, loaded_days: by messages
    expected = {"raw_messages", *tables, "dashboard"}  # the dashboard after the tables, in the same run
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == expected


def test_the_refresh_time_is_a_setting_before_the_freshness_deadline():
    from de_pipeline.defs.partitions import CalendarSettings

    assert CalendarSettings.from_env({"DE_REFRESH_AT": "02:30"}).refresh_cron == "30 2 * * *"
    late = {"DE_REFRESH_AT": "07:00", "DE_FRESH_BY": "06:00"}
    with pytest.raises(SettingsError, match=r"^DE_REFRESH_AT=07:00 is not before DE_FRESH_BY=06:00: yesterday would"):
        CalendarSettings.from_env(late)
    with pytest.raises(SettingsError, match=r"^DE_REFRESH_AT='1am' is not a time of day like 01:00$"):
        CalendarSettings.from_env({"DE_REFRESH_AT": "1am"})


def test_the_schedule_runs_at_de_refresh_at():
    """The code location, loaded as `dagster dev` loads it, ticks at DE_REFRESH_AT."""
    code = (
        "from de_pipeline.defs.definitions import defs; s = defs().resolve_schedule_def('daily_refresh'); "
        "print(s.cron_schedule, '|', s.description)"
    )
    env = dict(os.environ, DE_REFRESH_AT="03:15", DE_FRESH_BY="09:00")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.startswith("15 3 * * * | At 03:15 (DE_REFRESH_AT)"), out
