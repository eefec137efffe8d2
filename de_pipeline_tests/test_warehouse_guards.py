"""The archive keeps a day's complete copy when the vendor's retention
cuts it, `de-pipeline sql` reads the warehouse and nothing else (and spills only into a
private, bounded folder of its own), killed runs leave no
scratch folders for good, the redaction pattern is checked by the engine that runs it, and
`de-pipeline session` prints no terminal escapes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import orjson
import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

from de_pipeline.api import DAY_MS, RETENTION_DAYS
from de_pipeline.cli import main
from de_pipeline.dashboard.settings import DashboardSettings
from de_pipeline.defs.runner import run_range
from de_pipeline.env import SettingsError
from de_pipeline.orchestration.instance import INSTANCE_CONFIG
from de_pipeline.simulator import ScriptedResponse, Simulator, SimulatorConfig, SyntheticDataset
from de_pipeline.warehouse.archive import archive_file
from de_pipeline.warehouse.connection import reader
from de_pipeline.warehouse.files import HOST, remove_leftovers
from de_pipeline.warehouse.query import QueryError, query_frame
from de_pipeline.warehouse.schema import ensure_schema
from de_pipeline.warehouse.settings import WarehouseSettings
from de_pipeline_tests.conftest import TEST_KEY, TEST_PROVIDER, point_at
from de_pipeline_tests.helpers import busy_day, kill_when_staged, query, served, start_cli, unique_messages


def finished(process: subprocess.Popen, timeout: int = 300) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def archive_dir() -> Path:
    return WarehouseSettings.from_env().archive_dir


def archived_records(path: Path) -> int:
    with duckdb.connect() as connection:
        return connection.execute("SELECT count(*) FROM read_parquet($path)", {"path": str(path)}).fetchone()[0]


def dead_pid() -> int:
    """The pid of a process that has ended and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    return child.pid


def scratch(kind: str, pid: int, name: str = "abcd1234") -> Path:
    """A scratch folder as a process `pid` of this host names it, with a page of chat text."""
    folder = archive_dir() / f".{kind}-{HOST}-{pid}-{name}"
    folder.mkdir(parents=True)
    (folder / "page-0000001.json").write_text('[{"text": "a customer said something"}]')
    return folder


# ---- 4.2: a day cut by the retention keeps its complete archived copy -------------------------


@pytest.mark.dates
def test_a_refetch_cut_by_the_retention_keeps_the_complete_archived_copy(monkeypatch, tmp_path):
    # The day exactly RETENTION_DAYS ago is cut by the retention for the pipeline (which
    # uses the real clock). The simulator's clock starts at midnight, when the whole day was
    # still served, and then moves into the day so that half of it is gone.
    until_midnight = 86_400 - time.time() % 86_400
    if until_midnight < 180:  # both runs must see the same UTC day cut, not one day later
        time.sleep(until_midnight + 1)
    today = datetime.now(UTC).date()
    day = today - timedelta(days=RETENTION_DAYS)
    seed = next(s for s in range(7, 200) if not SyntheticDataset(s).is_outage_day(day))
    clock = {"now": datetime.combine(today, datetime.min.time(), UTC).timestamp()}
    simulator = Simulator(
        SimulatorConfig(
            seed=seed, messages_per_day=400, api_key=TEST_KEY, provider_id=TEST_PROVIDER, retry_after_seconds=0
        ),
        now=lambda: clock["now"],
    )
    simulator.start()
    try:
        point_at(monkeypatch, simulator)
        home = tmp_path / "dagster_home"
        home.mkdir()
        shutil.copy(INSTANCE_CONFIG, home / "dagster.yaml")  # the pools of limit 1, which runs require
        env = {"DE_START_DATE": str(day), "DAGSTER_HOME": str(home)}
        args = ("backfill", "--start", str(day), "--end", str(day))
        full = served(simulator, day, day)
        path = archive_file(archive_dir(), day)

        status, _, err = finished(start_cli(*args, env=env))
        assert status == 0, err[-3000:]
        assert archived_records(path) == len(full) > 0

        times = sorted(r["ts"] for r in full if isinstance(r, dict))
        clock["now"] = times[len(times) // 2] / 1000 + RETENTION_DAYS * DAY_MS / 1000
        cut_ms = int(clock["now"] * 1000) - RETENTION_DAYS * DAY_MS
        partial = simulator.dataset.messages_between(cut_ms, simulator.dataset.day_bounds_ms(day)[1])
        assert 0 < len(partial) < len(full)

        status, _, err = finished(start_cli(*args, env=env))
        assert status == 0, err[-3000:]
    finally:
        simulator.stop()

    assert archived_records(path) == len(full)
    stored = query(f"SELECT count(*) AS n FROM messages WHERE day = '{day}'")
    assert stored.n[0] == len(unique_messages(full))
    warnings = [line for line in err.splitlines() if "WARNING" in line and "kept the archived copy" in line]
    assert len(warnings) == 1, err[-3000:]
    assert str(day) in warnings[0] and f" {len(full)} " in warnings[0] and warnings[0].endswith(f" {len(partial)}")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.get() as instance:  # the runs' instance: the partition's metadata
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("raw_messages"), asset_partitions=[str(day)]), limit=1
        ).records
    metadata = {k: v.value for k, v in records[0].asset_materialization.metadata.items()}
    assert metadata["kept_archived_copy"] is True and metadata["partial_retention"] is True
    assert (metadata["records"], metadata["records_refetched"]) == (len(full), len(partial))


