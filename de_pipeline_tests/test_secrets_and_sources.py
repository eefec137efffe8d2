"""The API key never leaks; simulated and real data never mix; `sql` under a held lock is
one clear line."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance

from de_pipeline.api.settings import ApiSettings
from de_pipeline.defs.runner import RunFailedError, run_range
from de_pipeline.env import SettingsError
from de_pipeline.simulator import ScriptedResponse
from de_pipeline.warehouse.provenance import ARCHIVE_SOURCE_FILE
from de_pipeline.warehouse.settings import WarehouseSettings
from de_pipeline_tests.conftest import TEST_PROVIDER, point_at
from de_pipeline_tests.helpers import BUSY, busy_day, dump, query, run_cli, served, unique_messages

# every 8-character piece holds a letter that is not hex, so no run id or hash can match one
SECRET = "sk-SECRET-9b1f-xq7-do-not-leak-zz"


DAY = busy_day(7, 11)  # the seeds these tests use


def key_pieces(text: str) -> list[str]:
    """The key, or any 8-character piece of it, found in `text`."""
    pieces = {SECRET[i : i + 8] for i in range(len(SECRET) - 7)}
    return sorted(piece for piece in pieces if piece in text)


def key_pieces_in_bytes(data: bytes) -> list[str]:
    return key_pieces(data.decode("latin-1"))


def archive_dir() -> Path:
    return WarehouseSettings.from_env().archive_dir


# ---- the API key ------------------------------------------------------------------------------


def echo() -> bytes:
    """A non-JSON body that echoes the key where the 120-character preview cuts it: 10
    characters of the key before the cut, the rest after."""
    body = "x" * 95 + f" invalid token {SECRET} for this account"
    assert body.index(SECRET) == 110
    return body.encode()


def test_the_api_key_never_appears_anywhere(start_simulator, monkeypatch, dagster_home, caplog, capfd, tmp_path):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DE_MAX_RETRIES", "2")
    monkeypatch.setenv("DE_MAX_IN_FLIGHT", "1")  # the scripted answers come in order, to one window
    simulator = start_simulator(api_key=SECRET, messages_per_day=60)
    point_at(monkeypatch, simulator)
    assert os.environ["DE_API_KEY"] == SECRET

    # (a) a successful backfill, with debug logs
    results = run_range(DAY - timedelta(days=1), DAY, log_level="DEBUG")
    assert results and query("SELECT count(*) AS n FROM messages").n[0] >= 2 * BUSY

    # (b) failures whose answers carry the key
    failures = {
        "500 until retries run out": (
            [ScriptedResponse(500, body=f'{{"error":"internal error for key {SECRET}"}}'.encode())] * 3,
            "gave up after 3 attempts",
        ),
        "401 echoing the key": (
            [ScriptedResponse(401, body=f'{{"error":"bad key {SECRET}"}}'.encode())],
            "the API key was refused (HTTP 401)",
        ),
        "non-JSON body echoing the key": (
            [ScriptedResponse(200, body=echo(), headers={"Content-Type": "text/plain"})],
            "the body is not valid JSON",
        ),
    }
    errors = []
    for name, (responses, expected) in failures.items():
        simulator.script(responses)
        with pytest.raises(RunFailedError) as failure:
            run_range(DAY, DAY, log_level="DEBUG")
        assert expected in str(failure.value), (name, str(failure.value))
        errors.append(str(failure.value))
    assert "server said: bad key ***" in errors[1]  # the key was there, and was masked
    assert "invalid token ***" in errors[2]  # masked before the preview was cut

    # and through the command line, in another process
    simulator.script([ScriptedResponse(200, body=echo())])
    seen = len(simulator.requests)
    out = run_cli("backfill", "--start", str(DAY), "--end", str(DAY))
    assert out.returncode == 1 and "the body is not valid JSON" in out.stderr, out.stderr[-2000:]
    assert not key_pieces(out.stdout + out.stderr), "the CLI printed the API key"
    # the simulator checks the key before answering: the CLI really sent it
    assert [r.status for r in simulator.requests[seen:]] == [200]

    # everything the runs left behind
    leaks: dict[str, list[str]] = {}

    def check(where: str, found: list[str]) -> None:
        if found:
            leaks[where] = found[:3]

    captured = capfd.readouterr()
    assert "HTTP 500" in captured.err  # the capture holds the run logs (retry warnings)
    check("captured stdout/stderr", key_pieces(captured.out + captured.err))
    check("caplog", key_pieces(caplog.text + "\n".join(str(r.args) for r in caplog.records)))
    check("RunFailedError messages", key_pieces("\n".join(errors)))

    # every file the test made: DAGSTER_HOME (run storage, event logs), the archive, DuckDB
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" and dagster_home in p.parents for p in files), "no run storage"
    assert any(p.suffix == ".parquet" and archive_dir() in p.parents for p in files), "no archive"
    assert Path(os.environ["DE_DUCKDB_PATH"]) in files
    for path in files:
        check(str(path.relative_to(tmp_path)), key_pieces_in_bytes(path.read_bytes()))
        if path.suffix == ".parquet":  # compressed: look at the values too
            rows = duckdb.sql(f"SELECT * FROM read_parquet('{path}')").df()
            check(f"{path.relative_to(tmp_path)} values", key_pieces(rows.to_csv()))
    with DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert len(runs) == 5  # 1 good + 3 failed in process, 1 failed from the CLI
        assert sum(run.is_failure for run in runs) == 4
        for run in runs:
            check(f"run {run.run_id} config/tags", key_pieces(repr(run.run_config) + repr(run.tags)))
            logs = instance.all_logs(run.run_id)
            assert logs
            check(f"run {run.run_id} event log", key_pieces("\n".join(repr(entry) for entry in logs)))

    tables = query("SELECT table_name FROM information_schema.tables").table_name
    assert "messages" in set(tables)
    for name in tables:  # values are compressed in the file: look at them as text too
        check(f"table {name}", key_pieces(query(f'SELECT * FROM "{name}"').to_csv()))

    assert not leaks, f"the API key leaked into: {leaks}"


def real_api(base_url: str, **more: str) -> dict[str, str]:
    return {"DE_API_BASE_URL": base_url, "DE_API_KEY": SECRET, "DE_PROVIDER_ID": TEST_PROVIDER} | more


@pytest.mark.parametrize(
    "base_url", ["http://api.example.com", "http://10.1.2.3:8080/", "http://[2001:db8::1]", "http://127.example.com"]
)
def test_plain_http_to_another_machine_is_refused(base_url):
    with pytest.raises(SettingsError) as failure:
        ApiSettings.from_env(real_api(base_url))
    text = str(failure.value)
    assert "DE_API_BASE_URL" in text and "DE_ALLOW_INSECURE_HTTP=1" in text and "https" in text
    assert not key_pieces(text)


@pytest.mark.parametrize(
    "base_url", ["https://api.example.com", "http://127.0.0.1:8765", "http://127.3.2.1", "http://localhost:80",
                 "http://LocalHost", "http://[::1]:8080"],
)  # fmt: skip
def test_https_and_loopback_http_need_no_flag_and_say_nothing(base_url, caplog):
    settings = ApiSettings.from_env(real_api(base_url))
    assert settings is not None and settings.base_url == base_url.rstrip("/")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_plain_http_allowed_by_the_flag_is_warned_about_once(caplog):
    caplog.set_level(logging.DEBUG)
    base_url = "http://insecure-but-allowed.example.com:8080"  # no other test warns about it
    for _ in range(3):
        settings = ApiSettings.from_env(real_api(base_url, DE_ALLOW_INSECURE_HTTP="1"))
        assert settings is not None and settings.base_url == base_url
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert base_url in warnings[0] and "unencrypted" in warnings[0]
    assert not key_pieces(caplog.text)


# ---- simulated and real data never mix --------------------------------------------------------


def archive_snapshot() -> dict[str, tuple[bytes, int | None]]:
    """Every archive file by bytes; the data files also by mtime (the marker is rewritten)."""
    return {
        str(p.relative_to(archive_dir())): (p.read_bytes(), p.stat().st_mtime_ns if p.suffix == ".parquet" else None)
        for p in sorted(archive_dir().rglob("*"))
        if p.is_file()
    }


def warehouse_source() -> str:
    return query("SELECT value FROM warehouse_meta WHERE key = 'source'").value[0]


def simulated_flags(results) -> list[object]:
    return [
        m.metadata["simulated"].value
        for result in results
        for m in result.asset_materializations_for_node("raw_messages")
        if m.partition == DAY.isoformat()
    ]


@pytest.fixture
def simulated_day(monkeypatch):
    """DAY materialised from the embedded simulator (no DE_API_BASE_URL)."""
    monkeypatch.setenv("DE_SIM_MESSAGES_PER_DAY", "200")
    results = run_range(DAY, DAY)
    assert simulated_flags(results) == [True]
    assert warehouse_source() == "embedded simulator"
    assert (archive_dir() / ARCHIVE_SOURCE_FILE).read_text().strip() == "embedded simulator"
    stored = dump("messages")
    assert len(stored) >= BUSY
    return stored


def test_a_real_api_does_not_write_over_simulated_data(simulated_day, start_simulator, monkeypatch):
    archive_before = archive_snapshot()
    real = start_simulator(messages_per_day=60, seed=11)
    point_at(monkeypatch, real)
    label = f"{real.base_url} provider={TEST_PROVIDER}"

    with pytest.raises(RunFailedError) as failure:
        run_range(DAY, DAY)

    text = str(failure.value)
    # the archive's marker is checked first, before anything is fetched
    assert "raw_messages:" in text and f"the raw archive {archive_dir()}" in text, text
    assert "'embedded simulator'" in text and f"'{label}'" in text, text
    assert "DE_ALLOW_SOURCE_CHANGE=1" in text, text
    assert "\n" not in text and "Traceback" not in text
    assert real.requests == []  # nothing was fetched
    assert dump("messages") == simulated_day
    assert archive_snapshot() == archive_before
    assert warehouse_source() == "embedded simulator"

    # the explicit override writes, and the warehouse now says where its data came from
    monkeypatch.setenv("DE_ALLOW_SOURCE_CHANGE", "1")
    results = run_range(DAY, DAY)
    assert simulated_flags(results) == [False]
    assert warehouse_source() == label
    assert (archive_dir() / ARCHIVE_SOURCE_FILE).read_text().strip() == label
    expected = unique_messages(served(real, DAY, DAY))
    stored = query("SELECT text FROM messages")
    assert len(stored) == len(expected) > 0 and set(stored.text) == set(expected.text)


def test_the_warehouse_refuses_another_source_even_with_a_fresh_archive(
    simulated_day, start_simulator, monkeypatch, tmp_path
):
    """A new DE_ARCHIVE_DIR has no marker, so the warehouse's own record must stop the run."""
    monkeypatch.setenv("DE_ARCHIVE_DIR", str(tmp_path / "fresh_archive"))
    real = start_simulator(messages_per_day=60, seed=11)
    point_at(monkeypatch, real)

    with pytest.raises(RunFailedError) as failure:
        run_range(DAY, DAY)

    text = str(failure.value)
    assert "messages:" in text and f"the warehouse {os.environ['DE_DUCKDB_PATH']}" in text, text
    assert "'embedded simulator'" in text and f"'{real.base_url} provider={TEST_PROVIDER}'" in text, text
    assert "DE_ALLOW_SOURCE_CHANGE=1" in text and "Traceback" not in text
    assert dump("messages") == simulated_day
    assert warehouse_source() == "embedded simulator"


