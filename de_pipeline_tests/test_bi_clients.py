"""What BI clients see of the readers' copy: DuckDB 1.4 and 1.5 (which BI drivers often
bundle) open it, SQLAlchemy (duckdb-engine) lists its tables and columns, the docs'
engine (docs/readers-copy.md) sees each new publish, and Apache Superset charts it. The slow tests install what
they need with pip, once, in the temp folder, and skip when pip cannot."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from de_pipeline.cli import main
from de_pipeline.warehouse.publish import publish_reader_copy, storage_version
from de_pipeline.warehouse.settings import WarehouseSettings
from de_pipeline.warehouse.tables import TABLE_NAMES, TABLES
from de_pipeline_tests.conftest import point_at
from de_pipeline_tests.helpers import query, recent_days
from de_pipeline_tests.test_readers_copy import copy_path

# the format DuckDB 1.4 and 1.5 open; DuckDB 2's own is `v2.0.0+`
OLDER_READERS_FORMAT = "v1.4.0+"
# every table and view of a database, and its rows, as any DuckDB since 1.0 lists them
ROW_COUNTS = """
import duckdb, json, sys
connection = duckdb.connect(sys.argv[1], read_only=True)
names = [row[0] for row in connection.execute(
    "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() UNION ALL "
    "SELECT view_name FROM duckdb_views() WHERE database_name = current_database() AND NOT internal"
).fetchall()]
counts = {name: connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names}
print(json.dumps({"version": duckdb.__version__, "counts": counts}))
"""

# What a BI tool asks SQLAlchemy of a database: its tables and views, each one's columns,
# keys and comment, and a table reflected and read whole (by pandas' read_sql_table).
REFLECT = """
import json, sys, warnings
import sqlalchemy
from sqlalchemy.dialects import registry
warnings.simplefilter("ignore")  # duckdb-engine warns that it reflects no indexes
url, dialects = sys.argv[1], json.loads(sys.argv[2])
for name, target in dialects.items():
    registry.register(name, *target.split(":"))
engine = sqlalchemy.create_engine(url)
try:
    inspector = sqlalchemy.inspect(engine)
    tables, views = inspector.get_table_names(), inspector.get_view_names()
    columns = {}
    for name in tables + views:
        columns[name] = [[c["name"], c["nullable"], c.get("comment")] for c in inspector.get_columns(name)]
        inspector.get_pk_constraint(name), inspector.get_foreign_keys(name), inspector.get_table_comment(name)
    if sqlalchemy.__version__ >= "2":  # what pandas (2.2 and later) reads a whole table with
        import pandas
        frame = pandas.read_sql_table("messages", engine)
        messages = [list(frame.columns), len(frame)]
    else:
        table = sqlalchemy.Table("messages", sqlalchemy.MetaData(), autoload_with=engine)
        with engine.connect() as connection:
            count = connection.execute(sqlalchemy.select(sqlalchemy.func.count()).select_from(table)).scalar()
        messages = [list(table.columns.keys()), count]
    found = {"tables": tables, "views": views, "columns": columns, "messages": messages}
except Exception as exc:
    found = {"error": f"{type(exc).__name__}: {exc}"}
print(json.dumps({"sqlalchemy": sqlalchemy.__version__, **found}))
"""
ROOT = Path(__file__).resolve().parents[1]
READERS_COPY_PAGE = "docs/readers-copy.md"  # its SQLAlchemy recipe is run as written


@pytest.fixture
def day(start_simulator, monkeypatch):
    """A busy day from a simulator the pipeline reads."""
    point_at(monkeypatch, start_simulator(messages_per_day=150))
    return recent_days(1)[0]


def backfill(day, capsys) -> str:
    """Backfill `day` (which publishes the copy); what it said on stderr."""
    assert main(["backfill", "--start", str(day), "--end", str(day)]) == 0
    return capsys.readouterr().err


def warehouse_path() -> Path:
    return Path(os.environ["DE_DUCKDB_PATH"])


def format_of(path: Path | str) -> str | None:
    connection = duckdb.connect(str(path), read_only=True)
    try:
        return storage_version(connection)
    finally:
        connection.close()


def row_counts(path: Path) -> dict[str, int]:
    """Every table and view of `path` with its rows, read by this process's DuckDB."""
    result = subprocess.run([sys.executable, "-c", ROW_COUNTS, str(path)], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)["counts"]


