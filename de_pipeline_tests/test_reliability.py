"""Parallel backfills with a reader, a killed write, retention, and DST days."""

from __future__ import annotations

import io
import os
import signal
import time
from contextlib import redirect_stderr, redirect_stdout
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from de_pipeline.cli import main
from de_pipeline.warehouse.tables import TABLE_NAMES
from de_pipeline_tests.conftest import point_at
from de_pipeline_tests.helpers import busy_day, dump, recent_days, served, start_cli, unique_messages

TABLES = TABLE_NAMES  # every table of the registry


def dumps(path: Path) -> dict[str, list]:
    os.environ["DE_DUCKDB_PATH"] = str(path)
    return {name: dump(name) for name in TABLES}


@pytest.mark.slow
def test_parallel_backfills_and_a_reader_equal_a_serial_run(start_simulator, monkeypatch, tmp_path):
    # a distant server (250 ms): the reader below gets its turns while the backfills fetch,
    # however quickly they build
    simulator = start_simulator(hostile=True, messages_per_day=400, max_page_size=200, latency_ms=250)
    point_at(monkeypatch, simulator)
    shared = tmp_path / "parallel.duckdb"
    env = {"DE_DUCKDB_PATH": str(shared)}
    first, last = recent_days(12)
    a = start_cli("backfill", "--start", str(first), "--end", str(first + timedelta(days=7)), env=env)
    b = start_cli("backfill", "--start", str(first + timedelta(days=5)), "--end", str(last), env=env)
    monkeypatch.setenv("DE_DUCKDB_PATH", str(shared))
    queries, failures = 0, []
    deadline = time.monotonic() + 600
    while a.poll() is None or b.poll() is None:
        assert time.monotonic() < deadline, "the parallel backfills did not finish in 10 minutes"
        if shared.exists():  # the CLI's `sql`, in-process: a slow machine still reads many times
            out, err = io.StringIO(), io.StringIO()
            with redirect_stdout(out), redirect_stderr(err):
                status = main(["sql", "SELECT count(*) FROM messages"])
            queries += 1
            if status != 0 or "count_star()" not in out.getvalue():
                failures.append(err.getvalue())
        time.sleep(0.05)
    out_a, err_a = a.communicate()
    out_b, err_b = b.communicate()
    assert a.returncode == 0, err_a[-3000:]
    assert b.returncode == 0, err_b[-3000:]
    assert queries >= 3 and not failures, (queries, failures[:3])

    serial = tmp_path / "serial.duckdb"
    done = start_cli("backfill", "--start", str(first), "--end", str(last), env={"DE_DUCKDB_PATH": str(serial)})
    assert done.wait(timeout=600) == 0, done.stderr.read()[-3000:]
    parallel_tables, serial_tables = dumps(shared), dumps(serial)
    assert len(serial_tables["messages"]) == len(unique_messages(served(simulator, first, last))) > 0
    for name in TABLES:
        assert parallel_tables[name] == serial_tables[name], name


@pytest.mark.dates
@pytest.mark.slow
def test_a_write_killed_midway_leaves_old_or_new_rows_and_a_rerun_repairs(tmp_path):
    path = tmp_path / "killed.duckdb"
    day = busy_day(7)  # the embedded simulator's seed: the day holds messages
    args = ("backfill", "--start", str(day), "--end", str(day))
    small = {"DE_DUCKDB_PATH": str(path), "DE_SIM_MESSAGES_PER_DAY": "1000"}
    large = small | {"DE_SIM_MESSAGES_PER_DAY": "120000"}
    assert start_cli(*args, env=small).wait(timeout=300) == 0
    before = dumps(path)

    wal = path.with_name(path.name + ".wal")
    process = start_cli(*args, env=large)
    deadline = time.monotonic() + 300
    while _size(wal) <= 1_000_000:  # the big transaction is writing
        assert process.poll() is None, process.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "the large write never started"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    after = dumps(path)  # the file opens

    assert start_cli(*args, env=large).wait(timeout=600) == 0
    repaired = dumps(path)
    # the killed write left each table's day all old or all new, never a mix
    for name in TABLES:
        assert after[name] in (before[name], repaired[name]), name
    assert len(repaired["messages"]) > len(before["messages"]) > 0
    totals = (
        duckdb.connect(str(path), read_only=True)
        .execute("SELECT (SELECT sum(messages) FROM sentiment_trends), (SELECT count(*) FROM messages)")
        .fetchone()
    )
    assert totals[0] == totals[1]


