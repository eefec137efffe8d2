"""The `lake_upkeep` job and its weekly schedule, in the definitions of a lake only
(DE_WAREHOUSE=ducklake:...): warehouse/lake_upkeep.py does the work."""

# No `from __future__ import annotations`: Dagster reads the context annotation.

from dagster import DefaultScheduleStatus, OpExecutionContext, ScheduleDefinition, job, op

from de_pipeline.defs.partitions import CalendarSettings
from de_pipeline.defs.resources import Warehouse
from de_pipeline.warehouse.lake_upkeep import keep_the_lake

UPKEEP_CRON = "0 4 * * 0"  # Sundays at 04:00 in DE_TIMEZONE, after the daily refresh


@op(description="Expire old snapshots, merge small files, delete the files nothing needs any more.")
def keep_the_lake_tidy(context: OpExecutionContext, warehouse: Warehouse) -> None:
    done = keep_the_lake(warehouse.settings())
    context.log.info(
        "lake upkeep: %d snapshots expired, %d files written by merging, %d files deleted",
        done.snapshots_expired,
        done.files_merged,
        done.files_deleted,
    )


@job(
    description="A lake's upkeep (docs/lake.md): snapshots older than DE_LAKE_SNAPSHOT_DAYS expire, small "
    "files merge, and files no snapshot needs are deleted. The tables' rows are unchanged."
)
def lake_upkeep() -> None:
    keep_the_lake_tidy()


def weekly_lake_upkeep(calendar: CalendarSettings) -> ScheduleDefinition:
    """`weekly_lake_upkeep`: the upkeep on Sundays at 04:00 in DE_TIMEZONE."""
    return ScheduleDefinition(
        name="weekly_lake_upkeep",
        job=lake_upkeep,
        cron_schedule=UPKEEP_CRON,
        execution_timezone=calendar.timezone,
        default_status=DefaultScheduleStatus.RUNNING,
        description="Sundays at 04:00 in DE_TIMEZONE: the lake's upkeep (lake_upkeep).",
    )