def test_a_new_warehouse_and_its_copy_are_in_the_format_duckdb_1_4_opens(day, capsys):
    said = backfill(day, capsys)
    warehouse = warehouse_path()
    assert format_of(warehouse) == OLDER_READERS_FORMAT
    assert format_of(copy_path()) == OLDER_READERS_FORMAT
    assert "published the readers' copy" in said and "converted" not in said  # a file copy, as fast as before


def test_a_warehouse_in_duckdb_2s_format_is_converted_whole_for_readers(day, capsys):
    warehouse = warehouse_path()
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    duckdb.connect(str(warehouse), config={"storage_compatibility_version": "latest"}).close()  # as before
    said = backfill(day, capsys)
    assert format_of(warehouse) == "v2.0.0+"  # the warehouse stays as it is
    assert "converted to DuckDB v1.4.0's storage format table by table" in said
    assert format_of(copy_path()) == OLDER_READERS_FORMAT
    copied = row_counts(copy_path())
    assert copied.pop("_published") == 1
    assert copied == row_counts(warehouse) and copied["messages"] > 0  # every table and view
    for entry in TABLES:
        ordered = f"SELECT * FROM {entry.name} ORDER BY ALL"
        pd.testing.assert_frame_equal(query(ordered, copy_path()), query(ordered, warehouse), check_exact=True)
    comments = "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE comment IS NOT NULL ORDER BY ALL"
    assert query(comments, copy_path()).equals(query(comments, warehouse))


def older_duckdb(series: str) -> Path:
    """A folder holding DuckDB `series` (e.g. 1.4) for Python (see pip_target)."""
    return pip_target(f"duckdb-{series}", f"duckdb=={series}.*")


def without_python_path() -> dict[str, str]:
    """This environment without PYTHONPATH, whose packages pip would take as installed."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


def pip_target(name: str, *requirements: str) -> Path:
    """A folder to put first on PYTHONPATH, holding `requirements` (without their own
    dependencies), installed by pip once and kept in the temp folder; skips the test when
    pip cannot install them (no package index)."""
    folder = Path(tempfile.gettempdir()) / "de_pipeline_tests" / name
    if not (folder / "installed").exists():
        install = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(folder), *requirements],
            capture_output=True,
            text=True,
            env=without_python_path(),
        )
        if install.returncode != 0:
            pytest.skip(f"pip could not install {' '.join(requirements)}: {install.stderr.strip()[-300:]}")
        (folder / "installed").touch()
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("series", ["1.4", "1.5"])
def test_an_older_duckdb_reads_every_table_and_view_of_the_copy(day, capsys, series):
    backfill(day, capsys)
    read = subprocess.run(
        [sys.executable, "-c", ROW_COUNTS, str(copy_path())],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(older_duckdb(series)), "PATH": "/usr/bin:/bin"},
    )
    assert read.returncode == 0, read.stderr[-2000:]
    seen = json.loads(read.stdout)
    assert seen["version"].startswith(f"{series}.")
    assert seen["counts"] == row_counts(copy_path()) and seen["counts"]["messages"] > 0


def our_dialects() -> dict[str, str]:
    """The SQLAlchemy dialects pyproject.toml registers (as installing the package does)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return pyproject["project"]["entry-points"]["sqlalchemy.dialects"]


