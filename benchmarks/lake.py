"""A DuckDB file against a DuckLake: N accounts loaded one after another into one DuckDB
file, and loaded at once, a process per account, into a lake, side by side.

    python benchmarks/lake.py                                      # 8 accounts x 14 days x 30,000, 250 ms, 20/s
    python benchmarks/lake.py --accounts 2 --days 1 --per-day 300  # a smoke run

Run it in the lake's venv (`make test-lake` makes .venv-lake: duckdb 1.5.5 and the DuckLake
extensions), on a machine with PostgreSQL installed (Debian's `postgresql`).

One simulator (in this process, on 127.0.0.1; benchmarks/accounts.py's) serves every account
its own data on its own key, answers each request --latency-ms late and refuses more than
--rate-limit requests a second of each key (429 with Retry-After); the days are generated
before anything is timed. Then:

  (a) serial    one `de-pipeline backfill` of every account, DE_MAX_PARALLEL_ACCOUNTS=1, into
                one DuckDB file: the accounts are fetched one after another;
  (b) parallel  one `de-pipeline backfill` process per account, all started at once, into one
                DuckLake: its catalog in a PostgreSQL server and its Parquet files on an
                S3-compatible server (moto, in a thread of this process), both started here
                on 127.0.0.1 and not timed.

Each child has its own folder (raw archive, Dagster home) and DE_MAX_REQUESTS_PER_SECOND at
the limit. The table shows, per mode: the wall seconds from the first child's start to the
last child's end; the messages stored; messages a second; the speed-up over serial; the
peak RSS of its largest process (os.wait4 on each child); and the share of the requests the
simulator refused with 429. Then, per account, whether every table of the lake equals the
DuckDB file's, row for row (ordered dumps without the fetch time), and, per mode, what bounds
it: the CPU (the children's CPU seconds, and this process's: the simulator and the S3 server,
over the wall times the cores; PostgreSQL's is not counted), the fetch floor (the requests an
account needs over its rate limit: the busiest account's when they fetch at once, all of
them when one after another), and the catalog (the write conflicts the children ran again:
their "running the transaction again" log lines).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import duckdb
from accounts import argument_parser, child_environment, providers, start_simulator, warm  # beside this script
from ingest import recent_days

from de_pipeline.simulator import Simulator
from de_pipeline.warehouse.connection import reader
from de_pipeline.warehouse.extensions import packaged_extension
from de_pipeline.warehouse.settings import WarehouseSettings
from de_pipeline.warehouse.tables import TABLES
from de_pipeline_tests.helpers import dump_sql
from de_pipeline_tests.postgres import PostgresUnavailable, check_postgres_available, running_postgres
from de_pipeline_tests.s3 import running_s3

BUCKET = "lake"
CONFLICT_RETRIED = "running the transaction again"  # write_conflicts_retried's log line
DUMP_BATCH = 10_000  # rows compared at a time
COMPARE_MEMORY_LIMIT = "2GB"  # DE_DUCKDB_MEMORY_LIMIT of the ordered dumps compared at the end
SATURATED = 0.75  # a share of the cores busy, or of the wall at the fetch floor, that bounds a mode


@dataclass(frozen=True)
class Child:
    """One finished `de-pipeline backfill` process."""

    cpu_s: float
    peak_rss_mib: float
    conflicts_retried: int
    failure: str  # "" when it exited 0, else its exit and its last line


@dataclass(frozen=True)
class Mode:
    name: str
    processes: int
    wall_s: float
    messages: int
    requests: int  # every request the simulator answered, 429s included
    refused_429: int
    peak_rss_mib: float  # its largest process's
    cpu_s: float  # its processes' CPU seconds, summed
    servers_cpu_s: float  # this process's meanwhile: the simulator (and the S3 server)
    fetch_floor_s: float
    conflicts_retried: int
    failures: list[str]

    @property
    def per_second(self) -> float:
        return self.messages / self.wall_s


def run_backfills(envs: Sequence[tuple[Path, dict[str, str]]], days: list[date]) -> tuple[float, list[Child]]:
    """`de-pipeline backfill` of `days` in a process per (folder, environment), all at once,
    each in its folder (its logs; as on machines of their own): the wall seconds until the
    last ends, and each one's usage (os.wait4 on that one child)."""
    command = [sys.executable, "-m", "de_pipeline.cli", "backfill", "--start", str(days[0]), "--end", str(days[-1])]
    started = time.perf_counter()
    processes = []
    for folder, env in envs:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "stdout.log", "w") as out, open(folder / "stderr.log", "w") as err:
            processes.append(subprocess.Popen(command, env=env, stdout=out, stderr=err, cwd=folder))
    usages = [os.wait4(process.pid, 0) for process in processes]
    wall = time.perf_counter() - started
    children = []
    for (folder, _), (_, status, usage) in zip(envs, usages):
        stderr = (folder / "stderr.log").read_text(errors="replace")
        code = os.waitstatus_to_exitcode(status)
        failure = f"{folder.name}: exit {code}: {(stderr.strip().splitlines() or [''])[-1][:300]}" if code else ""
        rss_mib = usage.ru_maxrss / 1024  # KiB on Linux
        children.append(Child(usage.ru_utime + usage.ru_stime, rss_mib, stderr.count(CONFLICT_RETRIED), failure))
    return wall, children


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_mode(
    name: str,
    simulator: Simulator,
    envs: Sequence[tuple[Path, dict[str, str]]],
    days: list[date],
    rate_limit: int,
) -> Mode:
    """Run the backfills of `envs` at once, count what the warehouse of the first holds
    (every one writes the same warehouse) and what the simulator answered meanwhile."""
    before, cpu_before = len(simulator.requests), own_cpu_seconds()
    wall, children = run_backfills(envs, days)
    servers_cpu = own_cpu_seconds() - cpu_before
    answered = simulator.requests[before:]
    pages = Counter(request.provider for request in answered if request.status == 200)
    at_once = len(envs) > 1  # one account a process: they fetch at once; else one after another
    floor_requests = max(pages.values()) if at_once else sum(pages.values())
    with reader(WarehouseSettings.from_env(envs[0][1])) as connection:
        (messages,) = connection.execute("SELECT count(*) FROM messages").fetchone()  # type: ignore[misc]
    return Mode(
        name=name,
        processes=len(envs),
        wall_s=wall,
        messages=messages,
        requests=len(answered),
        refused_429=sum(1 for request in answered if request.status == 429),
        peak_rss_mib=max(child.peak_rss_mib for child in children),
        cpu_s=sum(child.cpu_s for child in children),
        servers_cpu_s=servers_cpu,
        fetch_floor_s=floor_requests / rate_limit if rate_limit else 0.0,
        conflicts_retried=sum(child.conflicts_retried for child in children),
        failures=[child.failure for child in children if child.failure],
    )


