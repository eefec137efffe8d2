"""The SQL files that shape the warehouse's tables, and how they are run."""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib import resources
from typing import Any

import duckdb

from de_pipeline.warehouse.settings import DEFAULT_ACCOUNT
from de_pipeline.warehouse.tables import PROVIDER, TABLES, column_comment_sql, create_table_sql

_STATEMENT_END = re.compile(r";[ \t]*$", re.MULTILINE)
_PARAMETER = re.compile(r"\$([A-Za-z_]\w*)")
_COMMENT = re.compile(r"--[^\n]*")


@cache
def sql_text(name: str) -> str:
    """The text of `de_pipeline/warehouse/sql/<name>.sql`."""
    return (resources.files("de_pipeline.warehouse") / "sql" / f"{name}.sql").read_text()


@cache
def _statements(name: str) -> tuple[str, ...]:
    parts = (part.strip() for part in _STATEMENT_END.split(sql_text(name)))
    return tuple(
        part for part in parts if any(line.strip() and not line.strip().startswith("--") for line in part.splitlines())
    )


def run_sql(
    connection: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any] | None = None
) -> duckdb.DuckDBPyConnection:
    """Run each statement of a SQL file with the `$parameters` it names; returns the last result."""
    result = connection
    for statement in _statements(name):
        result = connection.execute(statement, named_parameters(statement, params or {}, where=f"{name}.sql"))
    return result


def one_row(result: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    """The row of a query that always returns exactly one (an aggregate, a DELETE's count)."""
    row = result.fetchone()
    if row is None:
        raise RuntimeError("the query returned no row")
    return row


def named_parameters(statement: str, params: dict[str, Any], *, where: str = "the query") -> dict[str, Any] | None:
    """The `$parameters` that `statement` names, from `params` (DuckDB refuses unused ones)."""
    names = set(_PARAMETER.findall(_COMMENT.sub("", statement)))
    missing = names - params.keys()
    if missing:
        raise KeyError(f"{where} needs parameters {sorted(missing)}")
    return {key: params[key] for key in names} or None


def _add_provider_columns(connection: duckdb.DuckDBPyConnection) -> None:
    """A warehouse from before accounts (DE_PROVIDERS_FILE) gets the `provider` column; its
    rows are the `default` account's. Inserts name their columns (BY NAME), so its place at
    the end of such a table does not matter."""
    without = [
        name
        for (name,) in connection.execute(
            "SELECT table_name FROM duckdb_tables() t WHERE database_name = current_database() "
            "AND table_name IN (SELECT unnest($tables::VARCHAR[])) AND NOT EXISTS (SELECT 1 FROM duckdb_columns() c "
            "WHERE c.database_name = t.database_name AND c.table_name = t.table_name AND c.column_name = 'provider')",
            {"tables": [entry.name for entry in TABLES]},
        ).fetchall()
    ]
    for name in without:
        connection.execute(f"ALTER TABLE {name} ADD COLUMN provider VARCHAR DEFAULT '{DEFAULT_ACCOUNT}'")
        connection.execute(column_comment_sql(name, PROVIDER))


def database_tables(connection: duckdb.DuckDBPyConnection) -> set[str]:
    """The tables of the connection's default database (the DuckDB file, or the lake)."""
    return {
        row[0]
        for row in connection.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
    }


def ensure_schema(connection: duckdb.DuckDBPyConnection, *, lake: bool = False) -> None:
    """Create the registry's tables that the warehouse lacks (all of them in a new one, a
    newly added one in an older one), then the views of schema.sql.

    In a lake (`lake`), what DuckLake refuses or would turn into a conflict between writers
    is done its way (_lake_statements); connection.write_conflicts_retried runs this again
    when another process created the same tables first."""
    missing = [entry for entry in TABLES if entry.name not in database_tables(connection)]
    if missing:
        connection.execute("BEGIN TRANSACTION")
        for entry in missing:
            connection.execute(create_table_sql(entry))
        connection.execute("COMMIT")
    _add_provider_columns(connection)
    if lake:
        _ensure_lake_views(connection)
    else:
        run_sql(connection, "schema")


# DuckLake's differences from a DuckDB file in schema.sql: no PRIMARY KEY (nor UNIQUE, CHECK,
# indexes); warehouse_meta's keys stay unique as provenance.py updates a key it finds
_PRIMARY_KEY = re.compile(r"\s+PRIMARY KEY\b", re.IGNORECASE)
SCHEMA_DIGEST_KEY = "schema_digest"


def _lake_statements() -> tuple[str, ...]:
    """schema.sql's statements as DuckLake takes them."""
    return tuple(_PRIMARY_KEY.sub("", statement) for statement in _statements("schema"))


def _ensure_lake_views(connection: duckdb.DuckDBPyConnection) -> None:
    """schema.sql in a lake, only when it changed since it last ran there (its digest in
    warehouse_meta): every CREATE OR REPLACE VIEW commits a new catalog version, and two
    writers that replace one view at once conflict."""
    digest = hashlib.sha256(sql_text("schema").encode()).hexdigest()[:16]
    if "warehouse_meta" in database_tables(connection):
        row = connection.execute("SELECT value FROM warehouse_meta WHERE key = $key", {"key": SCHEMA_DIGEST_KEY})
        recorded = row.fetchone()
        if recorded is not None and recorded[0] == digest:
            return
    connection.execute("BEGIN TRANSACTION")
    for statement in _lake_statements():
        connection.execute(statement)
    connection.execute("DELETE FROM warehouse_meta WHERE key = $key", {"key": SCHEMA_DIGEST_KEY})
    connection.execute(
        "INSERT INTO warehouse_meta VALUES ($key, $digest)", {"key": SCHEMA_DIGEST_KEY, "digest": digest}
    )
    connection.execute("COMMIT")
