"""Independent views of what the simulator served, and of what the warehouse holds."""

from __future__ import annotations

import numbers
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from de_pipeline.simulator import Simulator, SyntheticDataset

SESSIONID = re.compile(r"^(\d+)\.(\d+)$")


DEFAULT_SEEDS = (7, 11)  # the seeds the tests' simulators use


def recent_days(count: int, *, ending_days_ago: int = 1, seeds: tuple[int, ...] = DEFAULT_SEEDS) -> tuple[date, date]:
    """The latest `count` consecutive days, ending at least `ending_days_ago` days ago, on
    which (and on the day before which) no seed has a simulated outage, so that every day of
    the range holds messages whatever today's date is. Weekends still hold fewer: derive
    expected counts from what was served, never from a constant."""
    last = date.today() - timedelta(days=ending_days_ago)
    while True:
        first = last - timedelta(days=count - 1)
        outage = [
            d
            for seed in seeds
            for d in _days(first - timedelta(days=1), last)
            if SyntheticDataset(seed).is_outage_day(d)
        ]
        if not outage:
            return first, last
        last = max(outage) - timedelta(days=1)


# messages a day, the fewest of the tests' simulators but the empty ones; a simulator of more
# serves as many or more on every day
QUIETEST = 40
BUSY = 20  # messages that busy_day's day, and the day before it, hold at least at QUIETEST a day


def busy_day(*seeds: int) -> date:
    """The latest day up to yesterday on which, and on the day before which, every simulator
    seed serves at least BUSY messages at QUIETEST a day: no outage, and no quiet Sunday whose
    few journeys began just before midnight (2028-09-24 held 4). Chosen from what is served,
    so that a test's guard of BUSY rows holds on every date."""
    last = date.today() - timedelta(days=1)
    while True:
        day = recent_days(1, ending_days_ago=(date.today() - last).days, seeds=seeds)[0]
        if all(_served_on(seed, d) >= BUSY for seed in seeds for d in (day - timedelta(days=1), day)):
            return day
        last = day - timedelta(days=1)


def _served_on(seed: int, day: date) -> int:
    dataset = SyntheticDataset(seed, QUIETEST)
    return len(dataset.payloads_between(*dataset.day_bounds_ms(day)))


def latest_outage_day(seed: int = DEFAULT_SEEDS[0], *, within_days: int = 300) -> date:
    """The latest day up to yesterday on which a simulator of `seed` serves nothing (an outage),
    the day before it not one, within `within_days` (well inside the vendor's retention)."""
    today = date.today()
    for back in range(1, within_days):
        day = today - timedelta(days=back)
        dataset = SyntheticDataset(seed)
        if dataset.is_outage_day(day) and not dataset.is_outage_day(day - timedelta(days=1)):
            return day
    raise AssertionError(f"seed {seed} has no outage day in the last {within_days} days")


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def served(simulator: Simulator, first: date, last: date, provider: str | None = None) -> list[Any]:
    """Every record the simulator holds for the days (UTC days unless its timezone differs),
    of its main provider or of `provider`."""
    dataset = simulator.datasets[provider] if provider else simulator.dataset
    return dataset.messages_between(dataset.day_bounds_ms(first)[0], dataset.day_bounds_ms(last)[1])


def epoch_ms(ts: Any) -> int | None:
    """A record's ts as the pipeline reads it (docs/api.md, 6. Messages): an integer of 64 bits,
    written as one, with a fraction of zeros, or as a string of either; else None (a bool is
    no integer). A parsed float cannot show a fraction past its precision: none is served."""
    if isinstance(ts, bool):
        return None
    if isinstance(ts, str) and re.fullmatch(r"-?[0-9]+(\.0+)?", ts):
        ts = int(ts.split(".")[0])
    elif isinstance(ts, float) and ts.is_integer():
        ts = int(ts)
    return int(ts) if isinstance(ts, numbers.Integral) and -(2**63) <= ts < 2**63 else None


def usable(records: list[Any]) -> list[dict[str, Any]]:
    """Records that are messages: JSON objects with a ts the pipeline reads (epoch_ms)."""
    return [r for r in records if isinstance(r, dict) and epoch_ms(r.get("ts")) is not None]


def identity(record: dict[str, Any]) -> tuple[Any, ...]:
    """A message's identity, from a raw record or a stored row: missing, null, empty and a
    pandas NaN (a NULL read back) are all one blank, as the pipeline stores '' as NULL."""

    def text(name: str) -> Any:
        value = record.get(name)
        return "" if value is None or value != value else value  # NaN is the one value unequal to itself

    return (
        text("customersessionid"),
        text("sessionid"),
        epoch_ms(record["ts"]),
        text("sendertype"),
        text("sendername"),
        text("text"),
    )


