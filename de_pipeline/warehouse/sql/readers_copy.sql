-- What the readers' copy holds beyond the warehouse, for BI tools. Their SQLAlchemy dialect
-- (duckdb-engine) reflects a table's keys and constraints with PostgreSQL's catalog queries,
-- which cast to REGCLASS, a type DuckDB lacks: as a name for VARCHAR (the type of DuckDB's
-- pg_description.classoid, which those queries compare it with) they bind, and find no keys.
CREATE TYPE IF NOT EXISTS regclass AS VARCHAR;
