"""The files the pipeline shares take the mode of a new file under the process's umask:
not mkstemp's 0600 (the dashboard was unreadable for the team) and not a fixed 0644."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from de_pipeline.dashboard.settings import DashboardSettings
from de_pipeline.defs.runner import run_range
from de_pipeline.warehouse.archive import archive_file
from de_pipeline.warehouse.export import export_table
from de_pipeline.warehouse.files import current_umask
from de_pipeline.warehouse.provenance import ARCHIVE_SOURCE_FILE
from de_pipeline.warehouse.settings import WarehouseSettings
from de_pipeline_tests.conftest import point_at
from de_pipeline_tests.helpers import busy_day


@pytest.fixture(params=[0o022, 0o077], ids=["umask-022", "umask-077"])
def umask(request: pytest.FixtureRequest) -> int:
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_shared_files_follow_the_umask(umask, start_simulator, monkeypatch, tmp_path):
    simulator = start_simulator(messages_per_day=100)
    point_at(monkeypatch, simulator)
    day = busy_day(simulator.config.seed)
    assert current_umask() == umask  # read without setting it

    run_range(day, day)  # archives, loads, writes the dashboard, publishes the readers' copy
    settings = WarehouseSettings.from_env()
    exported = export_table(settings, "sentiment_trends", tmp_path / "export", "csv")

    readable = 0o666 & ~umask  # 0644 or 0600
    assert mode(DashboardSettings.from_env(settings).path) == readable
    assert mode(settings.archive_dir / ARCHIVE_SOURCE_FILE) == readable
    assert mode(archive_file(settings.archive_dir, day)) == readable
    assert [mode(path) for path in exported.directory.glob("day=*/data.csv")] == [readable]
    # the readers' copy is read-only on disk as well (docs/readers-copy.md): 0444 or 0400
    assert mode(settings.reader_copy_path) == readable & ~0o222
