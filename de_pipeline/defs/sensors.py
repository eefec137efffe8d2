"""Sensors: free the pool slots of runs whose process is gone (see orchestration/pool_slots.py), post an
alert when a run fails (see alerts.py), and publish the readers' copy when a run succeeds
(see warehouse/publish.py)."""

# No `from __future__ import annotations`: Dagster reads the context annotation.

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunStatusSensorContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    run_status_sensor,
    sensor,
)

from de_pipeline.alerts import AlertSettings, failure_text, post_alert
from de_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from de_pipeline.defs.resources import DigitalEngagementApi, Warehouse
from de_pipeline.env import SettingsError
from de_pipeline.orchestration.pool_slots import free_stale_slots
from de_pipeline.orchestration.runs import error_line, job_label
from de_pipeline.warehouse.publish import publish_for_readers

# A sensor's tick must end within Dagster's 60 s (DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS):
# wait at most this long for the warehouse's lock, and leave the rest to the copy itself.
PUBLISH_LOCK_WAIT_SECONDS = 20.0


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


def alert_sensor(alerts: AlertSettings) -> SensorDefinition:
    """`alert_on_run_failure`: on when DE_ALERT_WEBHOOK_URL is set, posting there."""

    @run_failure_sensor(
        name="alert_on_run_failure",
        default_status=DefaultSensorStatus.RUNNING if alerts.webhook_url else DefaultSensorStatus.STOPPED,
        description=(
            "Posts a short Slack-compatible message to DE_ALERT_WEBHOOK_URL when a run fails: the "
            "assets, the days and the first line of the error."
            + ("" if alerts.webhook_url else " Off: DE_ALERT_WEBHOOK_URL is not set.")
        ),
    )
    def alert_on_run_failure(context: RunFailureSensorContext, api: DigitalEngagementApi) -> None:
        run = context.dagster_run
        failures = context.get_step_failure_events()
        tags = run.tags
        days = (
            f"{tags[RANGE_START_TAG]} .. {tags[RANGE_END_TAG]}"
            if RANGE_START_TAG in tags
            else tags.get("dagster/partition", "no partition")
        )
        error = error_line(failures[0]) if failures else (context.failure_event.message or "")
        steps = [e.step_key for e in failures if e.step_key is not None]
        post_alert(alerts, failure_text(run.run_id, job_label(run), steps, days, error, _key(api)))

    return alert_on_run_failure


def _key(api: DigitalEngagementApi) -> str:
    """The API key, to keep it out of the alert (the errors are scrubbed already)."""
    try:
        settings = api.settings()
    except SettingsError:
        return ""
    return settings.api_key if settings else ""


@run_status_sensor(
    run_status=DagsterRunStatus.SUCCESS,
    name="publish_readers_copy",
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "After each successful run, copies the warehouse to the readers' copy (DE_READER_COPY_PATH) "
        "that analysts and BI tools open, so that they never block a run. Waits at most "
        f"{PUBLISH_LOCK_WAIT_SECONDS:g} s for a running write; if the warehouse stays busy, the next "
        "successful run publishes."
    ),
)
def publish_readers_copy(context: RunStatusSensorContext, warehouse: Warehouse) -> SkipReason:
    run = context.dagster_run
    settings = warehouse.settings()
    if settings.reader_copy_path is None:
        return SkipReason("DE_READER_COPY_PATH=off: no readers' copy is published")
    said: list[str] = []
    wait = min(settings.lock_timeout_seconds, PUBLISH_LOCK_WAIT_SECONDS)
    trigger = f"run {run.run_id} ({job_label(run)})"
    published = publish_for_readers(settings, trigger, said.append, lock_timeout_seconds=wait)
    for line in said:
        (context.log.info if published else context.log.warning)(line)
    return SkipReason(" ".join(said) or f"run {run.run_id}: no warehouse at {settings.duckdb_path} to publish")
