"""The production deployment on a real PostgreSQL: deploy/dagster.yaml and
deploy/workspace.yaml as shipped, with the code server, the daemon and the webserver as
separate processes, as in deploy/docker-compose.yaml and the Helm chart.

One PostgreSQL server (Debian's `initdb`/`pg_ctl`, tests/postgres.py) and one deployment for
the module, pointed at a simulator on 127.0.0.1 that only the code server has the key of.
Each test launches a 10-day partition backfill over GraphQL, as the UI does, and compares
the warehouse with a CLI run of the same days (`de-pipeline backfill`, another DuckDB file,
the same simulator). The second kills the daemon with SIGKILL mid-backfill and starts it
again.

    pytest de_pipeline_tests/test_deploy_postgres.py   # about 3 minutes
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from de_pipeline.simulator import Simulator, SimulatorConfig
from de_pipeline.warehouse.tables import TABLES
from de_pipeline_tests.backfills import (
    SUCCESS,
    Backfill,
    assert_days_materialized,
    assert_instance_config,
    assert_runs_of_at_most_7_days,
    launch_backfill,
    wait_for_backfill,
)
from de_pipeline_tests.conftest import TEST_KEY, TEST_PROVIDER
from de_pipeline_tests.dagster_dev import WORKSPACE_QUERY, DagsterServices, dagster_home_env, skip_under_libfaketime
from de_pipeline_tests.helpers import dump, run_cli
from de_pipeline_tests.postgres import PostgresServer, postgres_or_skip

REPO_ROOT = Path(__file__).resolve().parents[1]
DEPLOY_DIR = REPO_ROOT / "deploy"
BACKFILL_DAYS = 10
MESSAGES_PER_DAY = 300

pytestmark = [pytest.mark.ui, pytest.mark.slow, pytest.mark.timeout(15 * 60)]


# ---- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with postgres_or_skip() as server:
        yield server


@pytest.fixture(scope="module")
def simulator() -> Iterator[Simulator]:
    simulator = Simulator(
        SimulatorConfig(
            api_key=TEST_KEY, provider_id=TEST_PROVIDER, retry_after_seconds=0, messages_per_day=MESSAGES_PER_DAY
        )
    )
    simulator.start()
    yield simulator
    simulator.stop()


def _api_env(simulator: Simulator, duckdb_path: Path) -> dict[str, str]:
    """What the pipeline needs to read `simulator` into `duckdb_path`."""
    return {
        "DE_API_BASE_URL": simulator.base_url,
        "DE_API_KEY": simulator.config.api_key,
        "DE_PROVIDER_ID": simulator.config.provider_id,
        "DE_DUCKDB_PATH": str(duckdb_path),
    }


@pytest.fixture(scope="module")
def services(
    postgres: PostgresServer, simulator: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DagsterServices]:
    """Code server, daemon and webserver on free 127.0.0.1 ports, with a DAGSTER_HOME holding
    deploy/dagster.yaml, pointed at `postgres`."""
    skip_under_libfaketime()
    root = tmp_path_factory.mktemp("deployment")
    env = dagster_home_env(root, DEPLOY_DIR / "dagster.yaml") | postgres.dagster_env()
    deployment = DagsterServices(
        module="de_pipeline.defs.definitions",
        workspace=DEPLOY_DIR / "workspace.yaml",
        cwd=root,  # nothing of the repository's root (its dagster.yaml, workspace.yaml) is read
        env=env,
        code_server_env=_api_env(simulator, root / "warehouse.duckdb"),
        log_dir=root,
    )
    try:
        deployment.start()
        yield deployment
    finally:
        reports = deployment.stop()
    assert all(report.clean for report in reports), f"processes left behind: {reports}"


@pytest.fixture(scope="module")
def cli_warehouse(services: DagsterServices, simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same days as the backfills, from the same simulator, by `de-pipeline backfill` into a
    DuckDB file of its own (no DAGSTER_HOME: in-process, as on a laptop)."""
    backfill_days = _backfill_days(services)
    path = tmp_path_factory.mktemp("cli") / "warehouse.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DE_", "DAGSTER_"))}
    env |= _api_env(simulator, path)
    result = run_cli("backfill", "--start", backfill_days[0], "--end", backfill_days[-1], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return path


def _backfill_days(services: DagsterServices) -> list[str]:
    """The last BACKFILL_DAYS partitions, as the deployment sees them."""
    nodes = services.graphql("{ assetNodes { assetKey { path } partitionKeysByDimension { partitionKeys } } }")
    messages = next(n for n in nodes["assetNodes"] if n["assetKey"]["path"] == ["messages"])
    return messages["partitionKeysByDimension"][0]["partitionKeys"][-BACKFILL_DAYS:]


# ---- tests ---------------------------------------------------------------------------


def test_backfill_on_postgres_equals_a_cli_run(services: DagsterServices, cli_warehouse: Path) -> None:
    # the code location is the gRPC code server, loaded through deploy/workspace.yaml
    entries = services.graphql(WORKSPACE_QUERY)["workspaceOrError"]["locationEntries"]
    assert [(e["name"], e["loadStatus"]) for e in entries] == [("de_pipeline", "LOADED")], entries

    backfill = wait_for_backfill(services, launch_backfill(services, BACKFILL_DAYS))
    assert backfill.status in SUCCESS, backfill.explain(services.log_tail())
    runs = assert_runs_of_at_most_7_days(backfill)
    assert_days_materialized(services, backfill)
    # deploy/dagster.yaml is in force; no two steps of one pool (limit 1) overlapped
    assert_instance_config(services, backfill, runs)
    _assert_schedules_run_by_the_daemon(services)
    _assert_runs_stored_in_postgres(services, backfill)
    _assert_same_tables(services, cli_warehouse)
    _assert_key_nowhere(services)


def test_daemon_killed_mid_backfill_resumes_without_doubling(services: DagsterServices, cli_warehouse: Path) -> None:
    """SIGKILL the daemon (its backfill, run queue and run monitoring threads at once) as soon
    as the backfill's first run exists, while the daemon may still be submitting the second
    or dequeuing the first; start it again: the backfill completes, with each day in one run
    and the tables equal to the CLI run's."""
    seen_at_kill: list[tuple[str, str]] = []

    def kill_at_the_first_run(backfill: Backfill) -> None:
        if backfill.runs and not seen_at_kill:
            services.daemon.kill()
            seen_at_kill.extend((r["runId"][:8], r["status"]) for r in backfill.runs)
            services.daemon.start()

    launched = launch_backfill(services, BACKFILL_DAYS)
    backfill = wait_for_backfill(services, launched, poll_seconds=0.5, while_waiting=kill_at_the_first_run)
    assert seen_at_kill, f"the backfill ended ({backfill.status}) before its first run was seen"
    assert backfill.status in SUCCESS, backfill.explain(services.log_tail())
    # nothing doubled: 7 + 3 days, each day in exactly one run, all successful
    runs = assert_runs_of_at_most_7_days(backfill)
    assert_instance_config(services, backfill, runs)
    _assert_same_tables(services, cli_warehouse)
    _assert_key_nowhere(services)
    print(f"daemon killed when the backfill's runs were {seen_at_kill}")


# ---- checks --------------------------------------------------------------------------


def _assert_schedules_run_by_the_daemon(services: DagsterServices) -> None:
    """daily_refresh is on, and the daemon's scheduler heartbeats (it evaluates the schedules)."""
    data = services.graphql(SCHEDULES_QUERY)
    daemons = {d["daemonType"]: d["healthy"] for d in data["instance"]["daemonHealth"]["allDaemonStatuses"]}
    assert daemons.get("SCHEDULER") and daemons.get("SENSOR"), daemons
    repositories = data["repositoriesOrError"]["nodes"]
    schedules = {s["name"]: s["scheduleState"]["status"] for r in repositories for s in r["schedules"]}
    assert schedules.get("daily_refresh") == "RUNNING", schedules


def _assert_runs_stored_in_postgres(services: DagsterServices, backfill: Backfill) -> None:
    """The runs and their events are in PostgreSQL (not in a SQLite file under DAGSTER_HOME)."""
    stored = {run_id for (run_id,) in _postgres_rows(services, "SELECT run_id FROM runs")}
    assert {r["runId"] for r in backfill.runs} <= stored, stored
    [(events,)] = _postgres_rows(services, "SELECT count(*) FROM event_logs WHERE run_id = ANY(%s)", list(stored))
    assert events > 0
    home = Path(services.daemon.env["DAGSTER_HOME"])
    assert not list(home.rglob("*.db")), f"SQLite storage under DAGSTER_HOME: {list(home.rglob('*.db'))}"


def _postgres_rows(services: DagsterServices, sql: str, *params: object) -> list[tuple]:
    """Rows of a query of the deployment's PostgreSQL database, as its services connect to it."""
    import psycopg2  # from dagster-postgres

    env = services.daemon.env
    connection = psycopg2.connect(
        host=env["DAGSTER_PG_HOST"],
        port=env["DAGSTER_PG_PORT"],
        user=env["DAGSTER_PG_USER"],
        password=env["DAGSTER_PG_PASSWORD"],
        dbname=env["DAGSTER_PG_DB"],
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    finally:
        connection.close()


def _assert_same_tables(services: DagsterServices, cli_warehouse: Path) -> None:
    """Every table of the deployment's warehouse equals the CLI run's, row for row."""
    warehouse = Path(services.code_server.env["DE_DUCKDB_PATH"])
    with duckdb.connect(str(cli_warehouse), read_only=True) as connection:
        per_day = connection.execute("SELECT day, count(*) FROM messages GROUP BY day ORDER BY day").fetchall()
    assert per_day, "the CLI run loaded nothing"
    for table in TABLES:
        ours, theirs = dump(table.name, warehouse), dump(table.name, cli_warehouse)
        assert len(ours) == len(theirs), (table.name, len(ours), len(theirs))
        assert ours == theirs, f"{table.name} differs from the CLI run's"


def _assert_key_nowhere(services: DagsterServices) -> None:
    """The API key is in no service's log, in no event or run stored in PostgreSQL, in no file
    under DAGSTER_HOME (compute logs), and only the code server has it at all."""
    assert "DE_API_KEY" not in services.daemon.env and "DE_API_KEY" not in services.webserver.env
    pattern = f"%{TEST_KEY}%"
    [(leaks,)] = _postgres_rows(
        services,
        "SELECT (SELECT count(*) FROM event_logs WHERE event LIKE %s)"
        " + (SELECT count(*) FROM runs WHERE run_body LIKE %s)",
        pattern,
        pattern,
    )
    assert leaks == 0, f"the API key is in {leaks} stored events or runs"
    for process in services.processes:
        assert TEST_KEY not in process.log_path.read_text(errors="replace"), process.name
    home = Path(services.daemon.env["DAGSTER_HOME"])
    for path in home.rglob("*"):
        if path.is_file():
            assert TEST_KEY.encode() not in path.read_bytes(), path


SCHEDULES_QUERY = """
query Schedules {
  instance { daemonHealth { allDaemonStatuses { daemonType healthy } } }
  repositoriesOrError { ... on RepositoryConnection { nodes { schedules { name scheduleState { status } } } } }
}
"""
