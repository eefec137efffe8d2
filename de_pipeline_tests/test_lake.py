"""A DuckLake warehouse (DE_WAREHOUSE=ducklake:postgres:..., docs/lake.md): a real PostgreSQL
catalog and a real S3-compatible server (moto) on 127.0.0.1. Four accounts written by four
processes at once equal a DuckDB-file run, row for row; a writer killed mid-write leaves
every day whole; a reader's snapshot holds still while writers commit; settings errors are
one line, and no secret is ever printed.

The DuckLake extensions exist for duckdb 1.5.5 only: `make test-lake` runs this file in a
venv of its own (constraints-lake.txt); elsewhere only its tests of settings and definitions
run, the rest are skipped.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from de_pipeline.defs.runner import run_range
from de_pipeline.env import SettingsError
from de_pipeline.simulator import Simulator, SimulatorConfig, provider_seed
from de_pipeline.simulator.dataset import SyntheticDataset
from de_pipeline.warehouse.aggregates import refresh_aggregate
from de_pipeline.warehouse.archive import ArchiveWriter
from de_pipeline.warehouse.connection import (
    WRITE_CONFLICT_ATTEMPTS,
    WRITE_CONFLICT_MAX_WAIT_SECONDS,
    LakeUnavailableError,
    WarehouseMissingError,
    WriteConflictError,
    attach_lake,
    reader,
    write_conflicts_retried,
    writer,
)
from de_pipeline.warehouse.days import calendar_days
from de_pipeline.warehouse.extensions import ExtensionError, load_extension, packaged_extension, sql_string
from de_pipeline.warehouse.lake_upkeep import keep_the_lake
from de_pipeline.warehouse.messages import load_messages
from de_pipeline.warehouse.query import QueryError, query_frame
from de_pipeline.warehouse.settings import LakeSettings, WarehouseSettings
from de_pipeline.warehouse.tables import DAILY_TABLES, TABLES
from de_pipeline_tests.conftest import TEST_KEY, point_at
from de_pipeline_tests.dagster_dev import free_port
from de_pipeline_tests.helpers import (
    dump,
    dump_sql,
    kill_when,
    recent_days,
    run_cli,
    served,
    start_cli,
    unique_messages,
)
from de_pipeline_tests.postgres import (
    PostgresServer,
    _create_database,
    postgres_or_skip,
)
from de_pipeline_tests.s3 import running_s3, s3_client
from de_pipeline_tests.test_queries import LAKE_RECIPE, ROOT, SQL_BLOCK

pytestmark = pytest.mark.lake
needs_ducklake = pytest.mark.skipif(
    packaged_extension("ducklake") is None,
    reason=f"no DuckLake extension installed for duckdb {duckdb.__version__}: "
    "run `make test-lake`, which uses a duckdb 1.5.5 venv",
)

SEED = 7
OTHERS = (("provider-b", "key-b-never-print-me"), ("provider-c", "key-c-never-print-me"),
          ("provider-d", "key-d-never-print-me"))  # fmt: skip
ACCOUNTS = ("a", "b", "c", "d")
S3_KEY_ID = "lake-key-id-never-print-me"
S3_SECRET = "lake-secret-never-print-me"
BUCKET = "lake"
# a lake's settings, for the tests of settings (no server needed)
SETTINGS_ENV = {
    "DE_WAREHOUSE": "ducklake:postgres:dbname=lake host=127.0.0.1 user=de",
    "DE_LAKE_DATA_PATH": "s3://lake/data",
    "DE_LAKE_S3_ENDPOINT": "http://127.0.0.1:9000/",
    "AWS_ACCESS_KEY_ID": S3_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": S3_SECRET,
    "PGPASSWORD": "pg-password-never-print-me",
}


@pytest.fixture(scope="module")
def simulator() -> Iterator[Simulator]:
    config = SimulatorConfig(
        api_key=TEST_KEY, provider_id="provider-a", retry_after_seconds=0, seed=SEED,
        messages_per_day=200, other_providers=OTHERS,
    )  # fmt: skip
    server = Simulator(config)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with postgres_or_skip(database="lake", user="de") as server:
        yield server


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    """An S3-compatible server (moto) on 127.0.0.1 with the bucket `lake`; its endpoint."""
    with running_s3(BUCKET, S3_KEY_ID, S3_SECRET) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def lake_env(postgres: PostgresServer, s3: str) -> Iterator[dict[str, str]]:
    """The lake's settings; its secrets (PGPASSWORD, the S3 keys) in this process's
    environment too, where libpq and the connection's S3 secret read them."""
    secrets = {"PGPASSWORD": postgres.password, "AWS_ACCESS_KEY_ID": S3_KEY_ID, "AWS_SECRET_ACCESS_KEY": S3_SECRET}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in secrets.items():
            patch.setenv(name, value)
        yield {
            "DE_WAREHOUSE": f"ducklake:postgres:dbname={postgres.database} host={postgres.host} "
            f"port={postgres.port} user={postgres.user}",
            "DE_LAKE_DATA_PATH": f"s3://{BUCKET}/data/",
            "DE_LAKE_S3_ENDPOINT": s3,
            **secrets,
        }


