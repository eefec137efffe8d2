"""Issue #13, section 4: `de-pipeline sql` reads the warehouse and nothing else, the
redaction pattern is checked by the engine that runs it, and `de-pipeline session` prints
no terminal escapes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import orjson
import pytest

from de_pipeline.api.simulator import ScriptedResponse
from de_pipeline.cli import main
from de_pipeline.env import SettingsError
from de_pipeline.warehouse.settings import WarehouseSettings
from de_pipeline_tests.conftest import point_at
from de_pipeline_tests.helpers import busy_day, served


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "de_pipeline.cli", *args],
        env=dict(os.environ) | (env or {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen, timeout: int = 300) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


# ---- 4.7: `de-pipeline sql` reads the warehouse and nothing else ------------------------------


@pytest.fixture
def small_warehouse(clean_environment: Path) -> Path:
    connection = duckdb.connect(str(clean_environment))
    connection.execute("CREATE TABLE messages AS SELECT range AS n FROM range(3)")
    connection.close()
    return clean_environment


@pytest.mark.parametrize(
    ("statement", "refusal"),
    [
        ("COPY (SELECT * FROM messages) TO '{tmp}/copied.csv'", "disabled by configuration"),
        ("SELECT * FROM read_text('/etc/passwd')", "disabled by configuration"),
        ("ATTACH '{tmp}/other.duckdb' AS other; CREATE TABLE other.stolen AS SELECT * FROM messages",
         "disabled by configuration"),
        ("INSTALL httpfs", "disabled by configuration"),
        ("SET memory_limit = '8GB'", "configuration has been locked"),
    ],
    ids=["copy-to", "read-text", "attach-and-write", "install", "set"],
)
def test_sql_refuses_everything_but_reading_the_warehouse(small_warehouse, tmp_path, statement, refusal):
    before = set(tmp_path.iterdir())
    out = cli("sql", statement.format(tmp=tmp_path))
    status, stdout, stderr = finished(out, timeout=120)
    assert status == 1, (stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("de-pipeline sql: "), stderr
    assert refusal in lines[0] and "Traceback" not in stderr
    assert "root:" not in stdout
    assert {p.name for p in set(tmp_path.iterdir()) - before} <= {small_warehouse.name + ".tmp"}

    status, stdout, stderr = finished(cli("sql", "SELECT count(*) AS n FROM messages", "--format", "csv"))
    assert status == 0 and stdout.split() == ["n", "3"], stderr


# ---- 4.9b: DE_REDACTION_PATTERN is checked by DuckDB's RE2 ------------------------------------


def test_a_redaction_pattern_re2_cannot_run_is_refused_when_settings_are_read():
    look_behind = r"(?<=x)\[LABEL\]"
    with pytest.raises(SettingsError) as refused:
        WarehouseSettings.from_env({"DE_REDACTION_PATTERN": look_behind})
    text = str(refused.value)
    assert "DE_REDACTION_PATTERN" in text and "invalid perl operator" in text and "\n" not in text

    status, _, stderr = finished(cli("sql", "SELECT 1", env={"DE_REDACTION_PATTERN": look_behind}))
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
