"""Analysts' ad-hoc queries on a read-only connection."""

from __future__ import annotations

import duckdb
import pandas as pd


class QueryError(ValueError):
    """DuckDB refused the query; the message is DuckDB's."""


def query_frame(connection: duckdb.DuckDBPyConnection, query: str) -> pd.DataFrame:
    """The query's result; a QueryError naming DuckDB's complaint if it fails."""
    try:
        result = connection.execute(query)
        if result.description is None:
            return pd.DataFrame()
        return result.df()
    except duckdb.Error as exc:
        raise QueryError(f"the query failed: {exc}") from None
