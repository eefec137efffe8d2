"""Accounts one after another vs at once: `de-pipeline backfill` of N accounts, each on its own
key with its own rate limit, with DE_MAX_PARALLEL_ACCOUNTS=1 and then higher, side by side.

    python benchmarks/accounts.py                                   # 4 accounts x 3 days x 5000, 250 ms, 20/s
    python benchmarks/accounts.py --accounts 8 --days 7 --per-day 20000 --parallel 1,4,8
    python benchmarks/accounts.py --page-size 100                   # more requests: the fetch dominates

One simulator (in this process, on 127.0.0.1) serves every account its own data, answers each
request --latency-ms late and refuses more than --rate-limit requests a second of each key
(429 with Retry-After), as the vendor limits each company's key; the days are generated before
anything is timed. Each mode runs `de-pipeline backfill` in a fresh child process, into its own
warehouse and Dagster home (pools of limit 1, as a user's), with DE_MAX_REQUESTS_PER_SECOND at
the same limit. The table shows, per mode: the wall seconds of the child; from the simulator's
own clock, the seconds from the run's first request to its last, and each account's first to
last summed (they are equal when the accounts fetch one after another); the requests and 429s
the simulator counted; the messages stored; and the speed-up over the first mode. The floor of
the fetch is one account's requests over its rate limit; the rest of the wall is Dagster's
runs and the builds, which stay one writer whatever the mode.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
from ingest import recent_days  # benchmarks/ingest.py, beside this script

from de_pipeline.simulator import Simulator, SimulatorConfig

MAX_PAGE_SIZE = 1000
SEED = 7


@dataclass(frozen=True)
class Mode:
    parallel: int
    wall_s: float
    fetching_s: float  # the run's first request to its last (the simulator's clock)
    accounts_s: float  # each account's first request to its last, summed
    requests: int
    refused_429: int
    messages: int


def providers(count: int) -> list[tuple[str, str, str]]:
    """(account name, provider id, key) of each account."""
    return [(f"acct{n}", f"bench-provider-{n}", f"bench-key-{n}") for n in range(1, count + 1)]


def start_simulator(args: argparse.Namespace, accounts: list[tuple[str, str, str]]) -> Simulator:
    (_, first_id, first_key), *others = accounts
    config = SimulatorConfig(
        seed=SEED,
        messages_per_day=args.per_day,
        provider_id=first_id,
        api_key=first_key,
        other_providers=tuple((provider, key) for _, provider, key in others),
        max_page_size=MAX_PAGE_SIZE,
        default_page_size=MAX_PAGE_SIZE,
        latency_ms=args.latency_ms,
        rate_limit=args.rate_limit,
    )
    simulator = Simulator(config)
    simulator.start()
    return simulator


def warm(simulator: Simulator, days: list[date]) -> None:
    """Generate every account's days now, so that no mode pays for it."""
    for dataset in simulator.datasets.values():
        for day in days:
            dataset.messages_between(*dataset.day_bounds_ms(day))


def child_environment(
    args: argparse.Namespace, simulator: Simulator, accounts: list[tuple[str, str, str]], workdir: Path, parallel: int
) -> dict[str, str]:
    providers_file = workdir / "providers.yaml"
    providers_file.write_text(
        "accounts:\n"
        + "".join(
            f"  - {{name: {name}, provider_id: {provider}, api_key_env: DE_API_KEY_{name.upper()}, "
            f"base_url: {simulator.base_url}}}\n"
            for name, provider, _ in accounts
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DE_", "DAGSTER_HOME"))}
    env |= {f"DE_API_KEY_{name.upper()}": key for name, _, key in accounts}
    env |= {
        "DE_PROVIDERS_FILE": str(providers_file),
        "DE_DUCKDB_PATH": str(workdir / "warehouse.duckdb"),
        "DE_MAX_PARALLEL_ACCOUNTS": str(parallel),
        "DE_MAX_REQUESTS_PER_SECOND": str(args.rate_limit or 10_000),
        "DE_PAGE_SIZE": str(args.page_size),
        "DE_TIMEZONE": "UTC",
        "DE_READER_COPY_PATH": "off",
        "DE_ENV_FILE": "off",
    }
    if args.in_flight:
        env["DE_MAX_IN_FLIGHT"] = str(args.in_flight)
    return env


def run_mode(
    args: argparse.Namespace,
    simulator: Simulator,
    accounts: list[tuple[str, str, str]],
    days: list[date],
    parallel: int,
) -> Mode:
    workdir = Path(args.workdir) / f"parallel-{parallel}"
    workdir.mkdir(parents=True)
    env = child_environment(args, simulator, accounts, workdir, parallel)
    requests_before, refused_before = len(simulator.requests), simulator.rate_limited
    command = [sys.executable, "-m", "de_pipeline.cli", "backfill", "--start", str(days[0]), "--end", str(days[-1])]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    (workdir / "stderr.log").write_text(done.stderr)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-15:])
        raise RuntimeError(f"DE_MAX_PARALLEL_ACCOUNTS={parallel}: backfill failed (exit {done.returncode}):\n{tail}")
    with duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True) as connection:
        row = connection.execute("SELECT count(*) FROM messages").fetchone()
    answered = simulator.requests[requests_before:]
    spans: dict[str | None, list[float]] = {}
    for request in answered:
        spans.setdefault(request.provider, []).append(request.at)
    return Mode(
        parallel,
        wall,
        max(request.at for request in answered) - min(request.at for request in answered),
        sum(max(times) - min(times) for times in spans.values()),
        sum(1 for request in answered if request.status == 200),
        simulator.rate_limited - refused_before,
        int(row[0]) if row else 0,
    )


