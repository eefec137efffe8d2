"""The de-pipeline command: demo, backfill, sql; one clear line on every error."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from de_pipeline.cli import main
from de_pipeline.simulator import Simulator, SimulatorConfig
from de_pipeline_tests.conftest import TEST_KEY, TEST_SETTINGS, point_at
from de_pipeline_tests.helpers import recent_days, run_cli, start_cli

# a complete day in every time zone, inside the partitions (the last 365 days by default) on any date
TWO_DAYS_AGO = datetime.now(UTC).date() - timedelta(days=2)


@pytest.fixture(scope="module")
def built_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two days in a warehouse, built once for the tests that only read it."""
    simulator = Simulator(SimulatorConfig(messages_per_day=300))
    simulator.start()
    path = tmp_path_factory.mktemp("cli") / "warehouse.duckdb"
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in {**TEST_SETTINGS, "DE_DUCKDB_PATH": str(path)}.items():
            monkeypatch.setenv(name, value)
        point_at(monkeypatch, simulator)
        first, last = recent_days(2)
        assert main(["backfill", "--start", str(first), "--end", str(last)]) == 0
    simulator.stop()
    yield path


@pytest.fixture
def warehouse(built_warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DE_DUCKDB_PATH", str(built_warehouse))
    return built_warehouse


def test_demo_prints_every_table_and_the_headlines(tmp_path):
    # two weeks, as the README's demo: the second week is fetched while the first builds
    out = run_cli("demo", "--days", "9", env={"DE_SIM_MESSAGES_PER_DAY": "200"})
    assert out.returncode == 0, out.stderr[-2000:]
    for text in (
        "messages",
        "sentiment_trends",
        "intent_confidence",
        "redaction_entity_counts",
        "customer_journeys",
        "handoff_rate",
        "avg_sentiment_change",
        "Sentiment by channel",
        "Least confident intents",
        "Top redacted entity types",
    ):
        assert text in out.stdout
    assert "Traceback" not in out.stderr


@pytest.mark.dates
def test_sql_formats(warehouse, capsys):
    assert main(["sql", "SELECT day, count(*) AS n FROM messages GROUP BY day ORDER BY day", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 2 and all(int(r["n"]) > 0 for r in rows)
    assert (
        main(["sql", "SELECT topic, sum(messages) AS n FROM intent_confidence GROUP BY ALL", "--format", "json"]) == 0
    )
    records = json.loads(capsys.readouterr().out)
    assert {r["topic"] for r in records} >= {None} and sum(r["n"] for r in records) > 0


def test_a_reader_that_leaves_early_ends_sql_quietly(warehouse):
    """`de-pipeline sql ... | head -1`: the reader closes the pipe; sql stops with 141 (128 +
    SIGPIPE, as a shell reports it), not with an error line about a broken pipe."""
    process = start_cli("sql", "SELECT range FROM range(500000)", "--format", "csv")
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().strip() == "range"
    process.stdout.close()
    err = process.stderr.read()
    assert process.wait(timeout=60) == 141, err
    assert err == ""


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT * FROM no_such_table", "no_such_table"),
        ("SELEC 1", "syntax error"),
        ("DELETE FROM messages", "read-only"),
    ],
)
def test_sql_errors_are_one_line(warehouse, query, expected):
    out = run_cli("sql", query)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert expected in out.stderr.lower() or expected in out.stderr


def test_sql_without_a_warehouse_says_how_to_make_one(tmp_path):
    out = run_cli("sql", "SELECT 1", env={"DE_DUCKDB_PATH": str(tmp_path / "none.duckdb")})
    assert out.returncode == 1 and "de-pipeline demo" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["backfill", "--start", "2026-13-01", "--end", "2026-01-02"], {}, "is not a date"),
        (["backfill", "--start", "2020-01-01", "--end", "2020-01-02"], {}, "DE_START_DATE"),
        (["backfill", "--start", str(date.today()), "--end", str(date.today())], {}, "not a complete day"),
        (["demo", "--days", "1"], {"DE_PAGE_SIZE": "many"}, "DE_PAGE_SIZE"),
        (["demo", "--days", "1"], {"DE_TIMEZONE": "Mars/Olympus"}, "DE_TIMEZONE"),
        (
            ["backfill", "--start", str(TWO_DAYS_AGO), "--end", str(TWO_DAYS_AGO)],
            {"DE_API_BASE_URL": "ftp://x", "DE_API_KEY": TEST_KEY, "DE_PROVIDER_ID": "p"},
            "DE_API_BASE_URL",
        ),
    ],
)
def test_bad_input_is_one_clear_line(args, env, expected):
    out = run_cli(*args, env=env)
    assert out.returncode != 0
    assert expected in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert TEST_KEY not in out.stderr + out.stdout


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_export_writes_one_file_per_day(warehouse, tmp_path, capsys, file_format):
    out = tmp_path / "export"
    assert main(["export", "--table", "messages", "--format", file_format, "--out", str(out)]) == 0
    assert "exported" in capsys.readouterr().out
    reader = "read_parquet" if file_format == "parquet" else "read_csv"
    exported = duckdb.sql(
        f"SELECT day, count(*) FROM {reader}('{out}/messages/*/data.{file_format}', hive_partitioning = true) "
        "GROUP BY day ORDER BY day"
    ).fetchall()
    stored = (
        duckdb.connect(os.environ["DE_DUCKDB_PATH"], read_only=True)
        .execute("SELECT day, count(*) FROM messages GROUP BY day ORDER BY day")
        .fetchall()
    )
    assert exported == stored and len(stored) == 2


