"""The Dagster instance of CLI runs: two runs in one process never deadlock on logging, two
first runs at once never break a new DAGSTER_HOME, and a home they broke is repaired."""

from __future__ import annotations

import io
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, job, op

from de_pipeline.cli import main
from de_pipeline.defs.runner import build_instance
from de_pipeline.orchestration.instance import _PRE_SQLALCHEMY_2_STAMP, INSTANCE_CONFIG, open_instance
from de_pipeline_tests.conftest import point_at
from de_pipeline_tests.helpers import dump, recent_days, served, start_cli, unique_messages

REPO = Path(__file__).resolve().parents[1]


@op
def one() -> int:
    return 1


@job
def tiny() -> None:
    one()


def stamps(home: Path) -> list[str]:
    with closing(sqlite3.connect(home / "history" / "runs.db")) as db:
        return [row[0] for row in db.execute("SELECT version_num FROM alembic_version")]


def test_a_run_starts_while_another_thread_is_inside_a_log_handler(dagster_home):
    """A fetch thread inside a log handler (holding its lock) must not stop a build run from
    starting: Dagster's dictConfig at run start waited for every handler of the process."""
    handler = logging.StreamHandler(io.StringIO())  # any handler of the process, e.g. a running run's
    inside, leave = threading.Event(), threading.Event()

    def emitting() -> None:
        with handler.lock:
            inside.set()
            leave.wait(120)

    holder = threading.Thread(target=emitting)
    holder.start()
    assert inside.wait(10)
    outcome: dict[str, bool] = {}

    def build_run() -> None:
        with build_instance() as instance:  # as a backfill's build thread opens it
            outcome["success"] = tiny.execute_in_process(instance=instance).success

    builder = threading.Thread(target=build_run, daemon=True)
    builder.start()
    builder.join(timeout=90)
    ran_while_held = not builder.is_alive()
    leave.set()  # on failure, let the stuck run go on, so the session's logging is not left locked
    holder.join()
    builder.join(timeout=90)
    assert ran_while_held, "the run waited for another thread's log handler (logging reconfigured at run start)"
    assert outcome == {"success": True}


def test_a_home_that_two_first_runs_broke_is_repaired_with_a_line(dagster_home, capsys):
    with open_instance() as instance:
        assert tiny.execute_in_process(instance=instance).success
    with closing(sqlite3.connect(dagster_home / "history" / "runs.db")) as db, db:
        db.execute("INSERT INTO alembic_version VALUES (?)", (_PRE_SQLALCHEMY_2_STAMP,))
    with pytest.raises(Exception, match="more than one head"):  # the break, as Dagster meets it
        with DagsterInstance.get() as instance:
            tiny.execute_in_process(instance=instance)

    with open_instance() as instance:
        assert tiny.execute_in_process(instance=instance).success
    assert len(stamps(dagster_home)) == 1 and _PRE_SQLALCHEMY_2_STAMP not in stamps(dagster_home)
    assert "repaired" in capsys.readouterr().out


def test_a_home_with_other_doubled_stamps_is_named_not_touched(dagster_home):
    with open_instance():
        pass
    with closing(sqlite3.connect(dagster_home / "history" / "runs.db")) as db, db:
        db.execute("INSERT INTO alembic_version VALUES ('0123456789ab')")
    before = stamps(dagster_home)
    with pytest.raises(Exception, match=r"runs\.db holds the alembic revisions .*0123456789ab.*move it aside"):
        with open_instance():
            pass
    assert stamps(dagster_home) == before


