"""Shared fixtures: a clean DE_* environment, a warehouse in tmp_path, simulators on loopback."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from de_pipeline.simulator import Simulator, SimulatorConfig

TEST_KEY = "test-key-5f0c9d-never-print-me"

# Before any test: the developer's own account and Dagster home must not leak in (the
# definitions read the DE_* variables, and bind EnvVar to those set, when they are built).
for _name in [n for n in os.environ if n.startswith(("DE_", "DAGSTER_HOME"))]:
    del os.environ[_name]
TEST_PROVIDER = "provider-under-test"
# Each test file runs on one worker (pytest-xdist, --dist loadfile), in the order collected:
# the longest files go first, so that none of them starts last and decides when the suite ends.
LONGEST_FIRST = (
    "test_ui.py", "test_deploy_postgres.py", "test_instance.py", "test_bi_clients.py", "test_bad_input.py",
    "test_dates.py", "test_accounts.py",
)  # fmt: skip


# `pytest -m quick` (make test-quick), the inner loop: the client, the simulator, the settings,
# the docs and the deployment files, the warehouse's guards and queries, and the pipeline's own
# end-to-end runs (test_pipeline.py), less any test marked slow, ui or browser.
QUICK_FILES = (
    "test_agent_performance.py", "test_aggregates.py", "test_alerts.py", "test_api_client.py",
    "test_catalog.py", "test_check.py", "test_deploy_files.py", "test_docs.py", "test_file_modes.py",
    "test_pipeline.py", "test_request_forms.py", "test_schedule.py",
    "test_secrets_and_sources.py", "test_session.py", "test_simulator.py", "test_tables.py",
    "test_warehouse_guards.py",
)  # fmt: skip
NOT_QUICK = ("slow", "ui", "browser")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: a worker more than the cores. Much of the suite waits (on `dagster dev`'s
    daemon and schedule tick, PostgreSQL, subprocesses, the simulator's latency), and a third
    worker fills those waits: on 2 busy cores, 11 min 50 s against 14 min 46 s with two."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores + 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each file's tests keep their order
    for item in items:
        if item.path.name in QUICK_FILES and not any(item.get_closest_marker(m) for m in NOT_QUICK):
            item.add_marker(pytest.mark.quick)


# What every test runs with, besides a warehouse of its own (a fixture shared by a module
# sets these itself: it starts before clean_environment)
TEST_SETTINGS = {
    "DE_RETRY_BACKOFF_SECONDS": "0.01",
    "DE_MAX_REQUESTS_PER_SECOND": "1000",
    # runs in memory, a second or two quicker each: the tests of the Dagster home itself
    # (test_instance.py, the UI's) and those with the `dagster_home` fixture use one
    "DE_RUN_HISTORY": "off",
    # a developer's .env (as `de-pipeline check --write-env .env` writes it) must not reach
    # the commands the tests run
    "DE_ENV_FILE": "off",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No DE_* variable leaks in from the developer's shell; the warehouse lives in tmp_path."""
    for name in list(os.environ):
        if name.startswith(("DE_", "DAGSTER_HOME")):
            monkeypatch.delenv(name)
    duckdb_path = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("DE_DUCKDB_PATH", str(duckdb_path))
    for name, value in TEST_SETTINGS.items():
        monkeypatch.setenv(name, value)
    return duckdb_path


@pytest.fixture
def start_simulator() -> Iterator[Callable[..., Simulator]]:
    """Start simulators on 127.0.0.1 (keyword arguments go to SimulatorConfig); stops them after."""
    started: list[Simulator] = []

    def start(**config: object) -> Simulator:
        config.setdefault("api_key", TEST_KEY)
        config.setdefault("provider_id", TEST_PROVIDER)
        config.setdefault("retry_after_seconds", 0)
        simulator = Simulator(SimulatorConfig(**config))
        simulator.start()
        started.append(simulator)
        return simulator

    yield start
    for simulator in started:
        simulator.stop()


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME with the repository's dagster.yaml (pools of limit 1, freshness on), as
    a user who sees CLI runs in the UI has; runs then persist in it."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def point_at(monkeypatch: pytest.MonkeyPatch, simulator: Simulator) -> None:
    """Make the pipeline read `simulator` as if it were the real API."""
    monkeypatch.setenv("DE_API_BASE_URL", simulator.base_url)
    monkeypatch.setenv("DE_API_KEY", simulator.config.api_key)
    monkeypatch.setenv("DE_PROVIDER_ID", simulator.config.provider_id)
