"""Ingest benchmark: de-pipeline next to the fastest possible load and next to dlt.

    python benchmarks/ingest.py --days 14 --per-day 50000            # the comparison
    python benchmarks/ingest.py --days 7 --memory-sweep              # peak RSS at 5k/50k/200k/300k a day
    python benchmarks/ingest.py --days 2 --per-day 2000 --repeat 1   # a quick smoke run
    python benchmarks/ingest.py --latency-ms 250 --rate-limit 20     # against a distant, rate-limited API
    python benchmarks/ingest.py --latency-ms 250 --rate-limit 20 --skip-dlt --wire-days 1,14,56
                                                                     # the whole run's share by run length

With --latency-ms or --rate-limit (default 30,000 messages a day), the simulator answers each
request that late and refuses more than that many requests a second (429, Retry-After), and
de-pipeline (once per --in-flight value, default 8, with DE_MAX_REQUESTS_PER_SECOND set to
the same limit) runs beside dlt (once per --dlt-workers value, default 1,8: its default of
one day at a time, and its source `parallelized` with EXTRACT__WORKERS=8, 8 days at once; no
client-side rate limit, its requests client retries a 429 after its Retry-After, up to
DLT_MAX_ATTEMPTS times). Runs alternate; the table shows medians of --repeat: wall,
messages/s, the share of the ceiling (the requests needed over the rate limit, as a share
of the whole run's and of the fetch's seconds), the requests and 429s the simulator counted,
and peak RSS; then de-pipeline's time split and the year-backfill estimate at 20k, 50k and
200k messages a day, from the fetch at the rate limit and the build's measured throughput.
With --wire-days 1,14,56 it does that for each number of days in turn (--days is ignored),
then prints de-pipeline's whole-run share of the ceiling beside its fetch's for each.

Flags: --days, --per-day, --repeat (default 3), --skip-dlt, --memory-sweep (with
--sweep-volumes, --memory-limit), --long-texts/--no-long-texts (texts of up to a few
hundred characters, as in a real export, instead of the simulator's short ones; default on
for the sweep only), --incremental/--no-incremental (with --incremental-per-day,
--incremental-runs), --latency-ms, --rate-limit (with --in-flight, --dlt-workers,
--wire-days), --workdir, --keep. BENCH_PROFILE=FILE writes a cProfile of each
de-pipeline child to FILE.

One simulator of the API runs in its own child process, serves pages of at most 1000 rows
(SimulatorConfig max_page_size=1000) and is shared by every contender; every day it serves
is generated (and cached) before anything is timed. Each contender runs in a fresh child
process (this script with a hidden sub-command), so its peak RSS is that child's own
`ru_maxrss` (os.wait4 on that one child) and the simulator's CPU and memory are not
counted. All contenders ask for 1000-row pages, one day's window at a time, and
DE_MAX_REQUESTS_PER_SECOND is raised to its maximum (10000) so the client throttle never waits.

  limit        every page as raw bytes (requests) to a file, then one DuckDB `read_json`
               into a scratch table, one JSON value per message. No normalisation: the
               fastest that fetch plus store can be.
  de-pipeline  the whole asset graph (raw archive, messages, the aggregates computed from
               it and the journey tables: every daily table of the registry, the dashboard)
               through Dagster in-process (`run_range`), into a fresh DuckDB file, and
               the readers' copy it publishes after each run that builds.
  dlt          dlt's rest_api source, offset paging in the POST body, parquet files, into
               DuckDB (the `bench` extra: pip install -e '.[bench]'; skipped otherwise).

Runs alternate (the order rotates every repeat); tables show medians. Wall seconds are the
work only: interpreter start and imports are shown apart. Then it prints de-pipeline's time
split (steps from the STEP_SUCCESS events; fetch and archive separated by timing
ArchiveWriter's final wait, with its staging (in the fetch's threads) and background
writes, and the client's JSON check, shown beside, in the child; the dashboard step and
publishing the readers' copy), the CPU-seconds per 100,000 messages of each phase (fetch,
archive, type, aggregates, journeys, dashboard, publish: the process's CPU while the phase
ran, the archive writer's thread alone for the archive; phases that overlap in a run of
more than 7 days share it), the simulator's
serving rate (messages per CPU-second of its process), and the incremental cost:
re-materialising yesterday's aggregates (and, for information, the journey tables)
with 7 and with 90 days of history in `messages`.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.metadata
import importlib.util
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# light modules (dataclasses only): the children still time their own heavy imports
from de_pipeline.api.settings import DAY_MS, PROVIDER_PATH
from de_pipeline.warehouse.tables import DAILY_TABLES

PAGE_SIZE = 1000
SEED = 7
MAX_REQUESTS_PER_SECOND = "10000"  # the most DE_MAX_REQUESTS_PER_SECOND accepts
RESULT_MARK = "BENCH-RESULT "
CONTENDERS = ("limit", "de-pipeline", "dlt")
# the registry's daily tables: those computed from messages, and the journeys and what is built on them
AGGREGATE_TABLES = tuple(t.name for t in DAILY_TABLES if t.upstream == "messages" and t.steps == "days")
JOURNEY_TABLES = tuple(t.name for t in DAILY_TABLES if t.name not in AGGREGATE_TABLES)
INCREMENTAL_MAX_PER_DAY = 20_000
WIRE_PER_DAY = 30_000  # messages a day against a distant server: a busy account's day
DLT_MAX_ATTEMPTS = 50  # dlt's retries of a 429 (its default, 5, can fail a run against a rate limit)

# The performance targets; docs/performance.md sets them beside what was measured.
TARGET_VS_LIMIT = 0.6
TARGET_VS_DLT = 10.0
TARGET_PEAK_MIB = 400.0
TARGET_SWEEP_GROWTH = 1.3
TARGET_INCREMENTAL = 1.5
TARGET_SERVING = 200_000.0
TARGET_WIRE_SHARE = 0.85  # of the rate-limit ceiling, against a distant server
TARGET_WIRE_VS_DLT = 3.0
TARGET_WIRE_429 = 0.01  # of the requests sent
YEAR_VOLUMES = (20_000, 50_000, 200_000)  # messages a day, for the year-backfill estimate


# ---- shared helpers ---------------------------------------------------------------------


def day_window_ms(day: date) -> tuple[int, int]:
    """The UTC day as a half-open epoch-ms window (the children run with DE_TIMEZONE=UTC)."""
    start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
    return start, start + DAY_MS


def recent_days(count: int) -> list[date]:
    """`count` days ending yesterday (UTC): the last complete partition."""
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    return [yesterday - timedelta(days=n) for n in range(count - 1, -1, -1)]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def mark(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def dlt_available() -> bool:
    return importlib.util.find_spec("dlt") is not None


# ---- the simulator, in its own process --------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """Where the simulator serves, and the credentials it expects."""

    base_url: str
    api_key: str
    provider_id: str
    pid: int


class SimulatorProcess:
    """The API simulator in a child process, for the `with` block; stops when stdin closes."""

    def __init__(self, per_day: int, long_texts: bool = False, latency_ms: int = 0, rate_limit: int = 0) -> None:
        self.per_day = per_day
        self.long_texts = long_texts
        self.latency_ms = latency_ms
        self.rate_limit = rate_limit
        self._process: subprocess.Popen[str] | None = None
        self.endpoint: Endpoint | None = None

    def __enter__(self) -> Endpoint:
        self._process = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "_simulator",
                str(self.per_day),
                str(int(self.long_texts)),
                str(self.latency_ms),
                str(self.rate_limit),
            ],  # fmt: skip
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the simulator process ended before it served")
        self.endpoint = Endpoint(**json.loads(line))
        return self.endpoint

    def counts(self) -> tuple[int, int]:
        """The requests the simulator has answered so far, and the 429s it sent for its rate limit."""
        assert self._process is not None and self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write("?\n")
        self._process.stdin.flush()
        requests, rate_limited = json.loads(self._process.stdout.readline())
        return requests, rate_limited

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def simulator_child(per_day: int, long_texts: bool, latency_ms: int = 0, rate_limit: int = 0) -> None:
    """Serve the simulator until stdin closes. Prints its endpoint as one JSON line, and
    [requests answered, 429s sent for the rate limit] for each line read."""
    from de_pipeline.simulator import Simulator, SimulatorConfig

    config = SimulatorConfig(
        seed=SEED,
        messages_per_day=per_day,
        max_page_size=PAGE_SIZE,
        default_page_size=PAGE_SIZE,
        long_texts=long_texts,
        latency_ms=latency_ms,
        rate_limit=rate_limit,
    )
    simulator = Simulator(config)
    base_url = simulator.start()
    endpoint = Endpoint(base_url, config.api_key, config.provider_id, os.getpid())
    print(json.dumps(asdict(endpoint)), flush=True)
    for _ in sys.stdin:
        print(json.dumps([len(simulator.requests), simulator.rate_limited]), flush=True)
    simulator.stop()


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RawClient:
    """A lean keep-alive HTTP client of the provider endpoint (no throttle, no checks)."""

    def __init__(self, endpoint: Endpoint) -> None:
        parts = urlsplit(endpoint.base_url)
        self._connection = http.client.HTTPConnection(parts.hostname, parts.port)
        self._headers = {
            "Authorization": f"Bearer {endpoint.api_key}",
            "providerid": endpoint.provider_id,
            "Content-Type": "application/json",
        }

    def page(self, day: date, offset: int, limit: int = PAGE_SIZE) -> bytes:
        start_ms, end_ms = day_window_ms(day)
        body = json.dumps(
            {
                "start": start_ms // 1000,
                "end": end_ms // 1000,
                "limit": limit,
                "offset": offset,
                "interval": "1d",
            }  # fmt: skip
        )
        self._connection.request("POST", PROVIDER_PATH, body, self._headers)
        response = self._connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"the simulator answered HTTP {response.status}: {payload[:200]!r}")
        return payload

    def close(self) -> None:
        self._connection.close()


def warm_simulator(endpoint: Endpoint, days: list[date]) -> float:
    """Make the simulator generate (and cache) every day; returns the seconds it took."""
    client = RawClient(endpoint)
    started = time.perf_counter()
    for day in days:
        client.page(day, 0, limit=1)
    client.close()
    return time.perf_counter() - started


@dataclass(frozen=True)
class Serving:
    rows: int
    pages: int
    wall_s: float
    server_cpu_s: float
    rows_by_day: dict[str, int]

    @property
    def per_cpu_second(self) -> float:
        return self.rows / self.server_cpu_s if self.server_cpu_s else float("nan")

    @property
    def per_wall_second(self) -> float:
        return self.rows / self.wall_s


def measure_serving(endpoint: Endpoint, days: list[date]) -> Serving:
    """Fetch every 1000-row page of the days with a lean client; count the rows served and
    the simulator process's CPU seconds (its serving rate on one core)."""
    import orjson

    client = RawClient(endpoint)
    rows_by_day: dict[str, int] = {}
    pages = 0
    cpu_before = process_cpu_seconds(endpoint.pid)
    started = time.perf_counter()
    for day in days:
        offset = 0
        while True:
            rows = len(orjson.loads(client.page(day, offset)))
            if rows == 0:
                break
            pages += 1
            offset += rows
        rows_by_day[day.isoformat()] = offset
    wall = time.perf_counter() - started
    cpu = process_cpu_seconds(endpoint.pid) - cpu_before
    client.close()
    return Serving(sum(rows_by_day.values()), pages, wall, cpu, rows_by_day)


