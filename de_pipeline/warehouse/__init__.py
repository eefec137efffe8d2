"""The DuckDB warehouse: schema, SQL, archive, connections. Knows nothing of HTTP or Dagster."""
