"""The SQL files that shape the warehouse's tables, and how they are run."""

from __future__ import annotations

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


def ensure_schema(connection: duckdb.DuckDBPyConnection) -> None:
    """Create the registry's tables that the warehouse lacks (all of them in a new one, a
    newly added one in an older one), then the views of schema.sql."""
    existing = {
        row[0]
        for row in connection.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
    }
    missing = [entry for entry in TABLES if entry.name not in existing]
    if missing:
        connection.execute("BEGIN TRANSACTION")
        for entry in missing:
            connection.execute(create_table_sql(entry))
        connection.execute("COMMIT")
    _add_provider_columns(connection)
    run_sql(connection, "schema")
