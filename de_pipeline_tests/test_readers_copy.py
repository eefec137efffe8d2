"""The readers' copy: published after each successful run, whole or not at all, never
blocking a run, and what `de-pipeline sql` reads."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from dagster import DagsterInstance, build_run_status_sensor_context

from de_pipeline.cli import main
from de_pipeline.defs import sensors
from de_pipeline.defs.definitions import defs
from de_pipeline.defs.resources import Warehouse
from de_pipeline.env import SettingsError
from de_pipeline.warehouse import publish
from de_pipeline.warehouse.settings import WarehouseSettings
from de_pipeline.warehouse.tables import TABLES
from de_pipeline_tests.conftest import point_at
from de_pipeline_tests.helpers import query, recent_days, run_cli

COUNT_BY_DAY = "SELECT day, count(*) AS n FROM messages GROUP BY day ORDER BY day"


@pytest.fixture
def days(start_simulator, monkeypatch):
    """Two busy days from a simulator the pipeline reads."""
    point_at(monkeypatch, start_simulator(messages_per_day=200))
    return recent_days(2)


def copy_path() -> Path:
    path = WarehouseSettings.from_env().reader_copy_path
    assert path is not None
    return path


def backfill(day) -> None:
    assert main(["backfill", "--start", str(day), "--end", str(day)]) == 0


def counts(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.split()[1:]  # the csv rows under the header


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.dates
def test_a_backfill_publishes_a_copy_with_the_warehouse_tables_and_rows(days, capsys):
    before = datetime.now().astimezone()
    first, last = days
    assert main(["backfill", "--start", str(first), "--end", str(last)]) == 0
    assert "published the readers' copy" in capsys.readouterr().err
    copy, warehouse = str(copy_path()), os.environ["DE_DUCKDB_PATH"]
    assert copy_path() == Path(warehouse).with_name("warehouse-readers.duckdb")
    for entry in TABLES:
        ordered = f"SELECT * FROM {entry.name} ORDER BY ALL"
        pd.testing.assert_frame_equal(query(ordered, copy), query(ordered, warehouse), check_exact=True)
    assert len(query("SELECT * FROM messages", copy)) > 0
    (stamp,) = query("SELECT * FROM _published", copy).itertuples()
    assert stamp.first_day.date() == first and stamp.last_day.date() == last
    assert stamp.messages == len(query("SELECT * FROM messages", warehouse))
    assert before <= stamp.published_at <= datetime.now().astimezone()
    assert stamp.published_after.startswith("run ") and "(all_assets)" in stamp.published_after
    assert not (copy_path().stat().st_mode & 0o222), "the copy should be read-only on disk"


@pytest.mark.dates
def test_a_reader_holding_the_copy_open_blocks_no_backfill_and_keeps_its_snapshot(days):
    first, last = days
    backfill(first)
    snapshot = "SELECT count(*), sum(hash(text)), max(day) FROM messages"
    held = duckdb.connect(str(copy_path()), read_only=True)  # as a BI tool holds it
    try:
        seen = held.execute(snapshot).fetchone()
        # a BI tool holding the warehouse itself would make this wait, then fail, after 5 s
        done = run_cli("backfill", "--start", str(last), "--end", str(last), env={"DE_LOCK_TIMEOUT_SECONDS": "5"})
        assert done.returncode == 0, done.stderr[-3000:]
        assert "published the readers' copy" in done.stderr
        assert held.execute(snapshot).fetchone() == seen  # the old copy, whole
        assert held.execute(COUNT_BY_DAY).fetchall() == [(first, seen[0])]
        fresh = run_cli("sql", COUNT_BY_DAY, "--format", "csv")  # a new process sees the new copy
    finally:
        held.close()
    assert [row.split(",")[0] for row in counts(fresh)] == [str(first), str(last)]
    assert [int(row.split(",")[1]) for row in counts(fresh)] == query(COUNT_BY_DAY).n.tolist()  # the warehouse's


@pytest.mark.dates
def test_a_publish_that_fails_midway_leaves_the_old_copy_whole(days, monkeypatch, capsys):
    first, last = days
    backfill(first)
    old = digest(copy_path())
    copy_whole = publish.copy_database_file

    def fail_halfway(source: Path, target: Path) -> None:
        target.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
        raise OSError("No space left on device (simulated)")

    monkeypatch.setattr(publish, "copy_database_file", fail_halfway)
    backfill(last)  # the run succeeds; the copy is not published, and it says so
    err = capsys.readouterr().err
    assert "the readers' copy was not published (No space left on device (simulated))" in err
    assert digest(copy_path()) == old
    assert query(COUNT_BY_DAY, str(copy_path())).day.dt.date.tolist() == [first]
    assert [p.name for p in copy_path().parent.glob(".*publishing*")] == []

    # a publish killed midway leaves its unfinished file; the next publish removes it
    leftover = copy_path().with_name(f".{copy_path().name}-999999.publishing")
    leftover.write_bytes(b"torn")
    monkeypatch.setattr(publish, "copy_database_file", copy_whole)
    assert main(["publish"]) == 0
    assert not leftover.exists()
    assert query(COUNT_BY_DAY, str(copy_path())).day.dt.date.tolist() == [first, last]


@pytest.mark.dates
def test_sql_reads_the_copy_or_with_live_the_warehouse_and_says_when_there_is_no_copy(days, monkeypatch, capsys):
    first, last = days
    backfill(first)
    monkeypatch.setenv("DE_READER_COPY_PATH", "off")
    backfill(last)  # the warehouse has both days, the copy the first
    monkeypatch.delenv("DE_READER_COPY_PATH")
    capsys.readouterr()

    def days_read(*flags: str) -> tuple[list[str], str]:
        assert main(["sql", "SELECT DISTINCT day FROM messages ORDER BY day", "--format", "csv", *flags]) == 0
        out, err = capsys.readouterr()
        return out.split()[1:], err

    assert days_read() == ([str(first)], "")
    assert days_read("--live")[0] == [str(first), str(last)]
    copy_path().unlink()
    read, note = days_read()
    assert read == [str(first), str(last)]
    assert f"de-pipeline sql: no readers' copy at {copy_path()} yet" in note and "reading the warehouse" in note


@pytest.mark.dates
def test_the_sensor_publishes_after_a_successful_run_and_skips_a_busy_warehouse(days, monkeypatch):
    first, _ = days
    with DagsterInstance.ephemeral() as instance:
        result = (
            defs().resolve_job_def("all_assets").execute_in_process(instance=instance, partition_key=first.isoformat())
        )
        assert not copy_path().exists()  # a run alone publishes nothing: the sensor does

        def evaluate() -> str:
            context = build_run_status_sensor_context(
                sensor_name="publish_readers_copy",
                dagster_instance=instance,
                dagster_run=instance.get_run_by_id(result.run_id),
                dagster_event=result.get_run_success_event(),
                resources={"warehouse": Warehouse()},
            )
            return sensors.publish_readers_copy(context).skip_message

        # another process holds the warehouse (as a BI tool would): the sensor gives up, says so
        monkeypatch.setenv("DE_LOCK_TIMEOUT_SECONDS", "0.5")
        holder = hold_read_only(os.environ["DE_DUCKDB_PATH"])
        try:
            busy = evaluate()
        finally:
            holder.kill()
            holder.wait()
        assert "not published" in busy and "locked by another process" in busy and not copy_path().exists()

        said = evaluate()
    assert said.startswith(f"published the readers' copy {copy_path()}"), said
    (stamp,) = query("SELECT * FROM _published", str(copy_path())).itertuples()
    assert stamp.published_after == f"run {result.run_id} (all_assets)"
    assert query(COUNT_BY_DAY, str(copy_path())).equals(query(COUNT_BY_DAY))


def hold_read_only(path: str) -> subprocess.Popen:
    """Another process that opens `path` read-only and keeps it open until killed."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({path!r}, read_only=True); "
            "print('open', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "open"
    return holder


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "data/de_pipeline-readers.duckdb"),
        ("off", None),
        ("OFF", None),
        ("elsewhere/readers.duckdb", "elsewhere/readers.duckdb"),
    ],
)
def test_the_copy_path_setting(value, expected):
    environ = {"DE_DUCKDB_PATH": "data/de_pipeline.duckdb"} | ({"DE_READER_COPY_PATH": value} if value else {})
    path = WarehouseSettings.from_env(environ).reader_copy_path
    assert path == (Path(expected) if expected else None)


@pytest.mark.parametrize(
    ("value", "complaint"), [("data/de_pipeline.duckdb", "is the warehouse itself"), (".", "is a directory")]
)
def test_a_copy_path_that_cannot_be_one_is_a_clear_error(value, complaint):
    with pytest.raises(SettingsError, match=f"DE_READER_COPY_PATH=.*{complaint}"):
        WarehouseSettings.from_env({"DE_DUCKDB_PATH": "data/de_pipeline.duckdb", "DE_READER_COPY_PATH": value})