def lake_settings(lake_env: dict[str, str], **more: str) -> WarehouseSettings:
    return WarehouseSettings.from_env(dict(os.environ) | lake_env | more)


def days() -> tuple[Any, Any]:
    return recent_days(2, seeds=(SEED, *(SEED + provider_seed(provider) for provider, _ in OTHERS)))


def providers_file(path: Path, simulator: Simulator, names: tuple[str, ...]) -> Path:
    ids = dict(zip(ACCOUNTS, (simulator.config.provider_id, *(provider for provider, _ in OTHERS))))
    lines = [
        f"  - {{name: {name}, provider_id: {ids[name]}, api_key_env: DE_API_KEY_{name.upper()}, "
        f"base_url: {simulator.base_url}}}"
        for name in names
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("accounts:\n" + "\n".join(lines) + "\n")
    return path


def api_keys() -> dict[str, str]:
    return {f"DE_API_KEY_{name.upper()}": key for name, key in zip(ACCOUNTS, (TEST_KEY, *(k for _, k in OTHERS)))}


def account_env(folder: Path, simulator: Simulator, names: tuple[str, ...]) -> dict[str, str]:
    """A process of its own for `names`: its providers file, its Dagster home and raw archive
    (under DE_DUCKDB_PATH's folder, which a lake uses for nothing else)."""
    return api_keys() | {
        "DE_PROVIDERS_FILE": str(providers_file(folder / "providers.yaml", simulator, names)),
        "DE_DUCKDB_PATH": str(folder / "warehouse.duckdb"),
        "DE_RUN_HISTORY": "off",  # a Dagster instance in memory: quicker, and nothing shared
    }


def account_dump(settings: WarehouseSettings, table: str, account: str) -> list[tuple[Any, ...]]:
    """An account's rows of a table, ordered, without the fetch time."""
    with reader(settings) as connection:
        return connection.execute(dump_sql(connection, table, where="WHERE provider = $p"), {"p": account}).fetchall()


def counts(connection: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return {t.name: connection.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0] for t in TABLES}  # type: ignore[index]


@pytest.fixture(scope="module")
def accounts_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each account's process's folder (its archive, its providers file), for the module."""
    return tmp_path_factory.mktemp("accounts")


@pytest.fixture(scope="module")
def reference(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> WarehouseSettings:
    """The four accounts in a DuckDB file, as today: what the lake must equal."""
    folder = tmp_path_factory.mktemp("reference")
    first, last = days()
    env = account_env(folder, simulator, ACCOUNTS) | {"DE_MAX_PARALLEL_ACCOUNTS": "4"}
    done = run_cli("backfill", "--start", str(first), "--end", str(last), env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return WarehouseSettings.from_env(env)


def assert_equal_to_reference(settings: WarehouseSettings, reference: WarehouseSettings) -> None:
    for account in ACCOUNTS:
        for table in TABLES:
            expected = account_dump(reference, table.name, account)
            assert account_dump(settings, table.name, account) == expected, (account, table.name)


def backfill_each_account_at_once(folder: Path, simulator: Simulator, env: dict[str, str], *more: str) -> None:
    """A backfill of each account in a process of its own, all at once (`more`: its options)."""
    first, last = days()
    arguments = ("backfill", "--start", str(first), "--end", str(last), *more)
    processes = [start_cli(*arguments, env=env | account_env(folder / name, simulator, (name,))) for name in ACCOUNTS]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
        for secret in (S3_KEY_ID, S3_SECRET, env["PGPASSWORD"], TEST_KEY, *(key for _, key in OTHERS)):
            assert secret not in out + err


@needs_ducklake
@pytest.mark.slow  # four processes at once, twice: about a minute on 2 cores
def test_four_accounts_written_at_once_equal_a_duckdb_file_and_a_snapshot_holds_still(
    simulator: Simulator, lake_env: dict[str, str], reference: WarehouseSettings, accounts_folder: Path
) -> None:
    settings = lake_settings(lake_env)
    with writer(settings):
        pass  # the tables, empty, so that a reader can hold a snapshot of them
    with reader(settings) as snapshot:
        snapshot.execute("BEGIN TRANSACTION")
        before = counts(snapshot)
        assert set(before.values()) == {0}
        backfill_each_account_at_once(accounts_folder, simulator, lake_env)
        assert counts(snapshot) == before  # the writers committed; the snapshot is as it was
        snapshot.execute("COMMIT")
        assert counts(snapshot)["messages"] > 0  # a new transaction sees their rows

    assert_equal_to_reference(settings, reference)
    first, last = days()
    for name, provider in zip(ACCOUNTS, (None, *(p for p, _ in OTHERS))):
        expected = len(unique_messages(served(simulator, first, last, provider)))
        with reader(settings) as connection:
            n, k = connection.execute(
                "SELECT count(*), count(DISTINCT message_key) FROM messages WHERE provider = $p", {"p": name}
            ).fetchone()  # type: ignore[misc]
        assert (n, k) == (expected, expected), name


@needs_ducklake
@pytest.mark.slow  # four processes at once, twice: about a minute on 2 cores
def test_a_writer_killed_mid_write_leaves_every_day_whole_and_the_rerun_at_once_completes(
    simulator: Simulator, lake_env: dict[str, str], reference: WarehouseSettings, accounts_folder: Path, s3: str
) -> None:
    settings = lake_settings(lake_env)
    first, last = days()
    env = lake_env | account_env(accounts_folder / "b", simulator, ("b",))
    if not (accounts_folder / "b" / "warehouse_archive" / "b").is_dir():
        pytest.skip("needs account b's archive, which the test before fetched")
    # from b's archive (the test before fetched it): the rebuild writes from its first second
    objects = s3_objects(s3)
    rebuild = start_cli("backfill", "--start", str(first), "--end", str(last), "--from-archive", env=env)
    # the rebuild's first Parquet file: it is writing
    kill_when(rebuild, lambda: s3_objects(s3) > objects, "the rebuild wrote a file", timeout=120)

    expected = day_counts(reference, "b")
    assert day_counts(settings, "b") == expected  # each day old or new, never half: both hold these
    with reader(settings) as connection:
        loaded = dict(connection.execute("SELECT day, messages FROM loaded_days WHERE provider = 'b'").fetchall())
    assert loaded == expected
    # again, every account at once: each replaces rows that are there now, so their
    # transactions on the same tables conflict, and are run again
    backfill_each_account_at_once(accounts_folder, simulator, lake_env, "--from-archive")
    assert_equal_to_reference(settings, reference)


def s3_objects(endpoint: str) -> int:
    client = s3_client(endpoint, S3_KEY_ID, S3_SECRET)
    return sum(page.get("KeyCount", 0) for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET))


def day_counts(settings: WarehouseSettings, account: str) -> dict[Any, int]:
    with reader(settings) as connection:
        return dict(
            connection.execute(
                "SELECT day, count(*) FROM messages WHERE provider = $p GROUP BY day", {"p": account}
            ).fetchall()
        )


@needs_ducklake
def test_a_sealed_reader_reads_the_lake_and_nothing_else(lake_env: dict[str, str], tmp_path: Path) -> None:
    settings = lake_settings(lake_env)
    with writer(settings):
        pass  # its tables, if the tests before did not write them
    with reader(settings, sealed=True) as connection:
        assert query_frame(connection, "SELECT count(*) AS n FROM daily_overview").n[0] >= 0
        for statement in (
            f"COPY messages TO '{tmp_path / 'out.csv'}'",
            f"ATTACH '{tmp_path / 'other.duckdb'}' AS other",
            "SELECT * FROM read_csv('/etc/passwd')",
            f"SELECT count(*) FROM 's3://{BUCKET}/elsewhere/*.parquet'",
            "SET memory_limit = '4GB'",
            "CREATE TABLE lake.main.mine AS SELECT 1 AS x",
            "DELETE FROM messages",
        ):
            with pytest.raises(QueryError):
                query_frame(connection, statement)
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "other.duckdb").exists()
    with reader(settings) as connection:
        (messages,) = connection.execute("SELECT count(*) FROM messages").fetchone()  # type: ignore[misc]
    done = run_cli("sql", "SELECT count(*) AS n FROM messages", env=lake_env)  # analysts' SQL, on the lake
    assert done.returncode == 0 and str(messages) in done.stdout.split(), done.stderr[-2000:]
    for secret in (S3_KEY_ID, S3_SECRET, lake_env["PGPASSWORD"]):
        assert secret not in done.stdout + done.stderr


@needs_ducklake
def test_the_docs_recipe_for_the_duckdb_cli_reads_the_lake_read_only(lake_env: dict[str, str]) -> None:
    """docs/lake.md's DuckDB CLI recipe, with this lake's host, keys and bucket for its
    placeholders (and moto's endpoint), attaches the lake, reads it, and cannot write it."""
    (recipe,) = [block for block in SQL_BLOCK.findall((ROOT / "docs" / "lake.md").read_text()) if LAKE_RECIPE in block]
    catalog = lake_env["DE_WAREHOUSE"].removeprefix("ducklake:postgres:")
    endpoint = lake_env["DE_LAKE_S3_ENDPOINT"].removeprefix("http://")
    for placeholder, value in {
        "KEY_ID '...'": f"KEY_ID '{S3_KEY_ID}'",
        "SECRET '...'": f"SECRET '{S3_SECRET}'",
        "REGION 'eu-west-1'": f"REGION 'us-east-1', ENDPOINT '{endpoint}', URL_STYLE 'path', USE_SSL false",
        "dbname=lake host=db.example.com user=reader": catalog,
        "s3://my-bucket/lake/": lake_env["DE_LAKE_DATA_PATH"],
    }.items():
        assert placeholder in recipe, placeholder
        recipe = recipe.replace(placeholder, value)
    settings = lake_settings(lake_env)
    with writer(settings):
        pass  # its tables, if the tests before did not write them
    with duckdb.connect() as connection:
        for extension in ("ducklake", "postgres_scanner", "httpfs"):  # the recipe's INSTALLs, offline
            load_extension(connection, extension)
        *setup, last = [statement for statement in recipe.split(";") if statement.strip()]
        for statement in setup:
            connection.execute(statement)
        assert connection.execute(last).description is not None
        with pytest.raises(duckdb.Error, match="read-only|read only"):
            connection.execute("DELETE FROM messages")


@needs_ducklake
def test_a_lake_without_tables_is_missing_and_a_wrong_one_is_one_line(
    lake_env: dict[str, str], postgres: PostgresServer
) -> None:
    _create_database(replace(postgres, database="empty"))
    empty = lake_env | {"DE_WAREHOUSE": lake_env["DE_WAREHOUSE"].replace("dbname=lake", "dbname=empty")}
    settings = lake_settings(empty)
    assert settings.lake is not None
    for _ in ("no catalog yet", "a catalog without tables"):
        with pytest.raises(WarehouseMissingError) as missing:
            with reader(settings):
                pass
        assert str(missing.value).startswith("no tables in the lake ducklake:postgres:dbname=empty ")
        assert "\n" not in str(missing.value) and postgres.password not in str(missing.value)
        with duckdb.connect() as connection:
            attach_lake(connection, settings.lake, read_only=False)  # the catalog, and no table
    wrong = lake_env | {
        "DE_WAREHOUSE": lake_env["DE_WAREHOUSE"].replace(f"port={postgres.port}", f"port={free_port()}")
    }
    with pytest.raises(LakeUnavailableError) as unavailable:
        with reader(lake_settings(wrong)):
            pass
    message = str(unavailable.value)
    assert "\n" not in message and "could not attach the lake ducklake:postgres:" in message
    for secret in (postgres.password, S3_KEY_ID, S3_SECRET):
        assert secret not in message


def attach_at_once(lake: LakeSettings, writers: int) -> list[BaseException]:
    """`writers` threads that ATTACH the lake at the same moment; what each raised."""
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def attach() -> None:
        with duckdb.connect() as connection:
            start.wait()
            try:
                attach_lake(connection, lake, read_only=False)
            except BaseException as exc:
                failures.append(exc)

    threads = [threading.Thread(target=attach) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return failures


@needs_ducklake
def test_writers_starting_at_once_on_a_new_lake_all_attach(
    lake_env: dict[str, str], postgres: PostgresServer, tmp_path: Path
) -> None:
    writers = 4
    for round_ in range(3):  # the race to create the catalog is lost by some, not always the same
        database = f"race{round_}"
        _create_database(replace(postgres, database=database))
        new = lake_env | {
            "DE_WAREHOUSE": lake_env["DE_WAREHOUSE"].replace("dbname=lake", f"dbname={database}"),
            "DE_LAKE_DATA_PATH": str(tmp_path / database),
        }
        lake = lake_settings(new).lake
        assert lake is not None
        failures = attach_at_once(lake, writers)
        assert not failures, failures


@needs_ducklake
def test_a_lake_writer_spills_to_a_private_folder_not_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # writers started in one folder once shared its `.tmp`
    local = {"DE_WAREHOUSE": f"ducklake:{tmp_path / 'catalog.ducklake'}", "DE_LAKE_DATA_PATH": str(tmp_path / "data")}
    settings = WarehouseSettings.from_env(dict(os.environ) | local | {"DE_DUCKDB_PATH": str(tmp_path / "w.duckdb")})
    folders = []
    for _ in range(2):
        with writer(settings) as connection:
            (folder,) = connection.execute("SELECT current_setting('temp_directory')").fetchone()  # type: ignore[misc]
            assert Path(folder).is_dir() and Path(folder).parent == Path(tempfile.gettempdir())
            folders.append(folder)
        assert not Path(folder).exists()  # removed with the connection
    assert folders[0] != folders[1] and not (tmp_path / ".tmp").exists()


@needs_ducklake
def test_a_day_of_messages_is_parsed_within_the_memory_budget_however_many_cores(tmp_path: Path) -> None:
    """The parse held a row group of the archive per DuckDB thread, each about 45MB: with two
    threads a day of 30,000 messages did not fit the 81MiB that DE_DUCKDB_MEMORY_LIMIT=128MB
    leaves the build (at the default 192MB, a lake's week of them failed too)."""
    day = date(2026, 11, 24)  # a weekday: a busy day, whatever today is
    local = {
        "DE_WAREHOUSE": f"ducklake:{tmp_path / 'catalog.ducklake'}",
        "DE_LAKE_DATA_PATH": str(tmp_path / "data"),
        "DE_DUCKDB_PATH": str(tmp_path / "w.duckdb"),
    }
    settings = WarehouseSettings.from_env(dict(os.environ) | local)
    dataset = SyntheticDataset(seed=SEED, messages_per_day=30_000)
    payloads = dataset.payloads_between(*dataset.day_bounds_ms(day))
    with ArchiveWriter(settings, datetime.now(UTC)) as archive:
        archive.add(day, b"[" + b",".join(payloads) + b"]")
        archive.end_day(day)
        (archived,) = archive.commit()
    assert archived.records > 16_384  # two row groups of the archive (archive_pages.sql): one a thread
    tight = replace(settings, memory_limit="128MB")  # the archive writer needs its default share
    with writer(tight) as connection:
        connection.execute("SET threads = 2")  # as on a machine of two cores or more
        load = load_messages(connection, calendar_days(day, day, tight.timezone), tight)
    assert load.total("stored") == len(unique_messages([orjson.loads(p) for p in payloads]))


@pytest.mark.dates
def test_the_tables_do_not_depend_on_the_order_duckdb_reads_the_messages_in(
    start_simulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A lake reads an account's messages back in another order than a DuckDB file: the
    tables computed from them must be equal byte for byte all the same (duckdb 1.5.5's
    favg gave last-digit differences). Runs without a lake: the order is what matters."""
    simulator = start_simulator(messages_per_day=3000)
    point_at(monkeypatch, simulator)
    monkeypatch.setenv("DE_DUCKDB_PATH", str(tmp_path / "built.duckdb"))
    first, last = recent_days(2)
    run_range(first, last)
    built = WarehouseSettings.from_env()
    shuffled = replace(built, duckdb_path=tmp_path / "shuffled.duckdb")
    with writer(shuffled) as connection:
        connection.execute(f"ATTACH {sql_string(str(built.duckdb_path))} AS built (READ_ONLY)")
        for source in ("messages", "loaded_days"):  # the messages in another order than they were stored
            connection.execute(f"INSERT INTO {source} SELECT * FROM built.{source} ORDER BY hash(COLUMNS(*))")
        connection.execute("DETACH built")
        for daily in DAILY_TABLES:
            refresh_aggregate(connection, daily, first, last, shuffled)
    for daily in DAILY_TABLES:
        assert dump(daily.name, shuffled.duckdb_path) == dump(daily.name, built.duckdb_path), daily.name


@pytest.mark.parametrize(
    ("more", "complaint"),
    [
        ({"DE_WAREHOUSE": "postgres:dbname=lake"}, "DE_WAREHOUSE='postgres:dbname=lake' must be empty"),
        ({"DE_WAREHOUSE": "ducklake:postgres:dbname=lake password=hunter2"}, "DE_WAREHOUSE holds a password="),
        ({"DE_WAREHOUSE": "ducklake:postgres:dbname=lake host"}, "'host' is not a libpq key=value pair"),
        ({"DE_LAKE_DATA_PATH": ""}, "DE_LAKE_DATA_PATH is not set"),
        ({"DE_LAKE_DATA_PATH": "gs://bucket/x"}, "must be a local folder or s3://bucket/prefix/"),
        ({"DE_LAKE_DATA_PATH": "s3://B/x"}, "must look like s3://bucket/prefix/"),
        ({"DE_LAKE_S3_ENDPOINT": "127.0.0.1:9000"}, "DE_LAKE_S3_ENDPOINT='127.0.0.1:9000' must look like"),
        ({"AWS_SECRET_ACCESS_KEY": ""}, "AWS_SECRET_ACCESS_KEY is not set"),
    ],
)
def test_a_wrong_lake_setting_is_one_line_naming_it(more: dict[str, str], complaint: str) -> None:
    with pytest.raises(SettingsError) as raised:
        WarehouseSettings.from_env(SETTINGS_ENV | more)
    message = str(raised.value)
    assert complaint in message and "\n" not in message
    for secret in ("hunter2", S3_SECRET, SETTINGS_ENV["PGPASSWORD"]):
        assert secret not in message


def test_lake_settings_as_given_and_no_readers_copy_by_default() -> None:
    lake = WarehouseSettings.from_env(SETTINGS_ENV)
    assert lake.lake is not None and lake.reader_copy_path is None
    assert lake.lake.attach_target == "ducklake:postgres:dbname=lake host=127.0.0.1 user=de"
    assert (lake.lake.data_path, lake.lake.s3_endpoint, lake.lake.s3_region) == (
        "s3://lake/data/", "http://127.0.0.1:9000", "us-east-1",
    )  # fmt: skip
    assert "DE_DUCKDB_PATH" not in lake.outputs and S3_SECRET not in repr(lake)
    file = WarehouseSettings.from_env(SETTINGS_ENV | {"DE_WAREHOUSE": ""})
    assert file.lake is None and file.reader_copy_path is not None


def test_the_write_steps_share_no_pool_with_a_postgres_lake_and_one_otherwise() -> None:
    from de_pipeline.defs.assets import WAREHOUSE_POOL
    from de_pipeline.defs.build import DefinitionSettings, build_pipeline

    def pools(environ: dict[str, str]) -> set[str | None]:
        return {a.op.pool for a in build_pipeline(DefinitionSettings.from_env(environ)).table_assets}

    assert pools(SETTINGS_ENV) == {None}
    assert pools({}) == {WAREHOUSE_POOL}
    assert pools({"DE_WAREHOUSE": "ducklake:/tmp/x.ducklake", "DE_LAKE_DATA_PATH": "/tmp/x"}) == {WAREHOUSE_POOL}


def test_a_lakes_definitions_have_the_weekly_upkeep_and_a_duckdb_files_do_not() -> None:
    from de_pipeline.defs.build import DefinitionSettings, build_pipeline

    def upkeep(environ: dict[str, str]) -> tuple[bool, list[str]]:
        defs = build_pipeline(DefinitionSettings.from_env(environ)).defs
        schedules = [s.name for s in defs.schedules or []]
        return any(j.name == "lake_upkeep" for j in defs.jobs or []), schedules

    assert upkeep(SETTINGS_ENV) == (True, ["daily_refresh", "weekly_lake_upkeep"])
    assert upkeep({}) == (False, ["daily_refresh"])


@needs_ducklake
def test_the_upkeep_keeps_every_row_and_deletes_the_files_no_snapshot_needs(
    start_simulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    point_at(monkeypatch, start_simulator(messages_per_day=300))
    local = {"DE_WAREHOUSE": f"ducklake:{tmp_path / 'catalog.ducklake'}", "DE_LAKE_DATA_PATH": str(tmp_path / "data")}
    for name, value in (local | {"DE_DUCKDB_PATH": str(tmp_path / "w.duckdb"), "DE_READERS_COPY": "off"}).items():
        monkeypatch.setenv(name, value)
    first, last = recent_days(2)
    for _ in range(2):  # the second run replaces every day: its first files only old snapshots need
        run_range(first, last)
    settings = WarehouseSettings.from_env()
    files = lambda: set((tmp_path / "data").rglob("*.parquet"))  # noqa: E731
    with reader(settings) as connection:
        before = {t.name: connection.execute(dump_sql(connection, t.name)).fetchall() for t in TABLES}
    kept = files()
    a_week_on = datetime.now(UTC) + timedelta(days=8)  # past DE_LAKE_SNAPSHOT_DAYS (7): all but the last expire
    done = keep_the_lake(settings, now=a_week_on)
    assert done.snapshots_expired > 0 and done.files_deleted > 0
    assert len(files()) < len(kept)
    with reader(settings) as connection:
        assert {t.name: connection.execute(dump_sql(connection, t.name)).fetchall() for t in TABLES} == before
    assert keep_the_lake(settings, now=a_week_on).snapshots_expired <= 1  # nothing left to do but its own


def test_the_cli_says_a_wrong_lake_setting_in_one_line() -> None:
    done = run_cli(
        "sql", "SELECT 1", env=SETTINGS_ENV | {"DE_WAREHOUSE": "ducklake:postgres:dbname=lake password=hunter2"}
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "PGPASSWORD" in lines[0], done.stderr
    assert "hunter2" not in done.stdout + done.stderr


def test_a_write_conflict_is_retried_then_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = WarehouseSettings.from_env(SETTINGS_ENV)
    waits: list[float] = []
    monkeypatch.setattr("de_pipeline.warehouse.connection.time.sleep", waits.append)
    attempts: list[int] = []

    def conflicting() -> int:
        attempts.append(1)
        if len(attempts) < 3:
            raise duckdb.TransactionException("Failed to commit DuckLake transaction.\nTransaction conflict - x")
        return 7

    assert write_conflicts_retried(settings, conflicting) == 7 and len(attempts) == 3

    def always() -> int:
        attempts.append(1)
        raise duckdb.TransactionException("Failed to commit DuckLake transaction.\nTransaction conflict - x")

    attempts.clear()
    waits.clear()
    with pytest.raises(WriteConflictError) as raised:
        write_conflicts_retried(settings, always)
    assert "\n" not in str(raised.value) and "rerun the same days" in str(raised.value)
    # bounded: so many attempts, each wait at most the cap (jittered by up to half)
    assert len(attempts) == WRITE_CONFLICT_ATTEMPTS and len(waits) == WRITE_CONFLICT_ATTEMPTS - 1
    assert max(waits) <= 1.5 * WRITE_CONFLICT_MAX_WAIT_SECONDS and waits[-1] > waits[0]
    file = WarehouseSettings.from_env()
    with pytest.raises(duckdb.TransactionException):  # a DuckDB file has one writer: never a conflict to retry
        write_conflicts_retried(file, always)


@needs_ducklake
def test_an_extension_that_cannot_load_is_named_in_one_line() -> None:
    with duckdb.connect() as connection:
        connection.execute(f"SET custom_extension_repository = 'http://127.0.0.1:{free_port()}'")
        with pytest.raises(ExtensionError) as raised:
            load_extension(connection, "spatial")
    message = str(raised.value)
    assert "\n" not in message and "spatial" in message and duckdb.__version__ in message
