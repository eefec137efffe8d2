"""Freshness: each table's check fails (WARN) when, after DE_FRESH_BY in DE_TIMEZONE,
yesterday's partition has not been materialised; a sensor evaluates the checks."""

from __future__ import annotations

from dagster import DefaultSensorStatus, build_sensor_for_freshness_checks, build_time_partition_freshness_checks

from de_pipeline.defs.assets import TABLE_ASSETS
from de_pipeline.defs.partitions import CALENDAR

FRESHNESS_CHECKS = build_time_partition_freshness_checks(
    assets=TABLE_ASSETS, deadline_cron=CALENDAR.fresh_by_cron, timezone=CALENDAR.timezone
)
freshness_sensor = build_sensor_for_freshness_checks(
    freshness_checks=FRESHNESS_CHECKS,
    minimum_interval_seconds=600,
    name="freshness_checks",
    default_status=DefaultSensorStatus.RUNNING,
)