def print_table(args: argparse.Namespace, modes: list[Mode]) -> None:
    per_account = modes[0].requests / args.accounts
    floor = per_account / args.rate_limit if args.rate_limit else float("nan")
    print(
        f"\n{args.accounts} accounts x {args.days} days x {args.per_day:,} messages; {args.latency_ms} ms a "
        f"request, {args.rate_limit or 'no'} requests/s per key, pages of {args.page_size}; "
        f"{per_account:.0f} requests an account: its fetch takes at least {floor:.1f}s at the limit"
    )
    header = ("parallel", "wall s", "fetching s", "accounts s", "requests", "429s", "messages", "speed-up")
    print("  ".join(f"{h:>12}" for h in header))
    for mode in modes:
        cells = (mode.parallel, f"{mode.wall_s:.1f}", f"{mode.fetching_s:.1f}", f"{mode.accounts_s:.1f}", mode.requests,
                 mode.refused_429, f"{mode.messages:,}", f"{modes[0].wall_s / mode.wall_s:.2f}x")  # fmt: skip
        print("  ".join(f"{c:>12}" for c in cells))
    print(
        "parallel: DE_MAX_PARALLEL_ACCOUNTS; fetching s: the run's first request to its last; accounts s: each "
        "account's first to last, summed (the simulator's clock). The rest of the wall is Dagster and the builds."
    )


def argument_parser(description: str, *, accounts: int, days: int, per_day: int) -> argparse.ArgumentParser:
    """The options of the accounts and of the simulator (what start_simulator and
    child_environment read), with these defaults; also used by benchmarks/lake.py."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--accounts", type=int, default=accounts)
    parser.add_argument("--days", type=int, default=days)
    parser.add_argument("--per-day", type=int, default=per_day, help="messages a day of each account")
    parser.add_argument("--latency-ms", type=int, default=250)
    parser.add_argument("--rate-limit", type=int, default=20, help="requests a second of each key (0: none)")
    parser.add_argument("--page-size", type=int, default=MAX_PAGE_SIZE, help=f"DE_PAGE_SIZE (at most {MAX_PAGE_SIZE})")
    parser.add_argument("--in-flight", type=int, default=0, help="DE_MAX_IN_FLIGHT (default: the pipeline's)")
    parser.add_argument("--workdir", help="keep the warehouses and logs here (default: a temporary folder)")
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argument_parser(__doc__.split("\n\n")[0], accounts=4, days=3, per_day=5000)
    parser.add_argument("--parallel", default="", help="DE_MAX_PARALLEL_ACCOUNTS values, comma-separated (1,N)")
    args = parser.parse_args(argv)
    args.parallel = [int(v) for v in (args.parallel or f"1,{args.accounts}").split(",")]
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    accounts = providers(args.accounts)
    days = recent_days(args.days)
    simulator = start_simulator(args, accounts)
    try:
        warm(simulator, days)
        with tempfile.TemporaryDirectory(prefix="bench-accounts-") as scratch:
            args.workdir = args.workdir or scratch
            modes = []
            for parallel in args.parallel:
                modes.append(run_mode(args, simulator, accounts, days, parallel))
                print(f"DE_MAX_PARALLEL_ACCOUNTS={parallel}: {modes[-1].wall_s:.1f}s", flush=True)
            print_table(args, modes)
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