def test_export_of_an_unknown_table_is_one_line(warehouse, tmp_path):
    out = run_cli("export", "--table", "nope", "--out", str(tmp_path))
    assert out.returncode == 1 and "unknown table 'nope'" in out.stderr and "Traceback" not in out.stderr


HOSTILE_TEXT = "red\x1b[31mtext\x07 and\x9b2J a\u202eeman\nsecond line"  # ESC, BEL, C1 CSI, RTL override


@pytest.fixture
def hostile_warehouse(clean_environment, monkeypatch):
    monkeypatch.setenv("DE_READER_COPY_PATH", "off")
    with duckdb.connect(str(clean_environment)) as connection:
        connection.execute('CREATE TABLE messages AS SELECT $text AS text, 3 AS n, $text AS "col\x1b[2J"',
                           {"text": HOSTILE_TEXT})  # fmt: skip
    return clean_environment


def test_sql_prints_control_characters_escaped(hostile_warehouse, capsys):
    """A message's ESC and BEL reached the terminal raw; `session` already showed them escaped."""
    assert main(["sql", "SELECT * FROM messages"]) == 0
    table = capsys.readouterr().out
    assert not any(char in table for char in "\x1b\x07\x9b\u202e"), repr(table)
    assert r"red\x1b[31mtext\x07 and\x9b2J a\u202eeman\nsecond line" in table
    assert r"col\x1b[2J" in table and len(table.splitlines()) == 2  # the header and one row

    assert main(["sql", "SELECT * FROM messages", "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert not any(char in out for char in "\x1b\x07\x9b\u202e"), repr(out)
    assert json.loads(out) == [{"text": HOSTILE_TEXT, "n": 3, "col\x1b[2J": HOSTILE_TEXT}]  # escaped, not changed

    assert main(["sql", "SELECT text FROM messages", "--format", "csv"]) == 0  # to a pipe: the data as it is
    assert list(csv.reader(io.StringIO(capsys.readouterr().out))) == [["text"], [HOSTILE_TEXT]]

    assert main(["sql", "SELECT CAST(text AS INTEGER) FROM messages"]) == 1  # an error that quotes the text
    err = capsys.readouterr().err
    assert r"Could not convert string 'red\x1b[31mtext\x07" in err and "\x1b" not in err and "\x07" not in err
