"""Materialise days through Dagster against the simulator over loopback; check the rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import duckdb
import pandas as pd
import pytest

from de_pipeline.defs.runner import RunFailedError, run_range
from de_pipeline.warehouse.archive import archive_file
from de_pipeline.warehouse.days import calendar_days
from de_pipeline.warehouse.messages import ArchiveParseError, parse_records
from de_pipeline.warehouse.schema import ensure_schema
from de_pipeline.warehouse.settings import WarehouseSettings
from de_pipeline.warehouse.tables import TABLE_NAMES
from de_pipeline_tests.conftest import point_at
from de_pipeline_tests.helpers import (
    SESSIONID,
    busy_day,
    dump,
    recent_days,
    served,
    table,
    unique_messages,
    usable,
)

TABLES = TABLE_NAMES  # every table of the registry


@pytest.fixture
def hostile(start_simulator, monkeypatch):
    simulator = start_simulator(hostile=True, messages_per_day=700, max_page_size=150)
    point_at(monkeypatch, simulator)
    return simulator


def materialisations(results, asset):
    return [m for result in results for m in result.asset_materializations_for_node(asset)]


@pytest.mark.dates
@pytest.mark.every_clock
def test_messages_hold_every_unique_served_message(hostile):
    first, last = recent_days(4)
    results = run_range(first, last)
    records = served(hostile, first, last)
    expected = unique_messages(records)
    stored = table("messages", order_by="ts_ms, message_key")

    assert len(stored) == len(expected) > 0
    assert stored["message_key"].is_unique
    assert set(zip(stored.sessionid.fillna(""), stored.ts_ms, stored.text.fillna(""))) == set(
        zip(expected.sessionid.fillna(""), expected.ts, expected.text.fillna(""))
    )
    # the API repeated rows across page boundaries: fetched > stored, the rest are duplicates
    meta = materialisations(results, "messages")
    archived = sum(m.metadata["records_archived"].value for m in meta)
    duplicates = sum(m.metadata["duplicates_dropped"].value for m in meta)
    rejected = sum(m.metadata["rejected"].value for m in meta)
    assert archived == len(stored) + duplicates + rejected
    assert duplicates > 0
    fetched = sum(m.metadata["records_fetched"].value for m in materialisations(results, "raw_messages")[:1])
    assert fetched >= archived  # one metadata set per run; a 4-day range is one run
    assert fetched == archived


def test_sessionid_is_split_or_left_null(hostile):
    first, last = recent_days(2)
    run_range(first, last)
    stored = table("messages")
    for row in stored.itertuples():
        match = None if pd.isna(row.sessionid) else SESSIONID.match(row.sessionid)
        if match:
            assert (row.conversation_id, row.segment_id) == (int(match[1]), int(match[2]))
        else:
            assert pd.isna(row.conversation_id) and pd.isna(row.segment_id)
    assert stored.conversation_id.isna().sum() > 0  # hostile mode sends malformed ids


def test_rejected_records_are_accounted_for(hostile):
    first, last = recent_days(3)
    run_range(first, last)
    records = served(hostile, first, last)
    bad = {json.dumps(r, sort_keys=True) for r in records if r not in usable(records)}
    rejected = table("rejected_messages")
    assert len(rejected) == len(bad) > 0
    assert {json.dumps(json.loads(raw), sort_keys=True) for raw in rejected.raw} == bad
    assert rejected.reason.notna().all()


@pytest.mark.dates
@pytest.mark.every_clock
def test_messages_at_the_edges_of_a_day_land_in_that_day(hostile):
    first, last = recent_days(2)
    run_range(first, last)
    stored = table("messages")
    for day in (first, last):
        start_ms, end_ms = hostile.dataset.day_bounds_ms(day)
        edge = stored[stored.ts_ms.isin([start_ms, end_ms - 1])]
        assert set(edge.ts_ms) == {start_ms, end_ms - 1}
        assert set(edge.day.dt.date) == {day}


@pytest.mark.dates
def test_rerun_changes_nothing(hostile):
    first, last = recent_days(3)
    run_range(first, last)
    before = {name: dump(name) for name in TABLES}
    run_range(first + (last - first) // 2, last)  # overlapping rerun, fetched again
    run_range(first, last, job_name="rebuild_from_archive")
    assert {name: dump(name) for name in TABLES} == before
    assert len(before["messages"]) == len(unique_messages(served(hostile, first, last))) > 0


def test_a_day_without_messages_is_a_real_empty_day(start_simulator, monkeypatch):
    simulator = start_simulator(messages_per_day=0)
    point_at(monkeypatch, simulator)
    first, last = recent_days(2)
    results = run_range(first, last)
    assert results[0].success
    assert table("messages").empty
    meta = materialisations(results, "messages")
    assert sorted(m.partition for m in meta) == [first.isoformat(), last.isoformat()]


def test_an_archive_under_a_folder_named_like_a_partition_keeps_every_record(hostile, monkeypatch, tmp_path):
    # DuckDB's hive partitioning took the first day= of the path: 2020-01-01 for every record
    monkeypatch.setenv("DE_ARCHIVE_DIR", str(tmp_path / "day=2020-01-01" / "archive"))
    last = busy_day(7)  # the hostile simulator's seed
    first = last - timedelta(days=1)
    results = run_range(first, last)
    records = served(hostile, first, last)
    expected = unique_messages(records)
    stored = table("messages")

    assert len(stored) == len(expected) > 0
    assert set(zip(stored.sessionid.fillna(""), stored.ts_ms, stored.text.fillna(""))) == set(
        zip(expected.sessionid.fillna(""), expected.ts, expected.text.fillna(""))
    )
    assert set(stored.day.dt.date) == {first, last}
    assert len(table("rejected_messages")) == len(records) - len(usable(records)) > 0
    archived = sum(m.metadata["records_archived"].value for m in materialisations(results, "messages"))
    fetched = materialisations(results, "raw_messages")[0].metadata["records_fetched"].value
    assert archived == fetched >= len(records)  # the hostile API repeats rows across pages


def test_parsing_fewer_records_than_an_archive_file_holds_is_an_error(hostile):
    day = busy_day(7)
    run_range(day, day)
    settings = WarehouseSettings.from_env()
    file = str(archive_file(settings.archive_dir, day))
    with duckdb.connect() as connection:
        ensure_schema(connection)
        parse_records(connection, [file], calendar_days(day, day, "UTC"), settings)  # all of them: fine
        # the file's records belong to `day`; parsed for another day, the join keeps none
        before = day - timedelta(days=1)
        with pytest.raises(ArchiveParseError, match=r"parsed 0 of the [\d,]+ records in the raw archive"):
            parse_records(connection, [file], calendar_days(before, before, "UTC"), settings)


def test_a_run_that_fails_on_its_last_day_keeps_every_day(hostile):
    first, last = recent_days(3)
    run_range(first, last)
    settings = WarehouseSettings.from_env()
    with duckdb.connect(str(settings.duckdb_path)) as connection:  # a day that a rebuild would restore
        connection.execute("DELETE FROM messages WHERE day = $first", {"first": first})
    before = {name: dump(name) for name in TABLES}
    archive_file(settings.archive_dir, last).write_bytes(b"not parquet: a truncated copy")

    with pytest.raises(RunFailedError, match="messages"):
        run_range(first, last, job_name="rebuild_from_archive")

    # the days are stored one at a time, in one transaction: the first two were not kept
    assert {name: dump(name) for name in TABLES} == before
    assert first not in set(table("messages").day.dt.date)


def test_definitions_load_with_placeholder_environment(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DE_")}
    env.update(
        DE_API_BASE_URL="https://api.example.invalid",
        DE_API_KEY="placeholder-key",
        DE_PROVIDER_ID="placeholder-provider",
        DE_DUCKDB_PATH=str(tmp_path / "w.duckdb"),
        DE_TIMEZONE="Europe/Berlin",
    )
    code = (
        "from dagster import Definitions\n"
        "from de_pipeline.defs.definitions import defs as load\n"
        "defs = load()\n"
        "Definitions.validate_loadable(defs)\n"
        "graph = defs.resolve_asset_graph()\n"
        "print(sorted(k.to_user_string() for k in graph.get_all_asset_keys()))\n"
        "print(defs.resolve_job_def('all_assets').partitions_def.timezone)\n"
        "print([s.name for s in defs.schedules])\n"
        "print(repr(defs.resources['api']), repr(defs.resources['warehouse']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "'messages', 'raw_messages', 'redaction_entity_counts', 'sentiment_trends'" in out.stdout
    assert "Europe/Berlin" in out.stdout
    assert "daily_refresh" in out.stdout
    # the UI shows which variable configures each field, never the key itself
    assert "api_key='DE_API_KEY'" in out.stdout and "placeholder-key" not in out.stdout
    assert "duckdb_path='DE_DUCKDB_PATH'" in out.stdout


# a bad value of each setting that shapes the definitions
BAD_DEFINITION_SETTINGS = {
    "DE_PROVIDERS_FILE": "/nonexistent/providers.yaml",  # the accounts, so the asset keys
    "DE_LOOKBACK_DAYS": "bogus",  # the partitions' calendar and the schedule
    "DE_TIMEZONE": "Mars/Olympus",
    "DE_ASSET_OWNERS": "not an owner",  # the catalog
    "DE_ALERT_WEBHOOK_URL": "not a url",  # the alert sensor
}
IMPORT_EVERY_MODULE_THEN_BUILD = """
import importlib, json, os, pkgutil, sys
import de_pipeline
bad = json.loads(sys.argv[1])
os.environ.update(bad)
for module in pkgutil.walk_packages(de_pipeline.__path__, "de_pipeline."):
    importlib.import_module(module.name)
print("imported", flush=True)
from de_pipeline.defs.definitions import defs
from de_pipeline.env import SettingsError
for name, value in bad.items():
    for other in bad:
        os.environ.pop(other, None)
    os.environ[name] = value
    try:
        defs()
        print(json.dumps([name, "built"]))
    except SettingsError as exc:
        print(json.dumps([name, str(exc)]))
"""


def test_importing_reads_no_setting_and_the_build_names_the_bad_one():
    """Importing a module reads no setting (a bad one cannot break `import`, nor a tool that
    only imports); building the definitions reads them and stops at a bad one with its line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DE_")}
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", IMPORT_EVERY_MODULE_THEN_BUILD, json.dumps(BAD_DEFINITION_SETTINGS)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0 and out.stdout.startswith("imported\n"), out.stderr[-2000:]
    errors = dict(json.loads(line) for line in out.stdout.splitlines()[1:])
    assert errors.keys() == BAD_DEFINITION_SETTINGS.keys()
    for name, error in errors.items():
        assert error.startswith(name) and "\n" not in error, (name, error)