# ---- contenders, each in a child process -------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """What a contender child needs; passed as JSON on its command line."""

    endpoint: Endpoint
    first: str
    last: str
    workdir: str
    page_size: int = PAGE_SIZE
    memory_limit: str | None = None  # DE_DUCKDB_MEMORY_LIMIT; None: the pipeline's default
    max_requests_per_second: str = MAX_REQUESTS_PER_SECOND
    max_in_flight: int | None = None  # DE_MAX_IN_FLIGHT; None: the pipeline's default
    dlt_workers: int = 0  # the wire mode's dlt: resources (days) extracted at once; 0: dlt as on localhost

    def days(self) -> list[date]:
        first, last = date.fromisoformat(self.first), date.fromisoformat(self.last)
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]

    @classmethod
    def from_json(cls, text: str) -> Spec:
        data = json.loads(text)
        data["endpoint"] = Endpoint(**data["endpoint"])
        return cls(**data)


@dataclass
class RunResult:
    contender: str
    rows: int
    wall_s: float
    import_s: float
    peak_rss_mib: float = 0.0
    cpu_s: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.rows / self.wall_s if self.wall_s else float("nan")


def child_environment(spec: Spec) -> dict[str, str]:
    """This environment without DE_*/DAGSTER_HOME/DLT settings, pointed at the simulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DE_", "DAGSTER_HOME"))}
    workdir = Path(spec.workdir)
    env.update(
        {
            "DE_API_BASE_URL": spec.endpoint.base_url,
            "DE_API_KEY": spec.endpoint.api_key,
            "DE_PROVIDER_ID": spec.endpoint.provider_id,
            "DE_DUCKDB_PATH": str(workdir / "warehouse.duckdb"),
            "DE_ARCHIVE_DIR": str(workdir / "archive"),
            "DE_MAX_REQUESTS_PER_SECOND": spec.max_requests_per_second,
            "DE_PAGE_SIZE": str(spec.page_size),
            "DE_TIMEZONE": "UTC",
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "RUNTIME__LOG_LEVEL": "WARNING",
            "DLT_DATA_DIR": str(workdir / "dlt-data"),
        }
    )
    if spec.memory_limit:
        env["DE_DUCKDB_MEMORY_LIMIT"] = spec.memory_limit
    if spec.max_in_flight:
        env["DE_MAX_IN_FLIGHT"] = str(spec.max_in_flight)
    if spec.dlt_workers:
        env["EXTRACT__WORKERS"] = str(spec.dlt_workers)  # dlt's extract thread pool
    return env


def run_child(command: str, spec: Spec, extra: Sequence[str] = ()) -> RunResult:
    """Run `command` of this script in a fresh process; its result with its own peak RSS and
    CPU (os.wait4 reports on that one child, not on every child so far)."""
    workdir = Path(spec.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir.parent / f"{workdir.name}.log"
    spec_text = json.dumps(asdict(spec))
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, __file__, command, spec_text, *extra],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=child_environment(spec),
        )
        assert process.stdout is not None
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    results = [line[len(RESULT_MARK) :] for line in output.splitlines() if line.startswith(RESULT_MARK)]
    if process.returncode != 0 or not results:
        tail = "\n".join(log_path.read_text().splitlines()[-25:])
        raise RuntimeError(f"{command} failed (exit {process.returncode}); log {log_path}:\n{tail}")
    result = RunResult(**json.loads(results[-1]))
    result.peak_rss_mib = usage.ru_maxrss / 1024  # KiB on Linux
    result.cpu_s = usage.ru_utime + usage.ru_stime
    return result


def report(result: RunResult) -> None:
    print(RESULT_MARK + json.dumps(asdict(result)), flush=True)


def limit_child(spec: Spec) -> RunResult:
    """Every page as raw bytes to a file, then one read_json into a scratch table."""
    started = time.perf_counter()
    import duckdb
    import requests

    import_s = time.perf_counter() - started
    workdir = Path(spec.workdir)
    pages_dir = workdir / "pages"
    pages_dir.mkdir()
    session = requests.Session()
    session.headers.update(
        {"Authorization": f"Bearer {spec.endpoint.api_key}", "providerid": spec.endpoint.provider_id}
    )
    url = spec.endpoint.base_url + PROVIDER_PATH
    files: list[str] = []
    started = time.perf_counter()
    for day in spec.days():
        start_ms, end_ms = day_window_ms(day)
        offset = 0
        while True:  # advance by the page size asked, stop at `[]` (the cap equals the limit)
            fields = {"start": start_ms // 1000, "end": end_ms // 1000, "limit": spec.page_size,
                      "offset": offset, "interval": "1d"}  # fmt: skip
            response = session.post(url, json=fields, timeout=60)
            response.raise_for_status()
            body = response.content
            if body == b"[]":
                break
            path = pages_dir / f"{len(files):07d}.json"
            path.write_bytes(body)
            files.append(str(path))
            offset += spec.page_size
    fetch_s = time.perf_counter() - started
    connection = duckdb.connect(str(workdir / "limit.duckdb"))
    connection.execute(
        # one JSON value per message: no schema detection nor typing (5x faster than those)
        "CREATE TABLE raw_pages AS SELECT json FROM read_json($files, format = 'array', "
        "records = false, columns = {json: 'JSON'})",
        {"files": files},
    )
    rows = connection.execute("SELECT count(*) FROM raw_pages").fetchone()[0]
    connection.close()
    wall = time.perf_counter() - started
    return RunResult("limit", rows, wall, import_s, details={"fetch_s": fetch_s, "store_s": wall - fetch_s})


class Stopwatch:
    """Seconds spent inside wrapped callables, by name: wall seconds, and CPU seconds (the
    process's, all threads; with `thread_cpu`, the calling thread's alone)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._lock = threading.Lock()  # the fetch's worker threads stage pages at once

    def wrap(self, name: str, function: Callable[..., Any], *, thread_cpu: bool = False) -> Callable[..., Any]:
        cpu_clock = time.thread_time if thread_cpu else time.process_time

        def timed(*args: Any, **kwargs: Any) -> Any:
            started, cpu_started = time.perf_counter(), cpu_clock()
            try:
                return function(*args, **kwargs)
            finally:
                with self._lock:
                    self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
                    self.cpu[name] = self.cpu.get(name, 0.0) + cpu_clock() - cpu_started

        return timed