def reflect(url: str, *, python_path: str | None = None) -> dict:
    """What SQLAlchemy reflects of `url` in a fresh process (with `python_path` first)."""
    env = dict(os.environ)
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [python_path, env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", REFLECT, url, json.dumps(our_dialects())], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def assert_reflects_every_table(found: dict, copy: Path) -> None:
    """Every registry table with the registry's columns, and every view with DuckDB's own."""
    assert "error" not in found, found["error"]
    assert set(TABLE_NAMES) <= set(found["tables"])
    for entry in TABLES:
        expected = [[c.name, not c.type.endswith("NOT NULL"), c.description] for c in entry.columns]
        assert found["columns"][entry.name] == expected, entry.name
    views = query("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1", copy).view_name.tolist()
    assert views and sorted(found["views"]) == views
    for view in views:
        names = query(
            f"SELECT column_name FROM duckdb_columns() WHERE table_name = '{view}' ORDER BY column_index", copy
        )
        assert [c[0] for c in found["columns"][view]] == names.column_name.tolist(), view
    messages = query("SELECT count(*) AS n FROM messages", copy).n.item()
    assert found["messages"] == [[c.name for c in TABLES[0].columns], messages] and messages > 0


def copy_url(driver: str) -> str:
    return f"{driver}:///{copy_path()}?access_mode=read_only"


@pytest.fixture
def published(day, capsys) -> Path:
    backfill(day, capsys)
    return copy_path()


@pytest.fixture
def duckdb_engine() -> None:
    pytest.importorskip("duckdb_engine", reason="duckdb-engine is in the test extras: pip install -e '.[test]'")


def test_sqlalchemy_through_our_dialect_reflects_every_table_of_the_copy(duckdb_engine, published):
    assert_reflects_every_table(reflect(copy_url("duckdb+de_pipeline")), published)


def test_sqlalchemy_through_stock_duckdb_engine_reflects_the_copy_up_to_sqlalchemy_2_0(duckdb_engine, published):
    found = reflect(copy_url("duckdb"))
    if tuple(int(part) for part in found["sqlalchemy"].split(".")[:2]) < (2, 1):
        assert_reflects_every_table(found, published)
    else:  # duckdb-engine 0.17's own limit; once a release lifts it, the docs' advice changes
        assert "pg_collation" in found.get("error", ""), found


def documented_engine(copy: Path) -> object:
    """The SQLAlchemy engine of the recipe in READERS_COPY_PAGE, on `copy`; with SQLAlchemy 2.1
    through our dialect, as the page says."""
    from sqlalchemy import __version__ as sqlalchemy_version
    from sqlalchemy.dialects import registry

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / READERS_COPY_PAGE).read_text(), re.DOTALL)
    (recipe,) = [block for block in blocks if "create_engine(" in block]
    placed = recipe.replace("/srv/de-pipeline/data/de_pipeline-readers.duckdb", str(copy))
    assert placed != recipe
    if tuple(int(part) for part in sqlalchemy_version.split(".")[:2]) >= (2, 1):
        placed = placed.replace('"duckdb:///', '"duckdb+de_pipeline:///')
    for name, target in our_dialects().items():
        registry.register(name, *target.split(":"))
    namespace: dict[str, object] = {}
    exec(placed, namespace)  # lists the columns and reads _published, as the page shows
    return namespace["engine"]


@pytest.mark.parametrize("pooled", [False, True], ids=["as-the-docs-write-it", "with-sqlalchemys-default-pool"])
def test_the_documented_engine_sees_each_new_publish_and_a_pooled_one_does_not(duckdb_engine, published, pooled):
    from sqlalchemy import create_engine

    engine = documented_engine(published)
    if pooled:  # the same URL with the default pool: it keeps the first copy it opened
        engine = create_engine(engine.url)
    stamp = "SELECT published_at FROM _published"
    try:
        first = pd.read_sql(stamp, engine).published_at.item()
        for _ in range(2):
            published_now = publish_reader_copy(WarehouseSettings.from_env(), trigger="a test").published_at
            seen = pd.read_sql(stamp, engine).published_at.item()
            assert seen == (first if pooled else published_now)
            assert published_now != first
    finally:
        engine.dispose()


