"""Every SQL example of the docs (each docs/*.md page that has them, and the README) runs on a
readers' copy of simulated data."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from de_pipeline.defs.runner import run_range
from de_pipeline.simulator import Simulator, SimulatorConfig
from de_pipeline.warehouse.publish import publish_reader_copy
from de_pipeline.warehouse.settings import WarehouseSettings
from de_pipeline.warehouse.tables import TABLES
from de_pipeline_tests.conftest import point_at
from de_pipeline_tests.helpers import recent_days

ROOT = Path(__file__).resolve().parents[1]
SQL_BLOCK = re.compile(r"```sql\n(.*?)```", re.DOTALL)
# queries that may be empty on a clean simulation
MAY_BE_EMPTY = {"rejected_messages", "loaded_days WHERE messages = 0"}  # a clean simulation has none


def documents() -> list[str]:
    """The README and every page of the docs site, as paths from the repository's root."""
    return ["README.md", *sorted(str(page.relative_to(ROOT)) for page in (ROOT / "docs").glob("*.md"))]


# a block that attaches a lake is a recipe for connecting, not a query of the warehouse:
# test_lake.py runs it against a real lake
LAKE_RECIPE = "ATTACH 'ducklake:"


def examples() -> list[tuple[str, str]]:
    found = []
    for document in documents():
        for number, block in enumerate(SQL_BLOCK.findall((ROOT / document).read_text()), 1):
            if LAKE_RECIPE not in block:
                found.append((f"{document}#{number}", block.strip()))
    return found


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    simulator = Simulator(SimulatorConfig(seed=3, messages_per_day=250, hostile=True, retry_after_seconds=0))
    simulator.start()
    path = tmp_path_factory.mktemp("queries") / "w.duckdb"
    monkeypatch.setenv("DE_DUCKDB_PATH", str(path))
    monkeypatch.setenv("DE_RETRY_BACKOFF_SECONDS", "0.01")
    point_at(monkeypatch, simulator)
    first, last = recent_days(15)
    run_range(first, last)
    published = publish_reader_copy(WarehouseSettings.from_env(), trigger="test_queries")
    assert published is not None
    yield published.path  # what analysts are told to open
    simulator.stop()
    monkeypatch.undo()


def test_there_are_a_dozen_documented_queries_and_every_table_has_its_example():
    names = [name for name, _ in examples()]
    assert len([name for name in names if name.startswith("docs/queries.md#")]) >= 12
    # the registry's examples, generated into the tables page, and its view example
    assert len([name for name in names if name.startswith("docs/tables.md#")]) > len(TABLES)


@pytest.mark.parametrize(("name", "sql"), examples(), ids=[name for name, _ in examples()])
def test_query_runs_and_answers(warehouse, name, sql):
    connection = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = connection.execute(sql).fetchall()
    finally:
        connection.close()
    if not any(table in sql for table in MAY_BE_EMPTY):
        assert rows, f"{name} returned no rows"