def instrument_pipeline(stopwatch: Stopwatch) -> None:
    """Time the parts of raw_messages that are not the fetch: staging each page to disk,
    the background writes of each day's Parquet file (their thread's CPU: the writer's
    DuckDB runs one thread, the caller's), waiting for the last of them, and the client's
    JSON validation of each page; and each phase's wall and CPU seconds: the fetch, typing
    `messages`, the aggregates and journey tables, the dashboard, publishing the readers' copy."""

    from de_pipeline.api.client import DigitalEngagementClient
    from de_pipeline.defs import assets, dashboard, runner
    from de_pipeline.warehouse.archive import ArchiveWriter

    ArchiveWriter.add = stopwatch.wrap("archive_staging", ArchiveWriter.add)  # type: ignore[method-assign]
    ArchiveWriter.commit = stopwatch.wrap("archive_wait", ArchiveWriter.commit)  # type: ignore[method-assign]
    ArchiveWriter._write_day = stopwatch.wrap(  # type: ignore[method-assign]
        "archive_background", ArchiveWriter._write_day, thread_cpu=True
    )
    DigitalEngagementClient._checked_array = stopwatch.wrap(  # type: ignore[method-assign]
        "fetch_validate", DigitalEngagementClient._checked_array
    )
    assets.fetch_days = stopwatch.wrap("fetch_phase", assets.fetch_days)  # type: ignore[attr-defined]
    assets.load_messages = stopwatch.wrap("type", assets.load_messages)  # type: ignore[attr-defined]
    refresh = assets.refresh_aggregate  # type: ignore[attr-defined]
    timed = {name: stopwatch.wrap(name, refresh) for name in ("aggregates", "journeys")}

    def refresh_by_kind(connection: Any, table: Any, *args: Any, **kwargs: Any) -> Any:
        return timed["aggregates" if table.name in AGGREGATE_TABLES else "journeys"](connection, table, *args, **kwargs)

    assets.refresh_aggregate = refresh_by_kind  # type: ignore[attr-defined]
    dashboard.build_dashboard = stopwatch.wrap("dashboard", dashboard.build_dashboard)  # type: ignore[attr-defined]
    runner.publish_for_readers = stopwatch.wrap("publish", runner.publish_for_readers)  # type: ignore[attr-defined]


def phase_cpu(stopwatch: Stopwatch) -> dict[str, float]:
    """CPU seconds of each phase. The fetch's is the process's while fetch_days ran, less the
    archive writer's own thread. A phase's CPU is the process's while it ran: where phases
    overlap (a run of more than 7 days fetches beside a build), they share it."""
    cpu = stopwatch.cpu
    archive = cpu.get("archive_background", 0.0)
    return {
        "fetch": cpu.get("fetch_phase", 0.0) - archive,
        "archive": archive,
        **{phase: cpu.get(phase, 0.0) for phase in ("type", "aggregates", "journeys", "dashboard", "publish")},
    }


def step_seconds(results: Sequence[Any]) -> dict[str, float]:
    """Seconds of each step (asset) over the runs, from the STEP_SUCCESS events."""
    seconds: dict[str, float] = {}
    for result in results:
        for event in result.all_events:
            if event.is_step_success:
                duration = event.event_specific_data.duration_ms / 1000
                seconds[event.step_key] = seconds.get(event.step_key, 0.0) + duration
    return seconds