def sqlalchemy_release(spec: str) -> Path:
    """A folder holding `spec` (e.g. sqlalchemy==2.0.*) and duckdb-engine, installed by pip
    once and kept in the temp folder; skips the test when pip cannot install them."""
    return pip_target(f"sqlalchemy-{spec.split('==')[1].rstrip('.*')}", spec, "duckdb-engine==0.17.*")


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["sqlalchemy==2.0.*", "sqlalchemy==1.4.*"])
def test_an_older_sqlalchemy_with_stock_duckdb_engine_reflects_every_table_of_the_copy(published, spec):
    found = reflect(copy_url("duckdb"), python_path=str(sqlalchemy_release(spec)))
    assert found["sqlalchemy"].startswith(spec.split("==")[1].rstrip("*"))
    assert_reflects_every_table(found, published)


# Apache Superset 6.1 pins SQLAlchemy 1.4 and pandas < 2.2, so it gets a venv of its own, with
# an older DuckDB, as BI installs often have; rich, cachetools and Flask-Caching < 2.4 are
# what its own package leaves out or lets pip pick too new
SUPERSET = ("apache-superset==6.1.*", "duckdb==1.5.*", "duckdb-engine==0.17.*")
SUPERSET += ("rich", "cachetools", "flask-caching<2.4")
SUPERSET_CONFIG = """
SECRET_KEY = "only-for-a-test-superset-of-de-pipeline"
SQLALCHEMY_DATABASE_URI = "sqlite:///{folder}/superset.db"
WTF_CSRF_ENABLED = False
"""


def superset() -> Path:
    """The bin folder of a venv holding Superset (SUPERSET), made once in the temp folder
    (about 900 MB, 2 minutes); skips the test when pip cannot install it."""
    folder = Path(tempfile.gettempdir()) / "de_pipeline_tests" / "superset-6.1"
    if not (folder / "installed").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
        install = subprocess.run(
            [folder / "bin" / "pip", "install", "--quiet", *SUPERSET],
            capture_output=True,
            text=True,
            timeout=900,
            env=without_python_path(),
        )
        if install.returncode != 0:
            pytest.skip(f"pip could not install Superset: {install.stderr.strip()[-300:]}")
        (folder / "installed").touch()
    return folder / "bin"


@pytest.mark.slow
def test_superset_with_duckdb_1_5_lists_and_charts_the_copy(published, tmp_path):
    bin_folder = superset()
    (tmp_path / "superset_config.py").write_text(SUPERSET_CONFIG.format(folder=tmp_path))
    env = {
        "SUPERSET_CONFIG_PATH": str(tmp_path / "superset_config.py"),
        "SUPERSET_HOME": str(tmp_path),
        "HOME": str(tmp_path),
        "FLASK_APP": "superset",
        "PATH": f"{bin_folder}:/usr/bin:/bin",
    }
    admin = ["fab", "create-admin", "--username", "admin", "--password", "admin"]
    admin += ["--firstname", "An", "--lastname", "Analyst", "--email", "analyst@example.com"]
    for command in (["db", "upgrade"], admin, ["init"]):
        done = subprocess.run([bin_folder / "superset", *command], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    chart = [bin_folder / "python", ROOT / "de_pipeline_tests" / "superset_chart.py", str(published)]
    done = subprocess.run(chart, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert set(TABLE_NAMES) <= set(found["tables"])
    assert found["columns"] == found["dataset_columns"] == [c.name for c in TABLES[0].columns]
    per_day = "SELECT epoch_ms(day::TIMESTAMP) AS day, count(*) AS n FROM messages GROUP BY day ORDER BY day"
    expected = query(per_day, published).values.tolist()
    assert found["messages_per_day"] == expected and expected