# ---- 4.7: `de-pipeline sql` reads the warehouse and nothing else ------------------------------


@pytest.fixture
def small_warehouse(clean_environment: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DE_READER_COPY_PATH", "off")  # `sql` reads this file, and says nothing more
    connection = duckdb.connect(str(clean_environment))
    connection.execute("CREATE TABLE messages AS SELECT range AS n FROM range(3)")
    connection.close()
    return clean_environment


@pytest.mark.parametrize(
    ("statement", "refusal"),
    [
        ("COPY (SELECT * FROM messages) TO '{tmp}/copied.csv'", "COPY writes files"),
        ("SELECT * FROM read_text('/etc/passwd')", "disabled by configuration"),
        (
            "ATTACH '{tmp}/other.duckdb' AS other; CREATE TABLE other.stolen AS SELECT * FROM messages",
            "ATTACH writes files",
        ),
        ("INSTALL httpfs", "disabled by configuration"),
        ("SET memory_limit = '8GB'", "configuration has been locked"),
    ],
    ids=["copy-to", "read-text", "attach-and-write", "install", "set"],
)
def test_sql_refuses_everything_but_reading_the_warehouse(small_warehouse, tmp_path, statement, refusal):
    before = set(tmp_path.iterdir())
    out = start_cli("sql", statement.format(tmp=tmp_path))
    status, stdout, stderr = finished(out, timeout=120)
    assert status == 1, (stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("de-pipeline sql: "), stderr
    assert refusal in lines[0] and "Traceback" not in stderr
    assert "root:" not in stdout
    assert set(tmp_path.iterdir()) == before  # nor a spill folder beside the warehouse

    status, stdout, stderr = finished(start_cli("sql", "SELECT count(*) AS n FROM messages", "--format", "csv"))
    assert status == 0 and stdout.split() == ["n", "3"], stderr


@pytest.fixture
def temp_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system's temp folder ($TMPDIR) of this test, and of the processes it starts."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def spill_folders(temp_folder: Path) -> list[Path]:
    return sorted(temp_folder.glob(".spill-*"))


def test_sql_spills_into_a_private_bounded_folder_that_no_statement_writes_to(small_warehouse, temp_folder):
    settings = WarehouseSettings.from_env()
    with reader(settings, sealed=True) as connection:
        folder, limit = connection.execute(
            "SELECT current_setting('temp_directory'), current_setting('max_temp_directory_size')"
        ).fetchone()
        assert limit == "1.0 GiB"  # DE_READER_SPILL_LIMIT's default, not 90% of the disk
        assert [Path(folder)] == spill_folders(temp_folder)
        assert Path(folder).stat().st_mode & 0o777 == 0o700
        # DuckDB lets a sealed query into its own temp folder: the statements that write are refused
        for statement in (
            f"COPY (SELECT * FROM messages) TO '{folder}/out.csv'",
            f"EXPORT DATABASE '{folder}/exported'",
            f"ATTACH '{folder}/other.duckdb' AS other (READ_WRITE)",
        ):
            with pytest.raises(QueryError, match="writes files, which this read-only query may not"):
                query_frame(connection, statement)
        assert list(Path(folder).iterdir()) == []
    assert spill_folders(temp_folder) == []  # removed with the connection


def test_with_no_spill_sql_can_name_no_folder_at_all(small_warehouse, temp_folder, monkeypatch):
    monkeypatch.setenv("DE_READER_SPILL_LIMIT", "0")
    with reader(WarehouseSettings.from_env(), sealed=True) as connection:
        assert connection.execute("SELECT current_setting('temp_directory')").fetchone() == ("",)
        assert spill_folders(temp_folder) == []
        for statement in (f"SELECT * FROM read_csv('{temp_folder}/*.csv')", f"SELECT * FROM glob('{temp_folder}/*')"):
            with pytest.raises(QueryError, match="disabled by configuration"):
                query_frame(connection, statement)


@pytest.mark.skipif(
    duckdb.__version__.startswith("1."),
    reason="duckdb 1.5 reports a full spill folder as a plain out-of-memory error (no max_temp_directory_size "
    "in it), so the line names DE_DUCKDB_MEMORY_LIMIT, not DE_READER_SPILL_LIMIT",
)
def test_a_query_past_its_spill_limit_is_one_line_and_leaves_no_folder(small_warehouse, temp_folder):
    sort = "SELECT count(*) FROM (SELECT md5(range::VARCHAR) AS s FROM range(3000000) ORDER BY s)"
    env = {"DE_DUCKDB_MEMORY_LIMIT": "20MB", "DE_READER_SPILL_LIMIT": "5MB"}
    status, stdout, stderr = finished(start_cli("sql", sort, env=env), timeout=120)
    assert status == 1, (stdout, stderr)
    (line,) = stderr.strip().splitlines()
    assert line.startswith("de-pipeline sql: the query spilled more than DE_READER_SPILL_LIMIT=5MB"), line
    assert "failed to offload" in line  # DuckDB's words for its temp folder's cap
    assert spill_folders(temp_folder) == []
    with pytest.raises(SettingsError, match="DE_READER_SPILL_LIMIT='lots' must look like 1GiB"):
        WarehouseSettings.from_env({"DE_READER_SPILL_LIMIT": "lots"})


def test_the_spill_folder_of_a_killed_sql_is_removed_by_the_next(small_warehouse, temp_folder):
    endless = "SELECT count(*) FROM range(1000000000000) WHERE md5(range::VARCHAR) = ''"
    process = start_cli("sql", endless)
    try:
        deadline = time.monotonic() + 60
        while not spill_folders(temp_folder) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        (left,) = spill_folders(temp_folder)
        assert f"-{process.pid}-" in left.name
    finally:
        process.kill()  # SIGKILL: no cleanup runs
        process.wait(timeout=60)
    assert left.exists()
    status, stdout, stderr = finished(start_cli("sql", "SELECT count(*) AS n FROM messages", "--format", "csv"))
    assert status == 0 and stdout.split() == ["n", "3"], stderr
    assert spill_folders(temp_folder) == []


# ---- 4.8: scratch folders of killed runs are removed by the next run --------------------------


def test_the_next_run_removes_scratch_folders_of_dead_processes_only(start_simulator, monkeypatch, capfd):
    simulator = start_simulator(messages_per_day=100)
    point_at(monkeypatch, simulator)
    day = busy_day(simulator.config.seed)
    pid = dead_pid()
    dead = [scratch("staging", pid), scratch("journey", pid)]
    live_process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        live = scratch("staging", live_process.pid)
        unknown = archive_dir() / ".staging-k3j4h5g6"  # as an older version named it
        unknown.mkdir()
        elsewhere = archive_dir() / f".staging-another-host-{pid}-x1y2z3w4"
        elsewhere.mkdir()

        run_range(day, day)
        assert live_process.poll() is None
    finally:
        live_process.kill()
        live_process.wait()

    assert not any(folder.exists() for folder in dead)
    assert live.exists() and unknown.exists() and elsewhere.exists()
    lines = [line for line in capfd.readouterr().err.splitlines() if "scratch folders in" in line]
    assert len(lines) == 1, lines
    assert "removed 2" in lines[0] and all(folder.name in lines[0] for folder in dead)
    assert all(folder.name in lines[0] for folder in (live, unknown, elsewhere))
    assert archived_records(archive_file(archive_dir(), day)) == len(served(simulator, day, day))


def test_a_folder_name_with_a_final_newline_is_no_scratch_folder_of_ours():
    """The name check used `$`, which matches before a final newline: a folder our runs never
    make was taken for a dead process's scratch folder, and removed."""
    archive_dir().mkdir(parents=True)
    odd = archive_dir() / f".staging-{HOST}-{dead_pid()}-abcd1234\n"
    odd.mkdir()
    leftovers = remove_leftovers(archive_dir())
    assert odd.exists() and leftovers.unknown == (odd.name,) and not leftovers.removed


@pytest.mark.slow
def test_a_fetch_killed_midway_leaves_a_staging_folder_that_the_next_run_removes(start_simulator, monkeypatch, capfd):
    # small pages, slowly: the fetch stages pages for seconds before the day's file is written
    simulator = start_simulator(messages_per_day=3000, max_page_size=50)
    point_at(monkeypatch, simulator)
    day = busy_day(simulator.config.seed)
    process = start_cli("backfill", "--start", str(day), "--end", str(day), env={"DE_MAX_REQUESTS_PER_SECOND": "20"})
    kill_when_staged(process, archive_dir(), pages=1, timeout=240)
    left = list(archive_dir().glob(".staging-*"))
    assert len(left) == 1 and f"-{process.pid}-" in left[0].name
    assert list(left[0].glob("*.json"))  # staged pages

    capfd.readouterr()
    monkeypatch.setenv("DE_MAX_REQUESTS_PER_SECOND", "1000")
    run_range(day, day)
    assert not list(archive_dir().glob(".staging-*"))
    lines = [line for line in capfd.readouterr().err.splitlines() if "scratch folders in" in line]
    assert len(lines) == 1 and "removed 1" in lines[0] and left[0].name in lines[0], lines
    assert archived_records(archive_file(archive_dir(), day)) == len(served(simulator, day, day))


# ---- 4.9b: DE_REDACTION_PATTERN is checked by DuckDB's RE2 ------------------------------------


def test_a_redaction_pattern_re2_cannot_run_is_refused_when_settings_are_read():
    look_behind = r"(?<=x)\[LABEL\]"
    with pytest.raises(SettingsError) as refused:
        WarehouseSettings.from_env({"DE_REDACTION_PATTERN": look_behind})
    text = str(refused.value)
    assert "DE_REDACTION_PATTERN" in text and "invalid perl operator" in text and "\n" not in text

    status, _, stderr = finished(start_cli("sql", "SELECT 1", env={"DE_REDACTION_PATTERN": look_behind}))
    lines = stderr.strip().splitlines()
    assert status == 1 and len(lines) == 1 and "DE_REDACTION_PATTERN" in lines[0], stderr
    assert "Traceback" not in stderr
    assert WarehouseSettings.from_env({"DE_REDACTION_PATTERN": r"\[LABEL\]"}).placeholder_pattern == r"\[LABEL\]"


# ---- 4.10: `de-pipeline session` shows control characters, never sends them -------------------


def test_session_prints_control_characters_escaped(start_simulator, monkeypatch, capsys):
    simulator = start_simulator(messages_per_day=100)
    point_at(monkeypatch, simulator)
    day = busy_day(simulator.config.seed)
    record = next(r for r in served(simulator, day, day) if isinstance(r, dict) and r.get("customersessionid"))
    hostile = record | {
        "text": "clear\x1b[2Jbell\x07first line\nsecond line",
        "sendername": "Eve\x1b]0;owned\x07",
        "sessionchannel": "web\x1b[31m",
    }
    simulator.script([ScriptedResponse(200, body=orjson.dumps([hostile])), ScriptedResponse(200, body=b"[]")])

    assert main(["session", record["customersessionid"], "--start", str(day), "--end", str(day)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    line = next(line for line in out.splitlines() if "clear" in line)
    assert line.endswith(r"clear\x1b[2Jbell\x07first line\nsecond line")
    assert r"Eve\x1b]0;owned\x07" in line
    assert r"web\x1b[31m" in out


# ---- each output path has a place of its own --------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "inner", "outer"),
    [
        ({"DE_READER_COPY_PATH": "{archive}/day=2026-01-05/data.parquet"}, "DE_READER_COPY_PATH", "DE_ARCHIVE_DIR"),
        ({"DE_ARCHIVE_DIR": "{tmp}"}, "DE_DUCKDB_PATH", "DE_ARCHIVE_DIR"),
        ({"DE_ARCHIVE_DIR": "{duckdb}"}, "DE_DUCKDB_PATH", "DE_ARCHIVE_DIR"),
        ({"DE_ARCHIVE_DIR": "{tmp}/readers.duckdb/archive", "DE_READER_COPY_PATH": "{tmp}/readers.duckdb"},
         "DE_ARCHIVE_DIR", "DE_READER_COPY_PATH"),
        ({"DE_DASHBOARD_PATH": "{archive}/dashboard.html"}, "DE_DASHBOARD_PATH", "DE_ARCHIVE_DIR"),
    ],
    ids=["readers-copy-in-archive", "warehouse-in-archive", "archive-is-warehouse", "archive-in-readers-copy",
         "dashboard-in-archive"],
)  # fmt: skip
def test_an_output_path_inside_another_is_refused_naming_both(clean_environment, tmp_path, settings, inner, outer):
    archive = clean_environment.with_name(clean_environment.stem + "_archive")
    places = {"archive": archive, "tmp": tmp_path, "duckdb": clean_environment}
    environ = dict(os.environ) | {name: value.format(**places) for name, value in settings.items()}
    with pytest.raises(SettingsError) as refused:
        DashboardSettings.from_env(WarehouseSettings.from_env(environ), environ)
    text = str(refused.value)
    assert text.startswith(f"{inner}={environ.get(inner, clean_environment)} ") and f" {outer}=" in text, text
    assert "\n" not in text


def test_publish_refuses_a_readers_copy_that_would_overwrite_a_raw_day(clean_environment):
    """Such a copy was accepted, and publishing it replaced the day's archive file."""
    with duckdb.connect(str(clean_environment)) as connection:
        ensure_schema(connection)
    raw_day = archive_file(archive_dir(), datetime(2026, 1, 5).date())
    raw_day.parent.mkdir(parents=True)
    raw_day.write_bytes(b"PAR1 the raw day PAR1")
    status, stdout, stderr = finished(start_cli("publish", env={"DE_READER_COPY_PATH": str(raw_day)}), timeout=120)
    assert status == 1 and stderr.count("\n") == 1, (stdout, stderr)
    assert f"DE_READER_COPY_PATH={raw_day} lies inside DE_ARCHIVE_DIR=" in stderr
    assert raw_day.read_bytes() == b"PAR1 the raw day PAR1"
