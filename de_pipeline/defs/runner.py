"""Running the jobs in this process, in chunks of at most 7 partitions, the next chunk's fetch
beside the build of the one before, several accounts' fetches at once (CLI, benchmark, tests)."""

from __future__ import annotations

import ctypes
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from datetime import date, timedelta

from dagster import (
    AssetKey,
    DagsterInstance,
    DailyPartitionsDefinition,
    ExecuteInProcessResult,
    InitLoggerContext,
    JobDefinition,
    logger,
)

from de_pipeline.accounts import max_parallel_accounts
from de_pipeline.api import ApiAuthError, ApiBadRequestError, ApiEpochUnitError, ApiNotFoundError
from de_pipeline.defs.build import Pipeline, pipeline
from de_pipeline.defs.partitions import MAX_PARTITIONS_PER_RUN, range_tags
from de_pipeline.env import SettingsError, debugging
from de_pipeline.ingest import RetentionError
from de_pipeline.orchestration.instance import InstanceRepairError, open_instance, reconfigures_logging
from de_pipeline.orchestration.pool_slots import PoolWatch, free_stale_slots, process_tags
from de_pipeline.orchestration.runs import error_line
from de_pipeline.warehouse.archive import ArchiveMissingError, StagingLimitError
from de_pipeline.warehouse.connection import MemoryBudgetError
from de_pipeline.warehouse.provenance import SourceMismatchError
from de_pipeline.warehouse.publish import publish_for_readers
from de_pipeline.warehouse.settings import DEFAULT_ACCOUNT, WarehouseSettings