FIRST_RUN = """
import sys, time
from dagster import job, op
from de_pipeline.orchestration.instance import open_instance

@op
def one() -> int:
    return 1

@job
def tiny() -> None:
    one()

time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
with open_instance() as instance:
    sys.exit(0 if tiny.execute_in_process(instance=instance).success else 3)
"""


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(3))
def test_first_runs_at_once_on_a_fresh_home_all_succeed(tmp_path, round_):
    """Three processes open one new home at the same moment (Dagster alone broke it in about
    one round of three: "alembic_version has more than one head")."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    env = dict(os.environ, DAGSTER_HOME=str(home), PYTHONPATH=str(REPO))
    start_at = time.time() + 8  # after every process has imported Dagster
    processes = [
        subprocess.Popen([sys.executable, "-c", FIRST_RUN, str(start_at)], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    errors = [process.communicate(timeout=180)[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], [e[-1500:] for e in errors]
    assert len(stamps(home)) == 1


def finish(process: subprocess.Popen, timeout: float) -> tuple[int | str, str]:
    """The exit code and stderr of a process; "hung" (and killed) past `timeout`."""
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return "hung", process.communicate()[1]
    return process.returncode, err


@pytest.mark.slow
def test_overlapped_backfills_at_once_on_one_home_finish(start_simulator, monkeypatch, tmp_path):
    """Two backfills of several chunks at once, sharing one DAGSTER_HOME, against a distant
    server: each fetches a chunk while it builds the one before, in threads of one process,
    which deadlocked in Dagster's logging in 3 rounds of 4. One round of three chunks each
    here: test_a_run_starts_while_another_thread_is_inside_a_log_handler proves the fix
    without depending on timing."""
    simulator = start_simulator(latency_ms=250, messages_per_day=300, max_page_size=100)
    point_at(monkeypatch, simulator)
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    first, last = recent_days(21)
    expected = len(unique_messages(served(simulator, first, last)))
    warehouses = [tmp_path / f"backfill-{n}.duckdb" for n in (1, 2)]
    processes = [
        start_cli(
            "backfill",
            "--start",
            str(first),
            "--end",
            str(last),
            env={
                "DAGSTER_HOME": str(home),
                "DE_DUCKDB_PATH": str(path),
                "DE_ARCHIVE_DIR": str(path.with_suffix(".archive")),
            },
        )  # fmt: skip
        for path in warehouses
    ]
    with ThreadPoolExecutor(2) as waiting:  # both at once: neither blocks on a full pipe
        ends = list(waiting.map(lambda process: finish(process, timeout=300), processes))
    for code, err in ends:
        assert code == 0, err[-3000:]
        assert "while run" in err, "the backfill did not overlap fetching and building"
    counts = [len(dump("messages", path)) for path in warehouses]
    assert counts == [expected, expected], counts
    assert first + timedelta(days=7) <= last  # more than one chunk: the overlap is exercised


def test_cli_runs_land_in_the_projects_home_beside_the_warehouse(start_simulator, monkeypatch, clean_environment):
    """Without DAGSTER_HOME, the CLI's runs go to data/dagster_home (beside the warehouse),
    which `de-pipeline ui` opens too: the UI shows the days the CLI built."""
    monkeypatch.delenv("DE_RUN_HISTORY")  # the default: on
    point_at(monkeypatch, start_simulator(messages_per_day=50))
    day = recent_days(1)[0]
    assert main(["backfill", "--start", str(day), "--end", str(day)]) == 0
    home = clean_environment.parent / "dagster_home"
    assert (home / "dagster.yaml").read_text() == INSTANCE_CONFIG.read_text()
    with DagsterInstance.local_temp(str(home)) as instance:
        assert instance.get_materialized_partitions(AssetKey("messages")) == {str(day)}


def test_a_home_without_the_pools_stops_the_run_with_one_line(dagster_home, capsys):
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # no `concurrency:`
    day = recent_days(1)[0]
    assert main(["backfill", "--start", str(day), "--end", str(day)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert f"copy {INSTANCE_CONFIG} to {dagster_home / 'dagster.yaml'}" in err, err


def test_the_local_instance_starts_the_next_run_before_the_pool_frees(dagster_home):
    """A UI backfill's runs wait in the run queue, which keeps back a run whose first step's
    pool is full; one run more than the slots leaves it, so the next run's fetch waits in its
    own process and goes as soon as the run before has fetched (test_ui measures the overlap)."""
    with open_instance() as instance:
        run_queue = instance.get_concurrency_config().run_queue_config
        assert run_queue.should_block_op_concurrency_limited_runs
        assert run_queue.op_concurrency_slot_buffer == 1
        assert run_queue.max_concurrent_runs == 4
        assert instance.run_coordinator.dequeue_interval_seconds == 1


def test_dagsters_own_cli_runs_a_range_of_days_as_one_run(start_simulator, monkeypatch, dagster_home):
    """`dagster asset materialize --partition-range` refuses assets whose backfills run 7 days
    at a time; the one Dagster command for a range (docs/ui.md) is `dagster job execute` with
    the range's two tags: one run, every day of it in the warehouse and in the home."""
    simulator = start_simulator(messages_per_day=150)
    point_at(monkeypatch, simulator)
    first, last = recent_days(3)
    tags = f'{{"dagster/asset_partition_range_start": "{first}", "dagster/asset_partition_range_end": "{last}"}}'
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "job", "execute", "-m", "de_pipeline.defs.definitions",
         "-j", "all_assets", "--tags", tags],
        capture_output=True, text=True, timeout=300, env=os.environ | {"DE_RUN_HISTORY": "on"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    stored = dump("messages")
    assert len(stored) == len(unique_messages(served(simulator, first, last))) > 0
    with DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        partitions = instance.get_materialized_partitions(AssetKey("messages"))
    assert run.tags["dagster/asset_partition_range_end"] == str(last)
    assert partitions == {str(first + timedelta(days=n)) for n in range((last - first).days + 1)}
