"""`duckdb+de_pipeline://`: duckdb-engine's SQLAlchemy dialect, for SQLAlchemy 2.1.

duckdb-engine 0.17 reflects tables with SQLAlchemy's PostgreSQL catalog queries. SQLAlchemy
2.1's ask DuckDB's pg_catalog for more than it has (a column's collation schema, table
inheritance) and call duckdb-engine's helpers with new arguments, so listing a table's
columns fails (`pg_catalog.pg_collation` not found). This dialect leaves those parts out:
DuckDB has no per-column collations, inheritance or tablespaces to report. With SQLAlchemy
1.4 and 2.0 it reflects as duckdb-engine does. pyproject.toml registers it as an entry
point, so a URL names it and no code imports it; it needs `duckdb-engine` installed.
"""

from __future__ import annotations

from typing import Any

from duckdb_engine import Dialect as DuckDBEngineDialect
from sqlalchemy import null
from sqlalchemy.dialects.postgresql import base as postgresql


class Dialect(DuckDBEngineDialect):
    driver = "de_pipeline"
    supports_statement_cache = False

    # SQLAlchemy's internals, overridden with their own signatures; its stubs type them
    # differently in each version (and duckdb-engine's again), so mypy cannot match them
    def _columns_query(self, schema: Any, has_filter_names: Any, scope: Any, kind: Any) -> Any:  # type: ignore[override]
        """SQLAlchemy's query of the columns, with NULL as every column's collation."""
        query = super()._columns_query(schema, has_filter_names, scope, kind)
        columns = (null().label("collation") if c.key == "collation" else c for c in query.selected_columns)
        return query.with_only_columns(*columns, maintain_column_froms=False)

    if hasattr(postgresql, "_NamedTypeLoader"):  # SQLAlchemy 2.1

        def get_multi_columns(  # type: ignore[override]
            self, connection: Any, schema: Any = None, filter_names: Any = None, **kw: Any
        ) -> Any:
            """SQLAlchemy 2.1's own, with the rows read before the named types are looked up
            (duckdb-engine shares one cursor per connection)."""
            scope, kind = kw.pop("scope", None), kw.pop("kind", None)
            has_filter_names, params = self._prepare_filter_names(filter_names)
            query = self._columns_query(schema, has_filter_names, scope, kind)
            rows = list(connection.execute(query, params).mappings())
            return self._get_columns_info(rows, postgresql._NamedTypeLoader(self, connection, kw), schema).items()

    def get_multi_table_options(self, connection: Any, **kw: Any) -> Any:  # type: ignore[override]
        """None: DuckDB has no PostgreSQL table options (inheritance, tablespace, access method)."""
        return ()