# Errors a user fixes by changing a setting, a key or the range: the console shows their
# one line, not Dagster's stack trace (the run's event log keeps it; DE_DEBUG=1 prints it).
USER_ERRORS = (
    ApiBadRequestError,
    ApiAuthError,
    ApiEpochUnitError,
    ApiNotFoundError,
    SettingsError,
    SourceMismatchError,
    ArchiveMissingError,
    MemoryBudgetError,
    RetentionError,
    InstanceRepairError,
    StagingLimitError,
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
    return _last_partition(pipeline().daily)


def _last_partition(daily: DailyPartitionsDefinition) -> date:
    key = daily.get_last_partition_key()
    assert key is not None  # CalendarSettings keeps DE_START_DATE before today: yesterday is a partition
    return date.fromisoformat(key)


def run_chunks(first: date, last: date, daily: DailyPartitionsDefinition) -> list[RunChunk]:
    """Split [first, last] (both included) into runs of at most 7 days, after checking that
    the partitions (`daily`) hold every day."""
    if last < first:
        raise RangeError(f"the range ends ({last}) before it starts ({first})")
    earliest = daily.start.date()
    latest = _last_partition(daily)
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


# Dagster captures a run's stdout and stderr by pointing the process's file descriptors at
# a file for the run's length. Two runs at once would tangle them (the one that ends last
# restores the other's file, and the console goes silent), so the build runs, which go in a
# thread beside a fetch, leave them alone; their event logs are complete all the same.
_NO_OUTPUT_CAPTURE = {
    "compute_logs": {"module": "dagster._core.storage.noop_compute_log_manager", "class": "NoOpComputeLogManager"}
}


def run_instance() -> AbstractContextManager[DagsterInstance]:
    """The instance of DAGSTER_HOME, or of the project's default home (instance.py): the
    runs show in the UI."""
    return open_instance(say=_say)


def build_instance() -> AbstractContextManager[DagsterInstance]:
    """The instance of the build runs: run_instance()'s, without output capture."""
    return open_instance(_NO_OUTPUT_CAPTURE, say=_say)


def run_range(
    first: date,
    last: date,
    *,
    job_name: str = "all_assets",
    log_level: str = "INFO",
    on_chunk: Callable[[RunChunk], None] | None = None,
) -> list[ExecuteInProcessResult]:
    """Materialise every asset of `job_name` for the days, in chunks of ≤7 days. Stops at
    the first failed run with RunFailedError. Unpartitioned assets (the dashboard) cover
    every day: only the last chunk builds them, as an asset backfill in the UI does.

    A job that fetches, over more than one chunk, runs each chunk as two runs, its fetch
    (`raw_messages`) and its build (the rest), and fetches chunk N+1 while chunk N builds:
    a backfill takes about its fetch time plus one chunk's build. A failed fetch lets the
    build before it commit, then stops. Otherwise (also when the instance's `python_logs`
    handlers make two runs in one process unsafe: instance.py) each chunk is one run, one
    after another.
    The results come in chunk order, a chunk's fetch before its build.

    With several accounts (DE_PROVIDERS_FILE), a chunk's fetch is a run per account, up to
    DE_MAX_PARALLEL_ACCOUNTS of them at once (each at its own key's rate), and its build one
    run of them all: the warehouse keeps one writer. This holds for a single chunk too. An
    account whose step fails is left out of the later runs and the others go on;
    RunFailedError names the failed accounts at the end.

    Before each run, runs left by processes that are gone lose their pool slots; while a
    run waits for a slot, the console says who holds it (see pool_slots.PoolWatch). After
    each run that wrote the warehouse, the readers' copy is published (warehouse/publish.py)."""
    built = pipeline()
    chunks = run_chunks(first, last, built.daily)
    with run_instance() as instance:
        runner = _ChunkRunner(built, job_name, instance, log_level)
        if runner.fetch_keys and (len(chunks) > 1 or runner.fetches_apart) and not reconfigures_logging(instance):
            results = runner.overlapped(chunks, on_chunk)
        else:
            results = runner.one_after_another(chunks, on_chunk)
    if runner.failed:
        raise RunFailedError("; ".join(f"account {name}: {why}" for name, why in runner.failed.items()))
    return results


class _ChunkRunner:
    """Runs one job's chunks in this process: fetches in the main thread, where Ctrl-C
    reaches them (several accounts' in threads of their own: `fetch`), and builds beside
    them in one worker thread, the warehouse's one writer."""

    def __init__(self, built: Pipeline, job_name: str, instance: DagsterInstance, log_level: str) -> None:
        self.job = built.defs.resolve_job_def(job_name).with_logger_defs({"console": console_logger})
        self.accounts = built.accounts
        self.instance = instance
        self.log_level = log_level
        self.timeout = WarehouseSettings.from_env().lock_timeout_seconds
        graph = built.defs.resolve_asset_graph()
        self.every = set(self.job.asset_layer.executable_asset_keys)
        self.partitioned = {key for key in self.every if graph.get(key).is_partitioned}
        self.fetch_keys = {asset.key for asset in built.raw_messages} & self.every
        self.parallel_accounts = max_parallel_accounts()
        self.failed: dict[str, str] = {}  # account -> why, when one of several failed

    @property
    def fetches_apart(self) -> bool:
        """Does a chunk fetch its accounts in runs of their own, several at once?"""
        return len(self.fetch_keys) > 1 and self.parallel_accounts > 1

    def _job(self, keys: set[AssetKey]) -> JobDefinition:
        """The job for some of its assets, without those of failed accounts, with their checks."""
        keys = {key for key in keys if _account_of(key) not in self.failed}
        checks = {check for check in self.job.asset_layer.asset_graph.asset_check_keys if check.asset_key in keys}
        return self.job.get_subset(asset_selection=keys, asset_check_selection=checks)

    def _whole(self, chunk: RunChunk) -> set[AssetKey]:
        """A chunk's assets: all of them in the last chunk, else the partitioned ones."""
        return self.every if chunk.number == chunk.total else self.partitioned

    def one_after_another(
        self, chunks: list[RunChunk], on_chunk: Callable[[RunChunk], None] | None
    ) -> list[ExecuteInProcessResult]:
        results = []
        for chunk in chunks:
            if on_chunk:
                on_chunk(chunk)
            results += self._checked(chunk, [self.execute(self._job(self._whole(chunk)), self.instance, chunk)])
        return results

    def overlapped(
        self, chunks: list[RunChunk], on_chunk: Callable[[RunChunk], None] | None
    ) -> list[ExecuteInProcessResult]:
        """Chunk N+1's fetch here while chunk N builds in the worker; the results in chunk
        order, a chunk's fetch before its build."""
        results: list[ExecuteInProcessResult] = []
        built: RunChunk | None = None  # the chunk that builds in the worker
        build: Future[ExecuteInProcessResult] | None = None
        with ThreadPoolExecutor(1, thread_name_prefix="build") as builder:
            # the build runs' instance is made beside the first fetch, and closed, in the
            # worker: its SQLite connections serve the thread that opened them
            stack = ExitStack()
            builds = builder.submit(stack.enter_context, build_instance())
            try:
                for chunk in chunks:
                    if on_chunk:
                        on_chunk(chunk)
                    beside = f", while run {built.number} builds" if built else ""
                    fetched = self.fetch(chunk, beside)
                    if built and build:  # the build before commits, even when this fetch failed
                        results += self._checked(built, [build.result()])
                    results += self._checked(chunk, fetched)
                    job = self._job(self._whole(chunk) - self.fetch_keys)
                    beside = "" if chunk.number == chunk.total else f", while run {chunk.number + 1} fetches"
                    built, build = chunk, builder.submit(self.execute, job, builds.result(), chunk, "building", beside)
                if built and build:
                    results += self._checked(built, [build.result()])
            except KeyboardInterrupt:
                if built and build and not build.done():
                    _say(f"interrupted: run {built.number} of {built.total} finishes its build first")
                raise
            finally:
                builder.submit(stack.close).result()
        return results

    def fetch(self, chunk: RunChunk, beside: str) -> list[ExecuteInProcessResult]:
        """The chunk's fetch: one run of every account's `raw_messages`, one account after
        another (Dagster's in-process executor); or, when `fetches_apart`, a run per account,
        DE_MAX_PARALLEL_ACCOUNTS at once. A fetch writes only its account's raw archive, so
        the accounts' runs share nothing but the Dagster home; each account's pool and rate
        limiter are its own. The results in the accounts' order."""
        keys = sorted((key for key in self.fetch_keys if _account_of(key) not in self.failed), key=str)
        if not self.fetches_apart or len(keys) < 2:
            return [self.execute(self._job(self.fetch_keys), self.instance, chunk, "fetching", beside)]
        return _AccountFetches(self, chunk, beside).run(keys)

    def execute(
        self, job: JobDefinition, instance: DagsterInstance, chunk: RunChunk, doing: str = "", beside: str = ""
    ) -> ExecuteInProcessResult:
        """One in-process run of the chunk's days; what it is `doing` (fetching, building) is
        said at its start and end. A run that wrote the warehouse publishes the readers' copy."""
        for line in free_stale_slots(instance):
            _say(line)
        run_id = str(uuid.uuid4())
        where = f"run {chunk.number} of {chunk.total}: {doing} {chunk.first} .. {chunk.last}"
        if doing:
            _say(f"{where} (Dagster run {run_id[:8]}){beside}")
        started = time.monotonic()
        with PoolWatch(instance, run_id, timeout_seconds=self.timeout, say=_say):
            result = job.execute_in_process(
                instance=instance,
                run_id=run_id,
                tags=range_tags(chunk.first.isoformat(), chunk.last.isoformat()) | process_tags(),
                run_config={"loggers": {"console": {"config": {"log_level": self.log_level}}}},
                raise_on_error=False,
            )
        if doing:
            _say(f"{where}: {'done' if result.success else 'failed'} in {time.monotonic() - started:.1f}s")
        if result.success and set(job.asset_layer.executable_asset_keys) - self.fetch_keys:
            publish_for_readers(WarehouseSettings.from_env(), f"run {run_id} ({self.job.name})", _say)
        return result

    def _checked(self, chunk: RunChunk, results: list[ExecuteInProcessResult]) -> list[ExecuteInProcessResult]:
        """The results of a chunk's runs (its fetch, one run or one per account; or its
        build) when they succeeded; or, when some of several accounts failed in them, the
        results, with those accounts left out from now on; else RunFailedError, with the
        first failed run's error."""
        failed: dict[str, str] = {}
        first_why = ""
        for result in results:
            if result.success:
                continue
            why = f"run for {chunk.first} .. {chunk.last} failed: {failure_message(result)}"
            first_why = first_why or why
            accounts = _failed_accounts(result) - self.failed.keys()
            if not accounts:  # no account's step failed (a blocking check): not one account's fault
                raise RunFailedError(why)
            failed |= {name: why for name in accounts if name not in failed}
        if not first_why:
            return results
        going_on = {account.name for account in self.accounts} - self.failed.keys() - failed.keys()
        if len(self.accounts) == 1 or not going_on:
            raise RunFailedError(first_why)
        for name, why in sorted(failed.items()):
            self.failed[name] = why
            _say(f"account {name} failed ({why}); the other accounts go on without it")
        return results


class _AccountFetches:
    """A chunk's fetch as a run per account, up to DE_MAX_PARALLEL_ACCOUNTS at once, each in a
    worker thread with an instance of its own (its SQLite connections serve the thread that
    opened them) and no output capture, as the build runs have (see _NO_OUTPUT_CAPTURE).

    Ctrl-C reaches the main thread only, which waits here: it raises KeyboardInterrupt in
    each account's thread, whose fetch then stops as a lone fetch stops (its archive as it
    was, its run failed), and returns when they all have."""

    def __init__(self, runner: _ChunkRunner, chunk: RunChunk, beside: str) -> None:
        self.runner, self.chunk, self.beside = runner, chunk, beside
        self.threads: set[int] = set()  # the threads running an account's fetch
        self.lock = threading.Lock()
        self.stopping = False

    def run(self, keys: list[AssetKey]) -> list[ExecuteInProcessResult]:
        with ThreadPoolExecutor(min(self.runner.parallel_accounts, len(keys)), "fetch-account") as pool:
            futures = [pool.submit(self.fetch_one, key) for key in keys]
            try:
                wait(futures)
            except KeyboardInterrupt:
                _say("interrupted: the accounts' fetches stop after the windows they are reading")
                with self.lock:
                    self.stopping = True
                    for thread in self.threads:
                        _raise_in_thread(thread, KeyboardInterrupt)
                raise
        return [future.result() for future in futures]

    def fetch_one(self, key: AssetKey) -> ExecuteInProcessResult:
        with self.lock:
            if self.stopping:
                raise KeyboardInterrupt
            self.threads.add(threading.get_ident())
        try:
            with build_instance() as instance:
                job = self.runner._job({key})
                return self.runner.execute(job, instance, self.chunk, f"fetching {_account_of(key)}", self.beside)
        finally:
            with self.lock:
                self.threads.discard(threading.get_ident())


def _raise_in_thread(thread: int, exception: type[BaseException]) -> None:
    """Raise `exception` in another thread at its next Python instruction (Ctrl-C reaches only
    the main thread; a thread blocked in C, such as a socket read, sees it when that returns)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread), ctypes.py_object(exception))


def _account_of(key: AssetKey) -> str:
    """The account of an asset: the prefix of `acme/messages`, else the single account."""
    return key.path[0] if len(key.path) > 1 else DEFAULT_ACCOUNT


def _failed_accounts(result: ExecuteInProcessResult) -> set[str]:
    """The accounts whose steps failed in a run (a step key is the asset key joined by __)."""
    return {
        event.step_key.split("__")[0] if "__" in event.step_key else DEFAULT_ACCOUNT
        for event in result.all_events
        if event.is_step_failure and event.step_key
    }


def _say(line: str) -> None:
    print(f"de-pipeline: {line}", file=sys.stderr, flush=True)


CONSOLE_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"  # Dagster's own


class _UserErrorsInOneLine(logging.Formatter):
    """Dagster's console format, with a user error's stack trace left out (the run's event
    log keeps it; DE_DEBUG=1 prints it)."""

    _names = tuple(f"{cls.__module__}.{cls.__qualname__}:" for cls in USER_ERRORS)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if "\n" in text and not debugging() and any(n in text for n in self._names):
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


def failure_message(result: ExecuteInProcessResult) -> str:
    """The first failed step's error, as one line naming the step."""
    for event in result.all_events:
        if event.is_step_failure:
            return f"{event.step_key}: {error_line(event)}"
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION" and not event.asset_check_evaluation_data.passed:
            data = event.asset_check_evaluation_data
            return f"blocking check {data.check_name} on {data.asset_key.to_user_string()} failed"
    return "the run did not succeed (see the Dagster logs above)"