def time_split(wall: float, steps: dict[str, float], stopwatch: Stopwatch) -> dict[str, float]:
    """fetch, archive, normalise, aggregates, journeys, Dagster overhead: seconds adding up to
    `wall`. Archive is the time raw_messages spent on it after fetching: waiting for the day
    files still being written once the fetch ended. Staging pages (in the fetch's threads,
    several at once: summed over them) and the rest of the writing overlapped with the fetch
    (shown, not added)."""
    archive = stopwatch.seconds.get("archive_wait", 0.0)
    return {
        "fetch": steps.get("raw_messages", 0.0) - archive,
        "  of which JSON check": stopwatch.seconds.get("fetch_validate", 0.0),
        "  (staging, threads)": stopwatch.seconds.get("archive_staging", 0.0),
        "archive": archive,
        "  (writing, overlapped)": stopwatch.seconds.get("archive_background", 0.0),
        "normalise": steps.get("messages", 0.0),
        "aggregates": sum(steps.get(table, 0.0) for table in AGGREGATE_TABLES),
        "journeys": sum(steps.get(table, 0.0) for table in JOURNEY_TABLES),
        "dashboard": steps.get("dashboard", 0.0),
        "publish": stopwatch.seconds.get("publish", 0.0),
        "Dagster overhead": wall - sum(steps.values()) - stopwatch.seconds.get("publish", 0.0),
    }


def pipeline_child(spec: Spec, profile: str | None = None) -> RunResult:
    """The whole asset graph for the days, through Dagster in-process, into a fresh warehouse."""
    started = time.perf_counter()
    import duckdb

    from de_pipeline.defs.runner import run_range

    import_s = time.perf_counter() - started
    stopwatch = Stopwatch()
    instrument_pipeline(stopwatch)
    days = spec.days()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    results = run_range(days[0], days[-1])
    wall = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    with duckdb.connect(os.environ["DE_DUCKDB_PATH"], read_only=True) as connection:
        stored = connection.execute("SELECT count(*) FROM messages").fetchone()[0]
        rejected = connection.execute("SELECT count(*) FROM rejected_messages").fetchone()[0]
    steps = step_seconds(results)
    return RunResult(
        "de-pipeline",
        stored + rejected,
        wall,
        import_s,
        details={
            "split": time_split(wall, steps, stopwatch),
            "cpu": phase_cpu(stopwatch),
            "steps": steps,
            "rejected": rejected,
            "fetch": fetch_metadata(results),
            **({"overlap": True} if len(days) > 7 else {}),
        },  # fmt: skip
    )


def fetch_metadata(results: Sequence[Any]) -> dict[str, float]:
    """Over the runs, from raw_messages' run metadata: requests, pages, windows (days), the
    fetch's seconds, and the seconds the workers waited on the rate limiter."""
    total = {"requests": 0.0, "pages": 0.0, "days": 0.0, "seconds": 0.0, "limiter_wait_share": 0.0}
    for result in results:
        materialisations = result.asset_materializations_for_node("raw_messages")
        if not materialisations:
            continue
        meta = {name: value.value for name, value in materialisations[0].metadata.items()}
        seconds = meta["api_requests"] / meta["requests_per_second"] if meta["requests_per_second"] else 0.0
        total["requests"] += meta["api_requests"]
        total["pages"] += meta["pages"]
        total["days"] += len(materialisations)
        total["seconds"] += seconds
        total["limiter_wait_share"] += meta["limiter_wait_share"] * seconds  # weighted by time
    if total["seconds"]:
        total["limiter_wait_share"] /= total["seconds"]
    return total


def dlt_child(spec: Spec) -> RunResult:
    """dlt's rest_api source, offset paging in the POST body, parquet files, into DuckDB.

    Against a rate-limited server (spec.dlt_workers > 1) the source is `parallelized`, so
    that `dlt_workers` days (EXTRACT__WORKERS) are paged at once, as
    de-pipeline's DE_MAX_IN_FLIGHT days are; dlt has no client-side rate limit, but its
    requests client retries a 429 after its Retry-After (built in), here up to
    DLT_MAX_ATTEMPTS times instead of its default 5, so that no run fails on them."""
    started = time.perf_counter()
    import dlt
    import duckdb
    from dlt.sources.helpers.requests.retry import Client
    from dlt.sources.rest_api import rest_api_source

    import_s = time.perf_counter() - started
    workdir = Path(spec.workdir)
    paginator = {"type": "offset", "limit": spec.page_size, "offset_body_path": "offset",
                 "limit_body_path": "limit", "total_path": None}  # fmt: skip
    resources = []
    for day in spec.days():
        start_ms, end_ms = day_window_ms(day)
        resources.append(
            {
                "name": f"day_{day.isoformat().replace('-', '_')}",
                "table_name": "messages",
                "endpoint": {
                    "path": PROVIDER_PATH,
                    "method": "POST",
                    "json": {"start": start_ms // 1000, "end": end_ms // 1000, "interval": "1d"},
                    "paginator": paginator,
                    "data_selector": "$",
                },
            }
        )
    client: dict[str, Any] = {
        "base_url": spec.endpoint.base_url,
        "headers": {"providerid": spec.endpoint.provider_id},
        "auth": {"type": "bearer", "token": spec.endpoint.api_key},
    }
    if spec.dlt_workers:
        client["session"] = Client(raise_for_status=False, request_max_attempts=DLT_MAX_ATTEMPTS).session
    source = rest_api_source(
        {"client": client, "resource_defaults": {"write_disposition": "append"}, "resources": resources},
        parallelized=spec.dlt_workers > 1,  # dlt 1.31 ignores the resources' own `parallelized`
    )
    database = workdir / "dlt.duckdb"
    pipeline = dlt.pipeline(
        pipeline_name="ingest_bench",
        destination=dlt.destinations.duckdb(str(database)),
        dataset_name="bench",
        pipelines_dir=str(workdir / "dlt-pipelines"),
    )
    started = time.perf_counter()
    # what pipeline.run(source, loader_file_format="parquet") does, in its three steps: the
    # first is the fetch
    pipeline.extract(source, loader_file_format="parquet")
    fetch_s = time.perf_counter() - started
    pipeline.normalize()
    pipeline.load()
    wall = time.perf_counter() - started
    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute("SELECT count(*) FROM bench.messages").fetchone()[0]
        tables = [r[0] for r in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'bench' "
            "AND table_name NOT LIKE '\\_dlt%' ESCAPE '\\' ORDER BY 1").fetchall()]  # fmt: skip
    return RunResult("dlt", rows, wall, import_s, details={"tables": tables, "fetch_s": fetch_s})


