"""A run as people read it: its job's name, and the first line of its error."""

from __future__ import annotations

from dagster import DagsterEvent, DagsterRun

# the job Dagster makes for a materialisation or backfill launched on assets in the UI
_ASSET_JOB_PREFIX = "__ASSET_JOB"
BACKFILL_TAG = "dagster/backfill"


def job_label(run: DagsterRun) -> str:
    """The run's job, or for Dagster's hidden job of a UI materialisation, what launched it."""
    if not run.job_name.startswith(_ASSET_JOB_PREFIX):
        return run.job_name
    backfill = run.tags.get(BACKFILL_TAG)
    return f"backfill {backfill}" if backfill else "materialised in the UI"


def error_line(step_failure: DagsterEvent) -> str:
    """The first line of a failed step's own error (under Dagster's wrapper)."""
    error = step_failure.step_failure_data.error
    if error is None:  # Dagster records one with every step failure it reports
        return step_failure.message or "the step failed"
    while error.cause is not None and "Error occurred while executing" in error.message:
        error = error.cause
    return error.message.strip().splitlines()[0] if error.message.strip() else (error.cls_name or "no error message")