def unique_messages(records: list[Any]) -> pd.DataFrame:
    """One row per unique usable message, computed in pandas from the raw records."""
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for record in usable(records):
        seen.setdefault(identity(record), record | {"ts": epoch_ms(record["ts"])})
    frame = pd.DataFrame(list(seen.values()))
    return frame


def table(name: str, order_by: str = "ALL") -> pd.DataFrame:
    """A table of the test's warehouse (DE_DUCKDB_PATH), ordered, as pandas."""
    return query(f"SELECT * FROM {name} ORDER BY {order_by}")


def reading(path: str | Path | None = None) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
    """A read-only connection to `path` (default: DE_DUCKDB_PATH) that waits, as the
    pipeline's own readers do, while a writer holds the file: a daemon's publish of the
    readers' copy holds it for a moment after each run."""
    from de_pipeline.warehouse.connection import reader
    from de_pipeline.warehouse.settings import WarehouseSettings

    duckdb_path = Path(path or os.environ["DE_DUCKDB_PATH"])
    return reader(WarehouseSettings(duckdb_path=duckdb_path, archive_dir=duckdb_path.parent))


def query(sql: str, path: str | Path | None = None) -> pd.DataFrame:
    with reading(path) as connection:
        return connection.execute(sql).df()


def dump_sql(connection: duckdb.DuckDBPyConnection, name: str, *, where: str = "", signed_zero: bool = True) -> str:
    """The query of an ordered dump of table `name`, every column as text but the fetch time,
    for byte-for-byte comparison; `where` (a WHERE clause) narrows it, e.g. to one account.
    With signed_zero=False a float's -0.0 is dumped as 0.0 (adding 0.0 clears its sign): a
    lake gives back 0.0 where a DuckDB file keeps -0.0, an equal value."""
    columns = connection.execute(f"DESCRIBE {name}").fetchall()
    kept = ", ".join(
        f'CAST("{c}" + 0.0 AS VARCHAR)'
        if not signed_zero and kind in ("DOUBLE", "FLOAT")
        else f'CAST("{c}" AS VARCHAR)'
        for c, kind, *_ in columns
        if c != "fetched_at"
    )
    return f"SELECT {kept} FROM {name} {where} ORDER BY ALL"


def dump(name: str, path: str | Path | None = None) -> list[tuple[Any, ...]]:
    """An ordered dump of a table of `path` (default: DE_DUCKDB_PATH) without the fetch time,
    for byte-for-byte comparison."""
    with reading(path) as connection:
        return connection.execute(dump_sql(connection, name)).fetchall()


def start_cli(*args: str, env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen:
    """`de-pipeline ARGS` in a subprocess, with this environment plus `env`; output as text."""
    return subprocess.Popen(
        [sys.executable, "-m", "de_pipeline.cli", *args],
        env=dict(os.environ) | (env or {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: int = 300, **popen: Any
) -> subprocess.CompletedProcess:
    """`de-pipeline ARGS` run to the end (see start_cli)."""
    process = start_cli(*args, env=env, **popen)
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def kill_when(process: subprocess.Popen, ready: Callable[[], bool], waiting_for: str, timeout: float) -> None:
    """SIGKILL `process` once `ready()` (bounded wait: `waiting_for` names what never came)."""
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert time.monotonic() < deadline, f"never {waiting_for}"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL


def kill_when_staged(process: subprocess.Popen, archive_dir: Path, pages: int, timeout: float) -> None:
    """SIGKILL `process` once its fetch has staged `pages` pages in `archive_dir` (bounded wait)."""
    # staged-*.json as they arrive, page-*.json once their day is in: a fast writer turns
    # a day's pages into its Parquet file before 20 of them stand as page-*.json at once
    kill_when(
        process,
        lambda: len(list(archive_dir.glob(".staging-*/*.json"))) >= pages,
        f"the fetch staged {pages} pages",
        timeout,
    )


def overlap(one: tuple[float, float], other: tuple[float, float]) -> bool:
    """Whether two (start, end) spans of time share a moment."""
    return one[0] < other[1] and other[0] < one[1]


def one_at_a_time(spans: list[tuple[Any, ...]]) -> None:
    """Assert that no two (start, end, what...) spans overlap: each ends before the next starts."""
    spans = sorted(spans)
    for before, after in zip(spans, spans[1:]):
        assert before[1] <= after[0], f"two at once: {before} and {after}"