def aggregates_child(spec: Spec, repeats: int, group: str = "aggregates") -> RunResult:
    """Re-materialise the tables of `group` (INCREMENTAL_GROUPS) for the spec's last day: one
    warm-up run, then `repeats` timed runs. rows = messages in the warehouse; details hold
    each run's wall seconds and its steps' seconds."""
    started = time.perf_counter()
    import duckdb
    from dagster import AssetKey, DagsterInstance

    from de_pipeline.defs.definitions import defs
    from de_pipeline.defs.runner import RunFailedError, failure_message

    built = defs()  # the settings are read, and the definitions built, when asked for: not on import
    import_s = time.perf_counter() - started
    job = built.resolve_job_def("all_assets")
    selection = [AssetKey(table) for table in INCREMENTAL_GROUPS[group]]
    walls: list[float] = []
    sql: list[float] = []
    with DagsterInstance.ephemeral() as instance:
        for _ in range(repeats + 1):
            started = time.perf_counter()
            result = job.execute_in_process(
                instance=instance,
                partition_key=spec.last,
                asset_selection=selection,
                run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
                raise_on_error=False,
            )
            walls.append(time.perf_counter() - started)
            if not result.success:
                raise RunFailedError(failure_message(result))
            sql.append(sum(step_seconds([result]).values()))
    with duckdb.connect(os.environ["DE_DUCKDB_PATH"], read_only=True) as connection:
        rows = connection.execute("SELECT count(*) FROM messages").fetchone()[0]
        days = connection.execute("SELECT count(DISTINCT day) FROM messages").fetchone()[0]
    return RunResult(
        group, rows, median(walls[1:]), import_s,
        details={"walls": walls[1:], "steps": sql[1:], "days": days},
    )  # fmt: skip


INCREMENTAL_GROUPS = {"aggregates": AGGREGATE_TABLES, "journeys": JOURNEY_TABLES}
CHILDREN: dict[str, Callable[[Spec], RunResult]] = {
    "limit": limit_child,
    "de-pipeline": pipeline_child,
    "dlt": dlt_child,
}


# ---- the benchmark -----------------------------------------------------------------------


@contextmanager
def scratch(base: str | None, keep: bool) -> Iterator[Path]:
    if base:
        Path(base).mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="de-ingest-bench-", dir=base))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def run_contender(
    name: str,
    endpoint: Endpoint,
    days: list[date],
    workdir: Path,
    keep: bool,
    memory_limit: str | None = None,
) -> RunResult:
    spec = Spec(endpoint, days[0].isoformat(), days[-1].isoformat(), str(workdir), memory_limit=memory_limit)
    try:
        return run_child(f"_{name}", spec)
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


@dataclass(frozen=True)
class WireContender:
    """One contender of the wire mode: its label in the tables, its child, its settings."""

    label: str
    child: str
    max_in_flight: int | None = None
    dlt_workers: int = 0


def wire_contenders(args: argparse.Namespace) -> list[WireContender]:
    contenders = [
        WireContender(f"de-pipeline, DE_MAX_IN_FLIGHT={n}", "de-pipeline", max_in_flight=n) for n in args.in_flight
    ]
    if args.skip_dlt:
        print("dlt: SKIPPED (--skip-dlt)")
    elif not dlt_available():
        print("dlt: SKIPPED, not installed (pip install -e '.[bench]' to compare with dlt)")
    else:
        for workers in args.dlt_workers:
            how = "one day at a time (its default)" if workers == 1 else f"{workers} days at once (parallelized)"
            contenders.append(WireContender(f"dlt, {how}", "dlt", dlt_workers=workers))
    return contenders


@dataclass(frozen=True)
class WireShare:
    """One wire comparison's de-pipeline (the first --in-flight), for the summary."""

    days: int
    rows: int
    needed: int
    ceiling_s: float
    wall_s: float
    fetch_s: float
    cpu_per_100k: float


