"""DuckDB's extensions that a DuckLake warehouse needs, loaded without a download when the
`lake` extra installed them.

The packages `duckdb-extension-<name>` ship each extension for one duckdb release, in
`duckdb_extension_<name>/extensions/v<duckdb version>/<name>.duckdb_extension`; `LOAD` of
that path needs no network. Without them (or built for another duckdb) the extension is
installed from DuckDB's own repository, as DuckDB does it, and then loaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import duckdb


class ExtensionError(RuntimeError):
    """A DuckDB extension could neither be loaded from its package nor installed."""


def packaged_extension(name: str) -> Path | None:
    """The extension file of the installed package `duckdb-extension-<name>` for the running
    duckdb, or None (not installed, or built for another duckdb release)."""
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    return path if path.is_file() else None


def sql_string(text: str) -> str:
    """`text` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def load_extension(connection: duckdb.DuckDBPyConnection, name: str) -> None:
    """LOAD the extension `name` from its package, else INSTALL it from DuckDB's repository
    and LOAD it; an ExtensionError of one line if neither works."""
    packaged = packaged_extension(name)
    try:
        if packaged is not None:
            connection.execute(f"LOAD {sql_string(str(packaged))}")
            return
        connection.execute(f"INSTALL {name}")
        connection.execute(f"LOAD {name}")
    except duckdb.Error as exc:
        detail = " ".join(str(exc).split())
        package = f"duckdb-extension-{name.replace('_', '-')}=={duckdb.__version__}"
        raise ExtensionError(
            f"DuckDB's {name} extension for duckdb {duckdb.__version__} could not be loaded ({detail}): "
            f"install {package} (the `lake` extra), or let DuckDB download it (INSTALL {name})"
        ) from None