def _size(path: Path) -> int:
    """The file's size; 0 while it is missing (a checkpoint removes DuckDB's WAL, also
    between a look at whether it exists and a look at its size)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


@pytest.mark.dates
@pytest.mark.every_clock
def test_days_past_the_vendor_retention_are_refused_plainly(tmp_path):
    today = date.today()
    env = {"DE_DUCKDB_PATH": str(tmp_path / "old.duckdb"), "DE_START_DATE": str(today - timedelta(days=400))}
    gone = today - timedelta(days=380)
    refused = start_cli("backfill", "--start", str(gone), "--end", str(gone + timedelta(days=1)), env=env)
    _, err = refused.communicate(timeout=300)
    assert refused.returncode == 1
    assert "older than the vendor's 365-day retention" in err and str(gone) in err
    assert "Traceback" not in err

    edge = today - timedelta(days=365)  # cut by the retention: partial, said plainly
    partial = start_cli("backfill", "--start", str(edge), "--end", str(edge), env=env)
    _, err = partial.communicate(timeout=300)
    assert partial.returncode == 0, err[-3000:]
    assert "partial" in err and str(edge) in err


@pytest.mark.dates
@pytest.mark.every_clock
def test_dst_days_have_23_and_25_hours_and_local_days(start_simulator, monkeypatch, tmp_path):
    zone, (spring, autumn) = _zone_with_dst_days()
    simulator = start_simulator(messages_per_day=1500, timezone=zone)
    point_at(monkeypatch, simulator)
    path = tmp_path / "dst.duckdb"
    for day in (spring, autumn):
        done = start_cli(
            "backfill", "--start", str(day), "--end", str(day), env={"DE_DUCKDB_PATH": str(path), "DE_TIMEZONE": zone}
        )
        assert done.wait(timeout=300) == 0, done.stderr.read()[-3000:]
    connection = duckdb.connect(str(path), read_only=True)
    for day, hours in ((spring, 23), (autumn, 25)):
        expected = unique_messages(served(simulator, day, day))
        start = datetime.combine(day, datetime.min.time(), ZoneInfo(zone))
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), ZoneInfo(zone))
        assert (end.timestamp() - start.timestamp()) / 3600 == hours
        assert expected.ts.between(start.timestamp() * 1000, end.timestamp() * 1000 - 1).all()
        stored = connection.execute(
            "SELECT ts_ms FROM messages WHERE day = $day ORDER BY ts_ms", {"day": day}
        ).fetchall()
        assert [row[0] for row in stored] == sorted(expected.ts)
        # the sentiment_trends day holds the same messages
        assert connection.execute(
            "SELECT coalesce(sum(messages), 0) FROM sentiment_trends WHERE day = $day", {"day": day}
        ).fetchone()[0] == len(expected)


def _zone_with_dst_days() -> tuple[str, tuple[date, date]]:
    """A time zone whose spring-forward and fall-back days both lie inside the default
    partitions (the last year). US springs are 364 or 371 days apart, so on some dates only
    another hemisphere's or continent's change is inside."""
    for zone in ("America/New_York", "Europe/Berlin", "Australia/Sydney"):
        found = {}
        day = date.today() - timedelta(days=360)
        while day < date.today() - timedelta(days=1):
            start = datetime.combine(day, datetime.min.time(), ZoneInfo(zone))
            end = datetime.combine(day + timedelta(days=1), datetime.min.time(), ZoneInfo(zone))
            found.setdefault((end.timestamp() - start.timestamp()) / 3600, day)
            day += timedelta(days=1)
        if 23 in found and 25 in found:
            return zone, (found[23], found[25])
    raise AssertionError("no zone has both daylight-saving changes in the last year")