def print_wire_shares(shares: list[WireShare]) -> None:
    """The whole run's share of the ceiling beside the fetch's, for each number of days."""
    print("\nde-pipeline's share of the ceiling by the length of the run (medians)\n")
    print("| days | messages | requests needed | ceiling s | whole run s | whole run's share | fetch s "
          "| fetch's share | CPU-s per 100k messages |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for w in shares:
        print(f"| {w.days} | {w.rows:,} | {w.needed} | {w.ceiling_s:.1f} | {w.wall_s:.1f} "
              f"| {w.ceiling_s / w.wall_s:.2f} | {w.fetch_s:.1f} | {w.ceiling_s / w.fetch_s:.2f} "
              f"| {w.cpu_per_100k:.1f} |")  # fmt: skip


def wire(args: argparse.Namespace, days: list[date], workdir: Path) -> WireShare:
    """de-pipeline (once per --in-flight value) and dlt (once per --dlt-workers value)
    against a distant, rate-limited simulator, runs alternating, medians of --repeat: wall,
    messages/s, the share of the rate-limit ceiling reached, the 429s provoked, peak RSS;
    then the year-backfill estimate."""
    limit = args.rate_limit or float(MAX_REQUESTS_PER_SECOND)
    print(f"simulator: {args.latency_ms} ms a request, rate limit {args.rate_limit or 'none'}/s; "
          f"de-pipeline with DE_MAX_REQUESTS_PER_SECOND={limit:g}; dlt retries a 429 after its "
          f"Retry-After, up to {DLT_MAX_ATTEMPTS} attempts")  # fmt: skip
    contenders = wire_contenders(args)
    runs: dict[str, list[RunResult]] = {c.label: [] for c in contenders}
    simulator = SimulatorProcess(args.per_day, args.long_texts, args.latency_ms, args.rate_limit)
    with simulator as endpoint:
        warm_simulator(endpoint, days)
        for repeat in range(args.repeat):
            turn = repeat % len(contenders)
            for contender in contenders[turn:] + contenders[:turn]:
                requests_before, refused_before = simulator.counts()
                folder = (
                    workdir / f"wire-r{repeat + 1}-{contender.child}-{contender.max_in_flight or contender.dlt_workers}"
                )
                spec = Spec(endpoint, days[0].isoformat(), days[-1].isoformat(), str(folder),
                            max_requests_per_second=f"{limit:g}", max_in_flight=contender.max_in_flight,
                            dlt_workers=contender.dlt_workers)  # fmt: skip
                try:
                    result = run_child(f"_{contender.child}", spec)
                finally:
                    if not args.keep:
                        shutil.rmtree(folder, ignore_errors=True)
                requests_after, refused_after = simulator.counts()
                fetch_s = (
                    result.details["fetch"]["seconds"]
                    if contender.child == "de-pipeline"
                    else result.details["fetch_s"]
                )
                result.details["wire"] = {"requests": requests_after - requests_before,
                                          "refused": refused_after - refused_before, "fetch_s": fetch_s}  # fmt: skip
                runs[contender.label].append(result)
                wire_line = result.details["wire"]
                print(f"  run {repeat + 1}/{args.repeat} {contender.label:<45} {result.rows:>9,} msgs "
                      f"{result.wall_s:7.1f}s (fetch {fetch_s:5.1f}s) {result.per_second:>7,.0f} msg/s "
                      f"{wire_line['requests']:>5} requests {wire_line['refused']:>4} 429s "
                      f"{result.peak_rss_mib:5.0f} MiB", flush=True)  # fmt: skip
    pipeline = [r for c in contenders if c.child == "de-pipeline" for r in runs[c.label]]
    fetch = pipeline[0].details["fetch"]
    needed = int(fetch["pages"] + fetch["days"])  # every page, and the `[]` that ends each day
    print_wire_table(runs, contenders, needed, limit, args)
    ours = runs[contenders[0].label]
    print_split(ours, f", {contenders[0].label}")
    print_year_estimate(ours, needed, limit)
    rows = median([r.rows for r in ours])
    return WireShare(len(days), int(rows), needed, needed / limit, median([r.wall_s for r in ours]),
                     median([r.details["wire"]["fetch_s"] for r in ours]),
                     median([r.cpu_s for r in ours]) * 100_000 / rows)  # fmt: skip


def print_wire_table(
    runs: dict[str, list[RunResult]],
    contenders: list[WireContender],
    needed: int,
    limit: float,
    args: argparse.Namespace,
) -> None:
    """The side-by-side table (markdown, as in docs/performance.md), then the targets."""
    ceiling_s = needed / limit
    rows = int(median([r.rows for r in runs[contenders[0].label]]))
    print(f"\n{len(runs[contenders[0].label])} runs each, medians; {args.latency_ms} ms a request, "
          f"{args.rate_limit or 'no'} requests/s allowed; {rows:,} messages, {needed} requests needed "
          f"(a {PAGE_SIZE}-row page each, and the `[]` that ends each day)")  # fmt: skip
    print(
        "share of the ceiling = the ceiling's seconds / the contender's seconds (wall: the "
        "whole run; fetch: de-pipeline's fetch from its run metadata, dlt's extract step)\n"
    )
    print(
        "| | wall s | msg/s | share of the ceiling | fetch s | fetch's share of the ceiling "
        "| requests | 429s | peak RSS MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| ceiling: {needed} requests at {limit:g}/s | {ceiling_s:.1f} | {rows / ceiling_s:,.0f} | 1.00 "
          f"| {ceiling_s:.1f} | 1.00 | {needed} | 0 | |")  # fmt: skip
    summary: dict[str, dict[str, float]] = {}
    for contender in contenders:
        results = runs[contender.label]
        wall = median([r.wall_s for r in results])
        fetch_s = median([r.details["wire"]["fetch_s"] for r in results])
        requests = median([r.details["wire"]["requests"] for r in results])
        refused = median([r.details["wire"]["refused"] for r in results])
        refused_share = median([r.details["wire"]["refused"] / r.details["wire"]["requests"] for r in results])
        summary[contender.label] = {
            "per_second": median([r.per_second for r in results]),
            "fetch_s": fetch_s,
            "wall_share": ceiling_s / wall,
            "fetch_share": ceiling_s / fetch_s,
            "refused_share": refused_share,
            "peak": median([r.peak_rss_mib for r in results]),
        }
        line = summary[contender.label]
        print(f"| {contender.label} | {wall:.1f} | {line['per_second']:,.0f} | {line['wall_share']:.2f} "
              f"| {fetch_s:.1f} | {line['fetch_share']:.2f} | {requests:.0f} | {refused:.0f} ({refused_share:.1%}) "
              f"| {line['peak']:.0f} |")  # fmt: skip
    ours = summary[contenders[0].label]
    print(f"\ntargets ({contenders[0].label})")
    for share, what in (("fetch_share", "the fetch's"), ("wall_share", "the whole run's")):
        print(f"  {what} share of the ceiling = {ours[share]:.2f}   "
              f"target >= {TARGET_WIRE_SHARE}: {mark(ours[share] >= TARGET_WIRE_SHARE)}")  # fmt: skip
    for contender in contenders:
        if contender.child == "dlt":
            theirs = summary[contender.label]
            ratio = ours["per_second"] / theirs["per_second"]
            print(f"  msg/s / {contender.label} = {ratio:.2f}   target >= {TARGET_WIRE_VS_DLT}: "
                  f"{mark(ratio >= TARGET_WIRE_VS_DLT)} (the fetch alone: "
                  f"{theirs['fetch_s'] / ours['fetch_s']:.2f}x as fast)")  # fmt: skip
    print(f"  429s = {ours['refused_share']:.2%} of its requests   target <= {TARGET_WIRE_429:.0%}: "
          f"{mark(ours['refused_share'] <= TARGET_WIRE_429)}")  # fmt: skip
    peak = ours["peak"]
    print(f"  peak RSS = {peak:.0f} MiB   target <= {TARGET_PEAK_MIB:.0f}: {mark(peak <= TARGET_PEAK_MIB)}")


def print_year_estimate(results: list[RunResult], needed: int, limit: float) -> None:
    """A year's backfill at several volumes, from what was measured: the fetch takes the
    requests at the rate limit (and, beside it, at the share of the ceiling the fetch
    reached); the build (every step after raw_messages) goes at the messages/s measured.
    `de-pipeline backfill` builds week N while week N+1 is fetched, so the year takes the
    fetch plus one week of building, the last."""
    rows = median([r.rows for r in results])
    build_s = median([sum(s for step, s in r.details["steps"].items() if step != "raw_messages") for r in results])
    build_rate = rows / build_s
    share = median([needed / limit / r.details["wire"]["fetch_s"] for r in results])
    print(f"\nyear backfill estimate (365 days): fetch = requests / {limit:g} per second, each day "
          f"ceil(messages / {PAGE_SIZE}) pages and the `[]` that ends it; build = the steps after "
          f"raw_messages at the {build_rate:,.0f} messages/s measured here ({build_s:.1f}s for {rows:,.0f}); "
          f"fetch and build overlap (the next week is fetched while one builds), so a year takes "
          f"the fetch and the last week's build\n")  # fmt: skip
    print(
        f"| messages a day | requests | fetch at the limit | fetch at {share:.2f} of it "
        "| last week's build | year backfill | without the overlap |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for per_day in YEAR_VOLUMES:
        requests = 365 * (math.ceil(per_day / PAGE_SIZE) + 1)
        fetch_s = requests / limit
        week_s = 7 * per_day / build_rate
        year_s = fetch_s / share + week_s
        sequential_s = fetch_s / share + 365 * per_day / build_rate
        print(f"| {per_day:,} | {requests:,} | {minutes(fetch_s)} | {minutes(fetch_s / share)} "
              f"| {week_s:.0f} s | {minutes(year_s)} | {minutes(sequential_s)} |")  # fmt: skip


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def print_header(args: argparse.Namespace, days: list[date]) -> None:
    packages = ", ".join(f"{p} {version(p)}" for p in ("dagster", "duckdb", "dlt", "orjson"))
    print(f"de-pipeline ingest benchmark: {len(days)} days ({days[0]} .. {days[-1]}), "
          f"{PAGE_SIZE}-row pages, repeat {args.repeat}, "
          f"{'long' if args.long_texts else 'short'} texts")  # fmt: skip
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {packages}")


def print_serving(warm_s: float, serving: Serving, per_day: int) -> None:
    print(f"\nsimulator: generated {serving.rows:,} messages ({per_day:,}/day nominal) "
          f"in {warm_s:.1f}s before timing")  # fmt: skip
    if serving.server_cpu_s >= 0.2:
        rate = serving.per_cpu_second
        cpu_rate = f"{rate:,.0f} messages/s per CPU-second of its process"
        verdict = mark(rate >= TARGET_SERVING)
    else:
        cpu_rate, verdict = "n/a messages/s per CPU-second (too little data)", "too short to judge"
    print(
        f"simulator serving rate: {cpu_rate} (target >= {TARGET_SERVING:,.0f}: {verdict}); "
        f"{serving.per_wall_second:,.0f} messages/s wall with a lean client, {serving.pages} pages"
    )


def compare(args: argparse.Namespace, days: list[date], workdir: Path) -> None:
    contenders = [c for c in CONTENDERS if c != "dlt" or not args.skip_dlt]
    if "dlt" in contenders and not dlt_available():
        print("dlt: SKIPPED, not installed (pip install -e '.[bench]' to compare with dlt)")
        contenders.remove("dlt")
    elif args.skip_dlt:
        print("dlt: SKIPPED (--skip-dlt)")
    runs: dict[str, list[RunResult]] = {name: [] for name in contenders}
    with SimulatorProcess(args.per_day, long_texts=args.long_texts) as endpoint:
        warm_s = warm_simulator(endpoint, days)
        serving = measure_serving(endpoint, days)
        print_serving(warm_s, serving, args.per_day)
        for repeat in range(args.repeat):
            order = contenders[repeat % len(contenders) :] + contenders[: repeat % len(contenders)]
            for name in order:
                result = run_contender(name, endpoint, days, workdir / f"r{repeat + 1}-{name}", args.keep)
                runs[name].append(result)
                check = "" if result.rows == serving.rows else f"  (!= {serving.rows:,} served)"
                print(f"  run {repeat + 1}/{args.repeat} {name:<12} {result.rows:>10,} msgs "
                      f"{result.wall_s:8.2f}s {result.per_second:>10,.0f} msg/s "
                      f"{result.peak_rss_mib:7.0f} MiB{check}", flush=True)  # fmt: skip
    print_comparison(runs, serving)


def print_comparison(runs: dict[str, list[RunResult]], serving: Serving) -> None:
    print(f"\nmedians of {max(len(r) for r in runs.values())} runs (wall = the work, without "
          "interpreter start and imports)")  # fmt: skip
    print(f"{'contender':<12} {'messages':>10} {'wall_s':>8} {'msg/s':>10} {'peak_rss_MiB':>12} "
          f"{'cpu_s':>7} {'import_s':>8}")  # fmt: skip
    rate: dict[str, float] = {}
    for name, results in runs.items():
        rate[name] = median([r.per_second for r in results])
        print(f"{name:<12} {int(median([r.rows for r in results])):>10,} "
              f"{median([r.wall_s for r in results]):>8.2f} {rate[name]:>10,.0f} "
              f"{median([r.peak_rss_mib for r in results]):>12.0f} "
              f"{median([r.cpu_s for r in results]):>7.1f} "
              f"{median([r.import_s for r in results]):>8.2f}")  # fmt: skip
    print(f"(served by the simulator: {serving.rows:,} messages)")
    if "dlt" in runs:
        loaded = runs["dlt"][0]
        print(f"dlt: loaded {loaded.rows:,} of {serving.rows:,} rows served into bench.messages "
              f"(tables: {', '.join(loaded.details['tables'])}); its offset paginator advances by "
              "the page size asked, not by the rows received: rows would be lost if the server "
              "capped pages below the limit (here cap == limit == 1000)")  # fmt: skip
    print("\nratios (msg/s)")
    ratio = rate["de-pipeline"] / rate["limit"]
    print(f"  de-pipeline / limit = {ratio:.2f}   target >= {TARGET_VS_LIMIT}: {mark(ratio >= TARGET_VS_LIMIT)}")
    if "dlt" in rate:
        ratio = rate["de-pipeline"] / rate["dlt"]
        print(f"  de-pipeline / dlt   = {ratio:.2f}   target >= {TARGET_VS_DLT}: {mark(ratio >= TARGET_VS_DLT)}")
    else:
        print("  de-pipeline / dlt   = n/a (dlt skipped)")
    peak = median([r.peak_rss_mib for r in runs["de-pipeline"]])
    print(f"  de-pipeline peak RSS = {peak:.0f} MiB   target <= {TARGET_PEAK_MIB:.0f}: {mark(peak <= TARGET_PEAK_MIB)}")
    print_split(runs["de-pipeline"])
    if "limit" in runs:
        limit = runs["limit"]
        print(f"limit: fetch {median([r.details['fetch_s'] for r in limit]):.2f}s, "
              f"read_json store {median([r.details['store_s'] for r in limit]):.2f}s (medians)")  # fmt: skip


def print_split(results: list[RunResult], what: str = "") -> None:
    wall = median([r.wall_s for r in results])
    print(f"\nwhere de-pipeline's time goes{what} (median seconds of {len(results)} runs; wall {wall:.2f}s)")
    for part in results[0].details["split"]:
        seconds = median([r.details["split"][part] for r in results])
        print(f"  {part:<22} {seconds:8.2f}s {100 * seconds / wall:5.1f}%")
    print_cpu(results)


def print_cpu(results: list[RunResult]) -> None:
    """CPU seconds per 100,000 messages of each phase (medians), and of the whole child."""
    rows = median([r.rows for r in results])
    per = 100_000 / rows if rows else float("nan")
    cpu = {phase: median([r.details["cpu"][phase] for r in results]) for phase in results[0].details["cpu"]}
    total = median([r.cpu_s for r in results])
    shared = (
        " (phases overlapped: a run of more than 7 days fetches beside a build)"
        if "overlap" in results[0].details
        else ""
    )
    print(f"CPU-seconds per 100,000 messages{shared}: "
          + ", ".join(f"{phase} {seconds * per:.2f}" for phase, seconds in cpu.items())
          + f"; the whole child {total * per:.2f} (imports and Dagster included)")  # fmt: skip


def memory_sweep(args: argparse.Namespace, days: list[date], workdir: Path) -> None:
    volumes = [int(v) for v in args.sweep_volumes.split(",")]
    budget = args.memory_limit or "the default"
    print(f"\nmemory sweep: de-pipeline only, {len(days)} days, DE_DUCKDB_MEMORY_LIMIT {budget}, "
          f"peak RSS median of {args.repeat} runs")  # fmt: skip
    print(f"{'per_day':>8} {'messages':>10} {'wall_s':>8} {'msg/s':>10} {'peak_rss_MiB':>12}")
    peaks: list[float] = []
    for volume in volumes:
        with SimulatorProcess(volume, long_texts=args.long_texts) as endpoint:
            warm_simulator(endpoint, days)
            results = [
                run_contender(
                    "de-pipeline", endpoint, days, workdir / f"sweep-{volume}-r{n + 1}", args.keep, args.memory_limit
                )  # fmt: skip
                for n in range(args.repeat)
            ]
        peaks.append(median([r.peak_rss_mib for r in results]))
        print(f"{volume:>8,} {results[0].rows:>10,} {median([r.wall_s for r in results]):>8.2f} "
              f"{median([r.per_second for r in results]):>10,.0f} {peaks[-1]:>12.0f}", flush=True)  # fmt: skip
    growth = peaks[-1] / peaks[0]
    print(
        f"  peak at {volumes[-1]:,}/day / peak at {volumes[0]:,}/day = {growth:.2f}   "
        f"target <= {TARGET_SWEEP_GROWTH}: {mark(growth <= TARGET_SWEEP_GROWTH)}"
    )
    print(
        f"  largest peak {max(peaks):.0f} MiB   target <= {TARGET_PEAK_MIB:.0f}: {mark(max(peaks) <= TARGET_PEAK_MIB)}"
    )
    print_split(results, f" at {volumes[-1]:,} a day")


def incremental(args: argparse.Namespace, workdir: Path) -> None:
    """Re-materialise one day of the aggregates with 7 and with 90 days of history (and, for
    information, one day of the journey tables)."""
    per_day = args.incremental_per_day or min(args.per_day, INCREMENTAL_MAX_PER_DAY)
    print(f"\nincremental cost: re-materialise yesterday's tables with 7 and with 90 days of "
          f"history in messages ({per_day:,} messages/day); median of {args.repeat} x "
          f"{args.incremental_runs} runs, each child after one warm-up run")  # fmt: skip
    histories = {7: recent_days(7), 90: recent_days(90)}
    walls: dict[tuple[str, int], list[float]] = {}
    steps: dict[tuple[str, int], list[float]] = {}
    with SimulatorProcess(per_day, long_texts=args.long_texts) as endpoint:
        specs = {}
        for length, days in histories.items():
            spec = Spec(endpoint, days[0].isoformat(), days[-1].isoformat(), str(workdir / f"history-{length}"))
            built = run_child("_de-pipeline", spec)
            print(f"  built {length} days: {built.rows:,} messages in {built.wall_s:.1f}s", flush=True)
            specs[length] = spec
    for _ in range(args.repeat):
        for group in INCREMENTAL_GROUPS:
            for length, spec in specs.items():
                result = run_child("_aggregates", spec, [str(args.incremental_runs), group])
                walls.setdefault((group, length), []).extend(result.details["walls"])
                steps.setdefault((group, length), []).extend(result.details["steps"])
    for group, tables in INCREMENTAL_GROUPS.items():
        print(f"  {group} ({', '.join(tables)}):")
        for length in histories:
            print(f"    {length:>2} days of history: {median(walls[group, length]):.3f}s per run "
                  f"(of which the asset steps {median(steps[group, length]):.3f}s)")  # fmt: skip
        ratio = median(walls[group, 90]) / median(walls[group, 7])
        step_ratio = median(steps[group, 90]) / median(steps[group, 7])
        verdict = f"target <= {TARGET_INCREMENTAL}: {mark(ratio <= TARGET_INCREMENTAL)}"
        print(
            f"    90 days / 7 days = {ratio:.2f} (steps only {step_ratio:.2f})   "
            + (verdict if group == "aggregates" else "(no target; for information)")
        )
    if not args.keep:
        for spec in specs.values():
            shutil.rmtree(spec.workdir, ignore_errors=True)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=14, help="days ending yesterday (default 14)")
    parser.add_argument(
        "--per-day", type=int, help="messages a day (default 50000; 30000 with --latency-ms/--rate-limit)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each contender (default 3)")
    parser.add_argument("--skip-dlt", action="store_true", help="do not run dlt")
    parser.add_argument(
        "--memory-sweep",
        action="store_true",
        help="only de-pipeline's peak RSS at each of --sweep-volumes messages a day",
    )
    parser.add_argument("--sweep-volumes", default="5000,50000,200000,300000", help="for --memory-sweep")
    parser.add_argument(
        "--long-texts",
        action=argparse.BooleanOptionalAction,
        help="the simulator writes texts of up to a few hundred characters, like a "
        "real export (default: on with --memory-sweep, off otherwise, so that "
        "throughput stays comparable with earlier runs)",
    )
    parser.add_argument(
        "--memory-limit", help="DE_DUCKDB_MEMORY_LIMIT for de-pipeline in the sweep (default: its own, 128MB)"
    )
    parser.add_argument(
        "--incremental",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time re-materialising one day of the aggregates (default on)",
    )
    parser.add_argument(
        "--incremental-per-day",
        type=int,
        help="messages a day in the 7- and 90-day histories (default: --per-day, at most 20000)",
    )
    parser.add_argument(
        "--incremental-runs", type=int, default=3, help="timed runs per child in the incremental test (default 3)"
    )
    parser.add_argument("--latency-ms", type=int, default=0, help="the simulator answers each request this late")
    parser.add_argument("--rate-limit", type=int, default=0, help="the simulator refuses more requests a second")
    parser.add_argument(
        "--in-flight",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[8],
        help="DE_MAX_IN_FLIGHT values to run with --latency-ms/--rate-limit, comma-separated (default 8; "
        "the first is the one judged)",
    )
    parser.add_argument(
        "--dlt-workers",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 8],
        help="with --latency-ms/--rate-limit, days dlt extracts at once, one dlt contender per value "
        "(default 1,8: dlt's default, and as many as DE_MAX_IN_FLIGHT)",
    )
    parser.add_argument(
        "--wire-days",
        type=lambda text: [int(n) for n in text.split(",")],
        help="with --latency-ms/--rate-limit, run the comparison for each of these numbers of days "
        "(comma-separated, e.g. 1,14,56) instead of --days, then the whole run's and the fetch's share "
        "of the ceiling side by side",
    )
    parser.add_argument("--workdir", help="where scratch files go (default: the system temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch files")  # fmt: skip
    args = parser.parse_args(argv)
    if args.long_texts is None:
        args.long_texts = args.memory_sweep
    if args.per_day is None:
        args.per_day = WIRE_PER_DAY if args.latency_ms or args.rate_limit else 50_000
    return args


def main(argv: Sequence[str]) -> int:
    if argv and argv[0] == "_simulator":
        simulator_child(int(argv[1]), argv[2] == "1", int(argv[3]), int(argv[4]))
        return 0
    if argv and argv[0] == "_aggregates":
        report(aggregates_child(Spec.from_json(argv[1]), int(argv[2]), *argv[3:4]))
        return 0
    if argv and argv[0].startswith("_") and argv[0][1:] in CHILDREN:
        name = argv[0][1:]
        spec = Spec.from_json(argv[1])
        profile = os.environ.get("BENCH_PROFILE")
        report(pipeline_child(spec, profile) if name == "de-pipeline" else CHILDREN[name](spec))
        return 0
    args = parse_args(argv)
    days = recent_days(args.days)
    print_header(args, days)
    with scratch(args.workdir, args.keep) as workdir:
        if args.memory_sweep:
            memory_sweep(args, days, workdir)
            return 0
        if args.latency_ms or args.rate_limit:
            shares = [wire(args, recent_days(count), workdir) for count in args.wire_days or [args.days]]
            print_wire_shares(shares)
            return 0
        compare(args, days, workdir)
        if args.incremental:
            incremental(args, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
