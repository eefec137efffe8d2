"""The SQL files that shape the warehouse's tables, and how they are run."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

import duckdb

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
        part
        for part in parts
        if any(line.strip() and not line.strip().startswith("--") for line in part.splitlines())
    )


def run_sql(
    connection: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any] | None = None
) -> duckdb.DuckDBPyConnection:
    """Run each statement of a SQL file with the `$parameters` it names; returns the last result."""
    params = params or {}
    result = connection
    for statement in _statements(name):
        names = set(_PARAMETER.findall(_COMMENT.sub("", statement)))
        missing = names - params.keys()
        if missing:
            raise KeyError(f"{name}.sql needs parameters {sorted(missing)}")
        result = connection.execute(statement, {key: params[key] for key in names} or None)
    return result


def ensure_schema(connection: duckdb.DuckDBPyConnection) -> None:
    run_sql(connection, "schema")
