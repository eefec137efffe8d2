"""Analysts' ad-hoc queries on a read-only connection."""

from __future__ import annotations

import duckdb
import pandas as pd

# The statements that write a file. A sealed connection refuses files outside its own spill
# folder already; DuckDB lets queries into that one (connection.SEALED_CONFIG), so these are
# refused here: `de-pipeline export` writes files.
FILE_WRITING = {
    duckdb.StatementType.COPY: "COPY",
    duckdb.StatementType.EXPORT: "EXPORT DATABASE",
    duckdb.StatementType.ATTACH: "ATTACH",
}


class QueryError(ValueError):
    """DuckDB refused the query; the message is DuckDB's."""


def query_frame(connection: duckdb.DuckDBPyConnection, query: str) -> pd.DataFrame:
    """The query's result; a QueryError naming DuckDB's complaint (or the statement that
    would write a file) if it fails. Running out of memory is left to connection.memory_budget."""
    try:
        _refuse_file_writes(connection, query)
        result = connection.execute(query)
        if result.description is None:
            return pd.DataFrame()
        return result.df()
    except duckdb.OutOfMemoryException:
        raise
    except duckdb.Error as exc:
        raise QueryError(f"the query failed: {exc}") from None


def _refuse_file_writes(connection: duckdb.DuckDBPyConnection, query: str) -> None:
    for statement in connection.extract_statements(query):
        if statement.type in FILE_WRITING:
            raise QueryError(
                f"{FILE_WRITING[statement.type]} writes files, which this read-only query may not: "
                "use `de-pipeline export` to write a table to files"
            )
