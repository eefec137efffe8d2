"""Sensors: free the pool slots of runs whose process is gone (see pool_slots.py)."""

# No `from __future__ import annotations`: Dagster reads the context annotation.

from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from de_pipeline.pool_slots import free_stale_slots


@sensor(
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Every 30 s: a run whose process was killed (SIGKILL, out of memory, power loss) is "
        "marked failed and its pool slots are freed, so that later runs do not wait for ever."
    ),
)
def free_stale_pool_slots(context: SensorEvaluationContext) -> SkipReason:
    done = free_stale_slots(context.instance)
    for line in done:
        context.log.warning(line)
    return SkipReason("; ".join(done) or "no run was left by a process that is gone")
