"""Running the jobs in this process, in runs of at most 7 partitions (CLI, benchmark, tests)."""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta

from dagster import DagsterEvent, DagsterInstance, ExecuteInProcessResult, InitLoggerContext, logger

from de_pipeline.api import ApiAuthError, ApiBadRequestError, ApiNotFoundError
from de_pipeline.defs.definitions import defs
from de_pipeline.defs.partitions import DAILY, MAX_PARTITIONS_PER_RUN
from de_pipeline.defs.schedules import range_tags
from de_pipeline.env import SettingsError
from de_pipeline.ingest import RetentionError
from de_pipeline.pool_slots import PoolWatch, free_stale_slots, process_tags
from de_pipeline.warehouse.archive import ArchiveMissingError
from de_pipeline.warehouse.connection import MemoryBudgetError
from de_pipeline.warehouse.provenance import SourceMismatchError
from de_pipeline.warehouse.publish import publish_for_readers
from de_pipeline.warehouse.settings import WarehouseSettings

# Errors a user fixes by changing a setting, a key or the range: the console shows their
# one line, not Dagster's stack trace (the run's event log keeps it; DE_DEBUG=1 prints it).
USER_ERRORS = (
    ApiBadRequestError,
    ApiAuthError,
    ApiNotFoundError,
    SettingsError,
    SourceMismatchError,
    ArchiveMissingError,
    MemoryBudgetError,
    RetentionError,
)


class RangeError(ValueError):
    """A requested range that the partitions cannot hold."""


class RunFailedError(RuntimeError):
    """A run failed; the message is the first step's error, without the traceback."""


@dataclass(frozen=True)
class RunChunk:
    first: date
    last: date
    number: int
    total: int


def last_complete_day() -> date:
    """Yesterday in DE_TIMEZONE: the last daily partition."""
    return date.fromisoformat(DAILY.get_last_partition_key())


def run_chunks(first: date, last: date) -> list[RunChunk]:
    """Split [first, last] (both included) into runs of at most 7 days, after checking that
    the partitions hold every day."""
    if last < first:
        raise RangeError(f"the range ends ({last}) before it starts ({first})")
    earliest = DAILY.start.date()
    latest = last_complete_day()
    if first < earliest:
        raise RangeError(f"{first} is before the first partition ({earliest}); set DE_START_DATE to reach further back")
    if last > latest:
        raise RangeError(f"{last} is not a complete day yet: the last partition is {latest}")
    starts = []
    day = first
    while day <= last:
        starts.append(day)
        day += timedelta(days=MAX_PARTITIONS_PER_RUN)
    return [
        RunChunk(start, min(start + timedelta(days=MAX_PARTITIONS_PER_RUN - 1), last), n, len(starts))
        for n, start in enumerate(starts, 1)
    ]


@contextmanager
def run_instance() -> Iterator[DagsterInstance]:
    """The DAGSTER_HOME instance when one is set (runs then show in the UI), else a throwaway."""
    if os.environ.get("DAGSTER_HOME"):
        with DagsterInstance.get() as instance:
            yield instance
    else:
        with DagsterInstance.ephemeral() as instance:
            yield instance


def run_range(
    first: date,
    last: date,
    *,
    job_name: str = "all_assets",
    log_level: str = "INFO",
    on_chunk: Callable[[RunChunk], None] | None = None,
) -> list[ExecuteInProcessResult]:
    """Materialise every asset of `job_name` for the days, one run per chunk of ≤7 days.
    Stops at the first failed run with RunFailedError. Unpartitioned assets (the dashboard)
    cover every day: only the last run builds them, as an asset backfill in the UI does.

    Before each run, runs left by processes that are gone lose their pool slots; while a
    run waits for a slot, the console says who holds it (see pool_slots.PoolWatch). After
    each run that succeeds, the readers' copy is published (see warehouse/publish.py)."""
    job = defs.resolve_job_def(job_name).with_logger_defs({"console": console_logger})
    graph = defs.resolve_asset_graph()
    partitioned = [key for key in job.asset_layer.executable_asset_keys if graph.get(key).is_partitioned]
    timeout = WarehouseSettings.from_env().lock_timeout_seconds
    results = []
    with run_instance() as instance:
        for chunk in run_chunks(first, last):
            if on_chunk:
                on_chunk(chunk)
            for line in free_stale_slots(instance):
                _say(line)
            run_id = str(uuid.uuid4())
            with PoolWatch(instance, run_id, timeout_seconds=timeout, say=_say):
                result = job.execute_in_process(
                    instance=instance,
                    run_id=run_id,
                    tags=range_tags(chunk.first.isoformat(), chunk.last.isoformat()) | process_tags(),
                    run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
                    asset_selection=None if chunk.number == chunk.total else partitioned,
                    raise_on_error=False,
                )
            if not result.success:
                raise RunFailedError(f"run for {chunk.first} .. {chunk.last} failed: {failure_message(result)}")
            results.append(result)
            publish_for_readers(WarehouseSettings.from_env(), f"run {run_id} ({job_name})", _say)
    return results


def _say(line: str) -> None:
    print(f"de-pipeline: {line}", file=sys.stderr, flush=True)


CONSOLE_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"  # Dagster's own


class _UserErrorsInOneLine(logging.Formatter):
    """Dagster's console format, with a user error's stack trace left out (the run's event
    log keeps it; DE_DEBUG=1 prints it)."""

    _names = tuple(f"{cls.__module__}.{cls.__qualname__}:" for cls in USER_ERRORS)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if "\n" in text and not os.environ.get("DE_DEBUG") and any(n in text for n in self._names):
            return text.split("\n", 1)[0] + " (details in the run's event log; DE_DEBUG=1 prints them)"
        return text


@logger(
    config_schema={"log_level": str},
    description="Dagster's console log, with one line for a user's mistake (CLI runs).",
)
def console_logger(init_context: InitLoggerContext) -> logging.Logger:
    log = logging.Logger("dagster", level=init_context.logger_config["log_level"])
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_UserErrorsInOneLine(CONSOLE_FORMAT, "%Y-%m-%d %H:%M:%S %z"))
    log.addHandler(handler)
    return log


def error_line(step_failure: DagsterEvent) -> str:
    """The first line of a failed step's own error (under Dagster's wrapper)."""
    error = step_failure.step_failure_data.error
    while error.cause is not None and "Error occurred while executing" in error.message:
        error = error.cause
    return error.message.strip().splitlines()[0] if error.message.strip() else error.cls_name


def failure_message(result: ExecuteInProcessResult) -> str:
    """The first failed step's error, as one line naming the step."""
    for event in result.all_events:
        if event.is_step_failure:
            return f"{event.step_key}: {error_line(event)}"
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION" and not event.event_specific_data.passed:
            data = event.event_specific_data
            return f"blocking check {data.check_name} on {data.asset_key.to_user_string()} failed"
    return "the run did not succeed (see the Dagster logs above)"