# ---- `de-pipeline sql` while another process holds the write lock ----------------------------


def test_sql_while_the_warehouse_is_locked_is_one_clear_line(start_simulator, monkeypatch):
    simulator = start_simulator(messages_per_day=50)
    point_at(monkeypatch, simulator)
    run_range(DAY, DAY)
    before = dump("messages")
    assert len(before) >= BUSY
    path = os.environ["DE_DUCKDB_PATH"]
    env = {"DE_LOCK_TIMEOUT_SECONDS": "1"}

    holder = duckdb.connect(path)  # read-write, held as a long write would
    try:
        holder.execute("SELECT count(*) FROM messages").fetchone()
        locked = run_cli("sql", "--live", "SELECT count(*) FROM messages", env=env)
        copy = run_cli("sql", "SELECT count(*) AS n FROM messages", "--format", "csv", env=env)
    finally:
        holder.close()
    assert copy.stdout.split() == ["n", str(len(before))], copy.stderr[-2000:]  # the readers' copy is never locked

    lines = locked.stderr.strip().splitlines()
    assert locked.returncode == 1, locked.stderr[-2000:]
    assert len(lines) == 1, locked.stderr[-2000:]
    assert lines[0].startswith("de-pipeline sql: ") and "is locked by another process" in lines[0]
    assert "DE_LOCK_TIMEOUT_SECONDS" in lines[0] and "Traceback" not in locked.stderr
    assert locked.stdout == ""

    free = run_cli("sql", "--live", "SELECT count(*) AS n FROM messages", "--format", "csv", env=env)
    assert free.returncode == 0, free.stderr[-2000:]
    assert free.stdout.split() == ["n", str(len(before))]
    assert dump("messages") == before
