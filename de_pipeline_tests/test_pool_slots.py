"""A run killed at any moment never blocks a later run; a live holder is named and waited for.

These tests use a DAGSTER_HOME with the repository's dagster.yaml, whose pools have limit 1,
as a user who sees CLI runs in the UI has.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, build_sensor_context

from de_pipeline.defs.sensors import free_stale_pool_slots
from de_pipeline.orchestration.pool_slots import HOST_TAG, PID_TAG, free_stale_slots, pool_holders, process_tags
from de_pipeline_tests.helpers import busy_day, start_cli

API_POOL = "digital_engagement_api"


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def hold_slot(instance: DagsterInstance, pid: int, pool: str = API_POOL) -> str:
    """A STARTED run of process `pid` on this host that holds the pool's slot."""
    run_id = str(uuid.uuid4())
    tags = process_tags() | {PID_TAG: str(pid)}
    if pid != os.getpid():
        tags.pop("de-pipeline/process-start")
    instance.add_run(DagsterRun(job_name="all_assets", run_id=run_id, status=DagsterRunStatus.STARTED, tags=tags))
    instance.event_log_storage.initialize_concurrency_limit_to_default(pool)
    assert instance.event_log_storage.claim_concurrency_slot(pool, run_id, "raw_messages").is_claimed
    return run_id


def backfill(day, **env: str) -> subprocess.Popen:
    """`de-pipeline backfill` of one day, in its own process group (killed whole below)."""
    return start_cli("backfill", "--start", str(day), "--end", str(day), env=env, start_new_session=True)


@pytest.mark.slow
def test_a_run_killed_by_sigkill_does_not_block_the_next_cli_run(dagster_home):
    day = busy_day(7)
    env = {"DE_SIM_MESSAGES_PER_DAY": "30000"}
    # the home is made here first: Dagster's own DagsterInstance.get(), unlike the CLI's
    # open_instance, takes no lock, and making a fresh home at the moment the CLI makes it
    # fails one of the two ("table alembic_version already exists", Dagster #27390)
    with DagsterInstance.get() as instance:
        first = backfill(day, **env)
        deadline = time.monotonic() + 300
        while not pool_holders(instance, [API_POOL]):  # raw_messages holds the API pool
            assert first.poll() is None, first.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "the first run never took its pool slot"
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        (killed,) = pool_holders(instance, [API_POOL])
        assert killed.alive is False and killed.status == "STARTED"

        second = backfill(day, **env)
        try:
            _, err = second.communicate(timeout=300)
        finally:
            if second.poll() is None:
                os.killpg(second.pid, signal.SIGKILL)
        assert second.returncode == 0, err[-3000:]
        assert f"run {killed.run_id[:8]} (all_assets, pid {first.pid}) was left by a process that is gone" in err
        assert instance.get_run_by_id(killed.run_id).status == DagsterRunStatus.FAILURE
        assert pool_holders(instance) == []
        runs = instance.get_runs()
        assert [r.status for r in runs].count(DagsterRunStatus.SUCCESS) == 1


def test_a_live_holder_is_named_and_waited_for_until_the_timeout(dagster_home):
    day = busy_day(7)
    with DagsterInstance.get() as instance:
        holder = hold_slot(instance, os.getpid())  # this test process: alive
        waiting = backfill(day, DE_LOCK_TIMEOUT_SECONDS="3", DE_SIM_MESSAGES_PER_DAY="50")
        _, err = waiting.communicate(timeout=300)
        assert waiting.returncode == 1, err[-3000:]
        assert f"pool {API_POOL} is held by run {holder[:8]} (started, pid {os.getpid()}" in err
        assert "running" in err and "waiting" in err
        assert "gave up after waiting" in err and "DE_LOCK_TIMEOUT_SECONDS" in err
        assert "Traceback" not in err
        # the run that gave up is failed, holds nothing, and the live holder kept its slot
        gave_up = [r for r in instance.get_runs() if r.run_id != holder]
        assert [r.status for r in gave_up] == [DagsterRunStatus.FAILURE]
        assert [h.run_id for h in pool_holders(instance)] == [holder]


def test_a_slot_of_a_dead_process_is_freed_and_the_run_goes_on(dagster_home):
    day = busy_day(7)
    with DagsterInstance.get() as instance:
        stale = hold_slot(instance, dead_pid())
        done = backfill(day, DE_LOCK_TIMEOUT_SECONDS="60", DE_SIM_MESSAGES_PER_DAY="50")
        _, err = done.communicate(timeout=300)
        assert done.returncode == 0, err[-3000:]
        assert f"run {stale[:8]} (all_assets, pid" in err and "marked it failed" in err
        assert instance.get_run_by_id(stale).status == DagsterRunStatus.FAILURE
        assert pool_holders(instance) == []


def test_the_sensor_frees_a_dead_run_in_dagster_dev_and_keeps_live_ones(dagster_home):
    with DagsterInstance.get() as instance:
        live = hold_slot(instance, os.getpid(), pool="duckdb_warehouse")
        stale = hold_slot(instance, dead_pid())
        elsewhere = hold_slot(instance, dead_pid(), pool="other_pool")
        instance.add_run_tags(elsewhere, {HOST_TAG: "another-host"})  # not judged from here
        result = free_stale_pool_slots(build_sensor_context(instance=instance))
        assert f"run {stale[:8]}" in result.skip_message
        assert instance.get_run_by_id(stale).status == DagsterRunStatus.FAILURE
        assert {h.run_id for h in pool_holders(instance)} == {live, elsewhere}
        assert free_stale_slots(instance) == []  # nothing left to do


def test_a_finished_run_that_still_holds_a_slot_loses_it(dagster_home):
    with DagsterInstance.get() as instance:
        leaked = hold_slot(instance, os.getpid())
        instance.report_run_failed(instance.get_run_by_id(leaked), "failed elsewhere")
        assert free_stale_slots(instance) == [f"freed the pool slots of run {leaked[:8]} (failure)"]
        assert pool_holders(instance) == []


def test_a_user_mistake_prints_one_line_and_debug_prints_the_trace(start_simulator, tmp_path):
    simulator = start_simulator(messages_per_day=50)
    day = busy_day(7)
    env = {
        "DE_API_BASE_URL": simulator.base_url,
        "DE_API_KEY": "a-wrong-key",
        "DE_PROVIDER_ID": simulator.config.provider_id,
    }
    wrong = backfill(day, **env)
    _, err = wrong.communicate(timeout=300)
    assert wrong.returncode == 1
    assert "Stack Trace" not in err and "Traceback" not in err and 'File "' not in err
    assert err.strip().splitlines()[-1].startswith("de-pipeline backfill: run for")
    assert "the API key was refused (HTTP 401)" in err.strip().splitlines()[-1]
    assert len(err.strip().splitlines()) < 15, err

    debug = backfill(day, **env, DE_DEBUG="1")
    _, err = debug.communicate(timeout=300)
    assert debug.returncode != 0
    assert "Stack Trace" in err or "Traceback" in err
