"""Issue #13, section 4: the redaction pattern is checked by the engine that runs it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from de_pipeline.env import SettingsError
from de_pipeline.warehouse.settings import WarehouseSettings


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
