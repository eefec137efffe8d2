"""The table registry: every entry has its SQL, docs/tables.md documents it, the warehouse and
the Dagster catalog agree with it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import duckdb
import pytest

from de_pipeline.warehouse.schema import ensure_schema
from de_pipeline.warehouse.tables import DAILY_TABLES, TABLE_DOCS, TABLES, DailyTable, Reconcile, with_table_docs

DOCS_PAGE = Path(__file__).resolve().parents[1] / TABLE_DOCS
SQL = resources.files("de_pipeline.warehouse") / "sql"


def missing_sql(entries) -> list[str]:
    return [
        f"de_pipeline/warehouse/sql/{name}.sql"
        for t in entries
        for name in t.sql_files
        if not (SQL / f"{name}.sql").is_file()
    ]


def test_every_daily_table_has_its_sql_files():
    assert not missing_sql(DAILY_TABLES), f"the registry names SQL files that do not exist: {missing_sql(DAILY_TABLES)}"


def test_an_entry_without_its_sql_is_named():
    lost = DailyTable(
        name="no_such_table", title="t", description="d", columns=(), example="",
        reconcile=Reconcile("count(*)", "SELECT day, 0 AS n FROM day_bounds"),
    )  # fmt: skip
    assert missing_sql([lost]) == ["de_pipeline/warehouse/sql/no_such_table.sql"]


def test_a_daily_table_must_say_how_its_counts_add_up():
    with pytest.raises(TypeError, match="needs a Reconcile"):
        DailyTable(name="x", title="t", description="d", columns=(), example="")


def test_upstreams_come_first_and_names_are_unique():
    seen: set[str] = set()
    for entry in TABLES:
        assert entry.name not in seen, entry.name
        if isinstance(entry, DailyTable):
            assert entry.upstream in seen, f"{entry.name}'s upstream {entry.upstream} must come before it"
        seen.add(entry.name)


def test_the_warehouse_has_exactly_the_registry_columns_with_their_descriptions():
    with duckdb.connect() as connection:
        ensure_schema(connection)
        for entry in TABLES:
            described = connection.execute(
                "SELECT column_name, data_type, comment FROM duckdb_columns() "
                "WHERE table_name = $t ORDER BY column_index",
                {"t": entry.name},
            ).fetchall()
            declared = [(c.name, c.base_type, c.description) for c in entry.columns]
            normalised = [(n, t.replace("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"), d) for n, t, d in described]
            assert normalised == declared, entry.name


def test_the_tables_page_documents_every_table_as_the_registry_does():
    text = DOCS_PAGE.read_text()
    assert with_table_docs(text) == text, (
        f"{TABLE_DOCS}'s table docs differ from the registry: run `python -m de_pipeline.warehouse.tables {TABLE_DOCS}`"
    )
    for entry in TABLES:
        assert f"## `{entry.name}`" in text


def test_the_catalog_shows_every_tables_columns():
    from de_pipeline.defs.definitions import defs

    graph = defs().resolve_asset_graph()
    for entry in TABLES:
        if entry.name in ("rejected_messages", "loaded_days"):  # written by the messages asset
            continue
        node = graph.get(next(k for k in graph.get_all_asset_keys() if k.to_user_string() == entry.name))
        schema = node.metadata["dagster/column_schema"]
        assert [(c.name, c.type, c.description) for c in schema.columns] == [
            (c.name, c.base_type, c.description) for c in entry.columns
        ]
        assert node.description == entry.description
