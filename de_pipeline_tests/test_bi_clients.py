"""What BI clients see of the readers' copy: DuckDB 1.4 and 1.5 (which BI drivers often
bundle) open it, SQLAlchemy (duckdb-engine) lists its tables and columns, and the README's
engine sees each new publish."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from de_pipeline.cli import main
from de_pipeline.warehouse.publish import storage_version
from de_pipeline.warehouse.tables import TABLES
from de_pipeline_tests.conftest import point_at
from de_pipeline_tests.helpers import query, recent_days
from de_pipeline_tests.test_readers_copy import copy_path

# the format DuckDB 1.4 and 1.5 open; DuckDB 2's own is `v2.0.0+`
OLDER_READERS_FORMAT = "v1.4.0+"
# every table and view of a database, and its rows, as any DuckDB since 1.0 lists them
ROW_COUNTS = """
import duckdb, json, sys
connection = duckdb.connect(sys.argv[1], read_only=True)
names = [row[0] for row in connection.execute(
    "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() UNION ALL "
    "SELECT view_name FROM duckdb_views() WHERE database_name = current_database() AND NOT internal"
).fetchall()]
counts = {name: connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names}
print(json.dumps({"version": duckdb.__version__, "counts": counts}))
"""


@pytest.fixture
def day(start_simulator, monkeypatch):
    """A busy day from a simulator the pipeline reads."""
    point_at(monkeypatch, start_simulator(messages_per_day=150))
    return recent_days(1)[0]


def backfill(day, capsys) -> str:
    """Backfill `day` (which publishes the copy); what it said on stderr."""
    assert main(["backfill", "--start", str(day), "--end", str(day)]) == 0
    return capsys.readouterr().err


def warehouse_path() -> Path:
    return Path(os.environ["DE_DUCKDB_PATH"])


def format_of(path: Path | str) -> str | None:
    connection = duckdb.connect(str(path), read_only=True)
    try:
        return storage_version(connection)
    finally:
        connection.close()


def row_counts(path: Path) -> dict[str, int]:
    """Every table and view of `path` with its rows, read by this process's DuckDB."""
    result = subprocess.run([sys.executable, "-c", ROW_COUNTS, str(path)], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)["counts"]


def test_a_new_warehouse_and_its_copy_are_in_the_format_duckdb_1_4_opens(day, capsys):
    said = backfill(day, capsys)
    warehouse = warehouse_path()
    assert format_of(warehouse) == OLDER_READERS_FORMAT
    assert format_of(copy_path()) == OLDER_READERS_FORMAT
    assert "published the readers' copy" in said and "converted" not in said  # a file copy, as fast as before


def test_a_warehouse_in_duckdb_2s_format_is_converted_whole_for_readers(day, capsys):
    warehouse = warehouse_path()
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    duckdb.connect(str(warehouse), config={"storage_compatibility_version": "latest"}).close()  # as before
    said = backfill(day, capsys)
    assert format_of(warehouse) == "v2.0.0+"  # the warehouse stays as it is
    assert "converted to DuckDB v1.4.0's storage format table by table" in said
    assert format_of(copy_path()) == OLDER_READERS_FORMAT
    copied = row_counts(copy_path())
    assert copied.pop("_published") == 1
    assert copied == row_counts(warehouse) and copied["messages"] > 0  # every table and view
    for entry in TABLES:
        ordered = f"SELECT * FROM {entry.name} ORDER BY ALL"
        pd.testing.assert_frame_equal(query(ordered, copy_path()), query(ordered, warehouse), check_exact=True)
    comments = "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE comment IS NOT NULL ORDER BY ALL"
    assert query(comments, copy_path()).equals(query(comments, warehouse))


def older_duckdb(series: str) -> Path:
    """A folder holding DuckDB `series` (e.g. 1.4) for Python, installed by pip once and kept
    in the temp folder; skips the test when pip cannot install it (no package index)."""
    folder = Path(tempfile.gettempdir()) / "de_pipeline_tests" / f"duckdb-{series}"
    if not (folder / "installed").exists():
        install = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(folder)]
            + [f"duckdb=={series}.*"],
            capture_output=True,
            text=True,
        )
        if install.returncode != 0:
            pytest.skip(f"pip could not install duckdb=={series}.*: {install.stderr.strip()[-300:]}")
        (folder / "installed").touch()
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("series", ["1.4", "1.5"])
def test_an_older_duckdb_reads_every_table_and_view_of_the_copy(day, capsys, series):
    backfill(day, capsys)
    read = subprocess.run(
        [sys.executable, "-c", ROW_COUNTS, str(copy_path())],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(older_duckdb(series)), "PATH": "/usr/bin:/bin"},
    )
    assert read.returncode == 0, read.stderr[-2000:]
    seen = json.loads(read.stdout)
    assert seen["version"].startswith(f"{series}.")
    assert seen["counts"] == row_counts(copy_path()) and seen["counts"]["messages"] > 0