@contextmanager
def lake() -> Iterator[dict[str, str]]:
    """A PostgreSQL catalog and an S3 bucket on 127.0.0.1 for the block; the lake's settings.
    Their secrets (made up here) go into this process's environment too, where libpq and the
    readers' S3 secret read them."""
    key_id, secret = "bench-key-id", os.urandom(12).hex()
    with running_postgres(database="lake", user="de") as postgres, running_s3(BUCKET, key_id, secret) as endpoint:
        secrets = {"PGPASSWORD": postgres.password, "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret}
        os.environ.update(secrets)
        yield secrets | {
            "DE_WAREHOUSE": f"ducklake:postgres:dbname={postgres.database} host={postgres.host} "
            f"port={postgres.port} user={postgres.user}",
            "DE_LAKE_DATA_PATH": f"s3://{BUCKET}/data/",
            "DE_LAKE_S3_ENDPOINT": endpoint,
        }


def tables_equal(file: WarehouseSettings, lake_settings: WarehouseSettings, account: str) -> list[str]:
    """The tables whose rows of `account` differ between the file and the lake: ordered dumps
    without the fetch time (de_pipeline_tests.helpers.dump_sql; -0.0 as 0.0, which is what the
    lake gives back for it), compared a batch at a time."""
    with reader(file) as one, reader(lake_settings) as other:
        return [table.name for table in TABLES if not same_dump(one, other, table.name, account)]


def same_dump(one: duckdb.DuckDBPyConnection, other: duckdb.DuckDBPyConnection, table: str, account: str) -> bool:
    for connection in (one, other):
        connection.execute(dump_sql(connection, table, where="WHERE provider = $p", signed_zero=False), {"p": account})
    while True:
        batch = one.fetchmany(DUMP_BATCH)
        if batch != other.fetchmany(DUMP_BATCH):
            return False
        if not batch:
            return True


def child(
    args: argparse.Namespace, simulator: Simulator, accounts: list[tuple[str, str, str]], folder: Path
) -> tuple[Path, dict[str, str]]:
    """The folder and environment of a process that loads `accounts` one after another."""
    folder.mkdir(parents=True)
    env = child_environment(args, simulator, accounts, folder, 1)
    if args.memory_limit:
        env["DE_DUCKDB_MEMORY_LIMIT"] = args.memory_limit
    return folder, env


def print_table(args: argparse.Namespace, modes: list[Mode]) -> None:
    print(
        f"\n{args.accounts} accounts x {args.days} days x {args.per_day:,} messages; {args.latency_ms} ms a "
        f"request, {args.rate_limit or 'no'} requests/s per key, pages of {args.page_size}; {os.cpu_count()} cores"
    )
    header = ("mode", "processes", "wall s", "messages", "messages/s", "speed-up", "peak RSS MiB", "429 share")
    widths = (30, 9, 8, 11, 10, 8, 12, 9)
    print("  ".join(f"{h:>{w}}" if i else f"{h:<{w}}" for i, (h, w) in enumerate(zip(header, widths))))
    for mode in modes:
        cells = (mode.name, mode.processes, f"{mode.wall_s:.1f}", f"{mode.messages:,}", f"{mode.per_second:,.0f}",
                 f"{modes[0].wall_s / mode.wall_s:.2f}x", f"{mode.peak_rss_mib:.0f}",
                 f"{mode.refused_429 / max(mode.requests, 1):.1%}")  # fmt: skip
        print("  ".join(f"{c:>{w}}" if i else f"{c:<{w}}" for i, (c, w) in enumerate(zip(cells, widths))))


def print_bounds(mode: Mode, cores: int) -> None:
    """What bounds a mode: the cores it kept busy, the rate limit's floor, the catalog's retries."""
    busy = (mode.cpu_s + mode.servers_cpu_s) / (mode.wall_s * cores)
    floor = mode.fetch_floor_s / mode.wall_s
    if max(busy, floor) < SATURATED:
        bound = "neither the CPU nor the rate limit alone (waits: process starts, connections, the catalog)"
    else:
        bound = "the CPU" if busy >= floor else "the rate limit (the fetch floor)"
    print(
        f"{mode.name}: bound by {bound}. CPU: {mode.cpu_s:.0f} s of its processes + {mode.servers_cpu_s:.0f} s of "
        f"the simulator and S3 server over {mode.wall_s:.0f} s x {cores} cores = {busy:.0%} busy; the limiter: a "
        f"fetch floor of {mode.fetch_floor_s:.0f} s ({floor:.0%} of the wall); the catalog: "
        f"{mode.conflicts_retried} write conflicts run again"
    )


def compare(
    args: argparse.Namespace,
    simulator: Simulator,
    accounts: list[tuple[str, str, str]],
    days: list[date],
    workdir: Path,
    lake_env: dict[str, str],
) -> None:
    """Both modes, one after the other; their table, the tables' check and their bounds."""
    serial = [child(args, simulator, accounts, workdir / "serial")]
    parallel = [child(args, simulator, [account], workdir / "lake" / account[0]) for account in accounts]
    parallel = [(folder, env | lake_env) for folder, env in parallel]
    modes = []
    for name, envs in (("(a) serial, one DuckDB file", serial), ("(b) parallel, DuckLake", parallel)):
        modes.append(run_mode(name, simulator, envs, days, args.rate_limit))
        print(f"{name}: {modes[-1].wall_s:.1f}s", flush=True)
        for failure in modes[-1].failures:
            print(f"  FAILED {failure}", flush=True)
    print_table(args, modes)
    # the comparison's own readers sort whole tables: a budget of their own, not the children's
    file_settings, lake_settings = (
        replace(WarehouseSettings.from_env(env), memory_limit=COMPARE_MEMORY_LIMIT)
        for env in (serial[0][1], parallel[0][1])
    )
    for account, _, _ in accounts:
        differ = tables_equal(file_settings, lake_settings, account)
        print(f"{account}: tables equal: {'no (' + ', '.join(differ) + ')' if differ else 'yes'}")
    for mode in modes:
        print_bounds(mode, os.cpu_count() or 1)


def main(argv: Sequence[str]) -> int:
    parser = argument_parser(__doc__.split("\n\n")[0], accounts=8, days=14, per_day=30_000)
    parser.add_argument("--memory-limit", help="DE_DUCKDB_MEMORY_LIMIT of every process (default: the pipeline's)")
    args = parser.parse_args(argv)
    if packaged_extension("ducklake") is None:
        print(f"no DuckLake extension for duckdb {duckdb.__version__}: run this in .venv-lake (make test-lake)")
        return 2
    try:
        check_postgres_available()
    except PostgresUnavailable as exc:
        print(exc)
        return 2
    accounts = providers(args.accounts)
    days = recent_days(args.days)
    simulator = start_simulator(args, accounts)
    try:
        warm(simulator, days)
        with tempfile.TemporaryDirectory(prefix="bench-lake-") as scratch:
            with lake() as lake_env:
                compare(args, simulator, accounts, days, Path(args.workdir or scratch), lake_env)
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
