"""The pipeline under `dagster dev`, driven as the UI drives it.

One `dagster dev` (webserver, daemon, code server) for the whole module, started from the
repository root with a temporary DAGSTER_HOME holding a copy of the repository's
dagster.yaml (pools, run monitoring) and a temporary warehouse. One partition backfill of
the last 10 days, launched over GraphQL exactly as the UI's *Materialize* dialog does, is
shared by the tests: the GraphQL test checks the runs, pools, checks, schedule and tables;
the overlap test that the second run fetched while the first one built (the simulator
answers late, so fetches take seconds); the browser test looks at the same result in
headless Chromium; the last test stops `dagster dev` and checks that no process of it is
left.

    pytest -m ui                  # this module only (about two minutes)
    pytest -m "ui and not browser"
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from de_pipeline_tests.backfills import (
    POOLS_QUERY,
    SUCCESS,
    Backfill,
    assert_days_materialized,
    assert_instance_config,
    assert_runs_of_at_most_7_days,
    days_between,
    key,
    launch_backfill,
    run_days,
    wait_for_backfill,
)
from de_pipeline_tests.browser import chromium_page
from de_pipeline_tests.dagster_dev import (
    WORKSPACE_QUERY,
    DagsterDev,
    dagster_home_env,
    processes_in_group,
    skip_under_libfaketime,
)
from de_pipeline_tests.helpers import overlap, reading

REPO_ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT_DIR = REPO_ROOT / "screenshots"  # git-ignored
BACKFILL_DAYS = 10
# two days before the UI's backfill, built by `de-pipeline backfill` before the UI starts:
# the UI shows them materialised too (one Dagster instance for the CLI and the UI)
CLI_DAYS = days_between(
    str(date.today() - timedelta(days=BACKFILL_DAYS + 3)), str(date.today() - timedelta(days=BACKFILL_DAYS + 2))
)
READERS_COPY_TIMEOUT_SECONDS = 3 * 60
MESSAGES_PER_DAY = "300"
# a distant server: pages of 50 (7 a day), each answered 500 ms late, so a run's fetch
# takes seconds and the next run's fetch can be seen going beside this run's build
SIM_PAGE_CAP, SIM_LATENCY_MS = "50", "500"
# the assets a backfill must show done; the test backfills every asset of the code location, these included
EXPECTED_ASSETS = {"raw_messages", "messages", "sentiment_trends", "intent_confidence", "redaction_entity_counts"}


def _refresh_at() -> datetime:
    """A minute of the day 4 minutes ahead (UTC, the default DE_TIMEZONE), before 23:58 so
    that DE_FRESH_BY=23:59 comes after it: else just past midnight."""
    moment = datetime.now(UTC) + timedelta(minutes=4)
    if (moment.hour, moment.minute) >= (23, 58):
        moment += timedelta(minutes=3)
    return moment.replace(second=0, microsecond=0)


SCHEDULE_TIMEOUT_SECONDS = 12 * 60
# startup + backfill + checks stay far below this; our own timeouts fail first, with a reason
pytestmark = pytest.mark.timeout(20 * 60)


# ---- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def refresh_at() -> datetime:
    """When the daemon ticks `daily_refresh` (DE_REFRESH_AT), a few minutes after the start."""
    return _refresh_at()


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory, refresh_at: datetime) -> Iterator[DagsterDev]:
    """`dagster dev` in the repository root, on a free 127.0.0.1 port, with DAGSTER_HOME,
    the warehouse and its archive in a temporary directory."""
    skip_under_libfaketime()
    root = tmp_path_factory.mktemp("dagster_dev")
    # `dagster dev` reads dagster.yaml from DAGSTER_HOME only (the one in the current
    # directory only when DAGSTER_HOME is unset), so the repository's file is copied there.
    env = dagster_home_env(root, REPO_ROOT / "dagster.yaml")
    env |= {
        "DE_DUCKDB_PATH": str(root / "warehouse.duckdb"),
        "DE_SIM_MESSAGES_PER_DAY": MESSAGES_PER_DAY,
        "DE_SIM_PAGE_CAP": SIM_PAGE_CAP,
        "DE_SIM_LATENCY_MS": SIM_LATENCY_MS,
        # the daemon ticks the daily schedule a few minutes after the start, on a real clock
        "DE_REFRESH_AT": f"{refresh_at:%H:%M}",
        "DE_FRESH_BY": "23:59",
    }
    # as docs/ui.md has it: days built by the CLI first, then `de-pipeline ui`, both on the
    # project's own home (beside the warehouse: the home made above, DAGSTER_HOME unset)
    env.pop("DAGSTER_HOME")
    built = subprocess.run(
        [sys.executable, "-m", "de_pipeline.cli", "backfill", "--start", CLI_DAYS[0], "--end", CLI_DAYS[-1]],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    dev = DagsterDev(cwd=REPO_ROOT, env=env, log_path=root / "dagster_dev.log", via_cli=True)
    dev.start()
    try:
        dev.wait_until_ready()
    except BaseException:
        dev.stop()
        raise
    yield dev
    stopped_by_test = dev.stop_report is not None
    report = dev.stop()
    # test_dagster_dev_stops_cleanly asserts this with details; this covers the runs that
    # leave it out (pytest -m browser, -k ...)
    assert stopped_by_test or report.clean, f"`dagster dev` left processes behind: {report}"


@pytest.fixture(scope="module")
def backfill(dagster_dev: DagsterDev) -> Backfill:
    """Every asset of the code location, for the 10 days ending yesterday, as one partition
    backfill launched like the UI's *Materialize* dialog; waited for until it ends."""
    return wait_for_backfill(dagster_dev, launch_backfill(dagster_dev, BACKFILL_DAYS))


# ---- GraphQL -------------------------------------------------------------------------


@pytest.mark.ui
def test_backfill_through_graphql(dagster_dev: DagsterDev, backfill: Backfill) -> None:
    # the code location loaded, without errors (wait_until_ready raised on a PythonError)
    workspace = dagster_dev.graphql(WORKSPACE_QUERY)["workspaceOrError"]
    entries = workspace["locationEntries"]
    assert entries, "no code location"
    for entry in entries:
        assert entry["loadStatus"] == "LOADED", entry
        assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
    assert EXPECTED_ASSETS <= set(backfill.assets), backfill.assets

    # the backfill completed, as runs of at most 7 days (7 + 3), each of every asset, all successful
    assert backfill.status in SUCCESS, backfill.explain(dagster_dev.log_tail(40))
    runs = assert_runs_of_at_most_7_days(backfill)
    # every asset shows exactly those 10 days materialised, and the days the CLI built before
    assert_days_materialized(dagster_dev, backfill, also=CLI_DAYS)
    # dagster.yaml applies; pools have limit 1 each, so no two steps of a pool overlapped, and
    # once no run is going (the schedule's may be), no slot is held
    _wait_until_no_run_is_going(dagster_dev)
    assert_instance_config(dagster_dev, backfill, runs)

    # every asset check of the definitions is listed, and passed on the backfilled data
    from de_pipeline.defs.definitions import defs

    defined = {(k.asset_key.to_user_string(), k.name) for k in defs().resolve_asset_graph().asset_check_keys}
    listed = {}
    for node in dagster_dev.graphql(ASSET_CHECKS_QUERY)["assetNodes"]:
        checks = node["assetChecksOrError"]
        assert checks["__typename"] == "AssetChecks", (key(node), checks)
        for check in checks["checks"]:
            execution = check["executionForLatestMaterialization"]
            listed[(key(node), check["name"])] = execution and execution["status"]
    assert set(listed) == defined
    assert {"messages", "sentiment_trends"} <= {asset for asset, _ in listed}
    not_passed = {key: status for key, status in listed.items() if status != "SUCCEEDED"}
    assert not not_passed, f"checks that did not pass on the backfill: {not_passed}"

    # the schedule is listed and on
    schedules = {
        s["name"]: s["scheduleState"]["status"]
        for e in entries
        for repo in e["locationOrLoadError"]["repositories"]
        for s in repo["schedules"]
    }
    assert schedules.get("daily_refresh") == "RUNNING", schedules

    # the warehouse holds exactly those days
    _assert_warehouse(Path(dagster_dev.env["DE_DUCKDB_PATH"]), backfill)


@pytest.mark.ui
def test_the_next_runs_fetch_goes_beside_this_runs_build(dagster_dev: DagsterDev, backfill: Backfill) -> None:
    """The backfill's runs start together; the pools let one fetch and one warehouse step
    run at a time, so the run that fetches second fetches while the first one builds."""
    assert backfill.status in SUCCESS, backfill.explain(dagster_dev)
    pools = {key(n): n["pools"] for n in dagster_dev.graphql(POOLS_QUERY)["assetNodes"]}
    runs = []
    for run in backfill.detail["runs"]:
        steps = {s["stepKey"]: (s["startTime"], s["endTime"]) for s in run["stepStats"]}
        builds = [span for key, span in steps.items() if pools.get(key) == ["duckdb_warehouse"]]
        runs.append((steps["raw_messages"], (min(s for s, _ in builds), max(e for _, e in builds)), run["runId"]))
    assert len(runs) >= 2, runs
    (first_fetch, first_build, first_id), (second_fetch, _, second_id) = sorted(runs)[:2]
    assert overlap(second_fetch, first_build), (
        f"run {second_id[:8]} fetched {second_fetch}, not while run {first_id[:8]} built {first_build}"
    )


@pytest.mark.ui
def test_the_daemon_ticks_the_daily_schedule_and_its_run_succeeds(
    dagster_dev: DagsterDev, backfill: Backfill, refresh_at: datetime
) -> None:
    """Schedules are one of the three ways this project is used: the daemon itself ticks
    `daily_refresh` at DE_REFRESH_AT (set a few minutes after the start), launches the run
    of yesterday and its lookback, and the run succeeds; the UI lists the tick and the run."""
    deadline = time.monotonic() + SCHEDULE_TIMEOUT_SECONDS
    while True:
        ticks = _schedule_ticks(dagster_dev)
        runs = dagster_dev.graphql(SCHEDULED_RUNS_QUERY)["runsOrError"]["results"]
        finished = [run for run in runs if run["status"] in ("SUCCESS", "FAILURE", "CANCELED")]
        if finished:
            break
        assert time.monotonic() < deadline, (
            f"no run of daily_refresh ended {SCHEDULE_TIMEOUT_SECONDS}s after the tick time {refresh_at:%H:%M} UTC "
            f"(ticks: {ticks}; runs: {runs})\n{dagster_dev.log_tail(30)}"
        )
        time.sleep(3)  # within the webserver's 5 s keep-alive
    (run,) = finished
    assert run["status"] == "SUCCESS", (run, dagster_dev.log_tail(40))
    tags = {tag["key"]: tag["value"] for tag in run["tags"]}
    yesterday = refresh_at.date() - timedelta(days=1)
    assert tags["dagster/asset_partition_range_end"] == str(yesterday), tags
    assert any(tick["status"] == "SUCCESS" and run["runId"] in tick["runIds"] for tick in _schedule_ticks(dagster_dev))


def _wait_until_no_run_is_going(dagster_dev: DagsterDev, timeout: float = 6 * 60) -> None:
    deadline = time.monotonic() + timeout
    while dagster_dev.graphql(RUNS_GOING_QUERY)["runsOrError"]["results"]:
        assert time.monotonic() < deadline, f"runs still going after {timeout:.0f}s\n{dagster_dev.log_tail(30)}"
        time.sleep(3)


RUNS_GOING_QUERY = """
query RunsGoing {
  runsOrError(filter: {statuses: [QUEUED, NOT_STARTED, STARTING, STARTED, CANCELING]}) {
    ... on Runs { results { runId } }
  }
}
"""


def _schedule_ticks(dagster_dev: DagsterDev) -> list[dict[str, Any]]:
    entries = dagster_dev.graphql(SCHEDULE_TICKS_QUERY)["workspaceOrError"]["locationEntries"]
    return [
        tick
        for entry in entries
        for repo in entry["locationOrLoadError"]["repositories"]
        for schedule in repo["schedules"]
        if schedule["name"] == "daily_refresh"
        for tick in schedule["scheduleState"]["ticks"]
    ]


SCHEDULED_RUNS_QUERY = """
query ScheduledRuns {
  runsOrError(filter: {tags: [{key: "dagster/schedule_name", value: "daily_refresh"}]}) {
    ... on Runs { results { runId status tags { key value } } }
  }
}
"""

SCHEDULE_TICKS_QUERY = """
query ScheduleTicks {
  workspaceOrError {
    ... on Workspace {
      locationEntries {
        locationOrLoadError {
          ... on RepositoryLocation {
            repositories { schedules { name scheduleState { ticks(limit: 10) { status runIds timestamp } } } }
          }
        }
      }
    }
  }
}
"""


def _assert_warehouse(path: Path, backfill: Backfill) -> None:
    from de_pipeline.simulator import SyntheticDataset
    from de_pipeline.warehouse.tables import DAILY_TABLES

    # the days of the CLI's run and of the backfill that the embedded simulator (default seed)
    # serves messages for: on any date, one of them may be a simulated outage day, rightly empty
    outage = SyntheticDataset(seed=7).is_outage_day
    expected = [day for day in map(date.fromisoformat, CLI_DAYS + backfill.days) if not outage(day)]
    with reading(path) as connection:
        per_day = dict(connection.execute("SELECT day, count(*) FROM messages GROUP BY day").fetchall())
        assert sorted(per_day) == expected and expected, sorted(per_day)
        assert all(count > 0 for count in per_day.values()), per_day
        rows, keys = connection.execute("SELECT count(*), count(DISTINCT message_key) FROM messages").fetchone()
        assert rows == keys, f"{rows - keys} duplicate message_key values"
        for table in [t.name for t in DAILY_TABLES if t.upstream == "messages" and t.steps == "days"]:
            days = [d for (d,) in connection.execute(f"SELECT DISTINCT day FROM {table} ORDER BY day").fetchall()]
            assert days == expected, (table, days)
        # the two tables that partition every message add up to messages, day by day
        for table in ("sentiment_trends", "intent_confidence"):
            sums = dict(connection.execute(f"SELECT day, sum(messages) FROM {table} GROUP BY day").fetchall())
            assert sums == per_day, (table, sums, per_day)


@pytest.mark.ui
def test_the_daemon_publishes_the_readers_copy_after_the_backfill(dagster_dev: DagsterDev, backfill: Backfill) -> None:
    """The sensor publish_readers_copy runs in the daemon: after the backfill's runs, the
    readers' copy holds what the warehouse holds, stamped with one of those runs (or with the
    schedule's run, when the daemon ticked daily_refresh before the sensor's turn came)."""
    assert backfill.status in SUCCESS, backfill.explain(dagster_dev)
    warehouse = Path(dagster_dev.env["DE_DUCKDB_PATH"])
    copy = warehouse.with_name(f"{warehouse.stem}-readers.duckdb")
    per_day = "SELECT day, count(*) FROM messages GROUP BY day ORDER BY day"
    deadline = time.monotonic() + READERS_COPY_TIMEOUT_SECONDS  # one sensor tick per run, 30 s apart
    while True:
        scheduled = dagster_dev.graphql(SCHEDULED_RUNS_QUERY)["runsOrError"]["results"]
        run_ids = {run["runId"] for run in backfill.detail["runs"] + scheduled}
        expected = _read(warehouse, per_day)
        found = copy.exists() and (_read(copy, per_day), _read(copy, "SELECT published_after FROM _published"))
        if found and found[0] == expected and found[1][0][0].split()[1] in run_ids:
            break
        assert time.monotonic() < deadline, f"no readers' copy at {copy}: {found}\n{dagster_dev.log_tail()}"
        time.sleep(2)


def _read(path: Path, query: str) -> list[tuple[Any, ...]]:
    with reading(path) as connection:
        return connection.execute(query).fetchall()


# ---- browser -------------------------------------------------------------------------


@pytest.mark.ui
@pytest.mark.browser
def test_asset_pages_in_browser(dagster_dev: DagsterDev, backfill: Backfill) -> None:
    """The catalogue and the partitions page of `messages` show the 10 days of the backfill
    and the 2 that the CLI built before the UI started, materialised."""
    try:
        from playwright.sync_api import expect
    except ImportError:
        pytest.skip("Playwright is not installed: pip install -e '.[test]' (see .ci/run)")
    expect.set_options(timeout=30_000)  # not 5 s: the UI answers slowly on a busy 2-core machine
    assert backfill.status in SUCCESS, backfill.explain(dagster_dev.log_tail(40))
    SCREENSHOT_DIR.mkdir(exist_ok=True)
    (SCREENSHOT_DIR / "ui-failure.png").unlink(missing_ok=True)
    # the UI shows a one-off "Join the Dagster community" dialog on localhost; its Skip
    # button sends this mutation
    dagster_dev.graphql("mutation { setNuxSeen }")
    runs = {date_key: run["runId"] for run in backfill.runs for date_key in _days_between(*run_days(run))}

    with chromium_page() as page:
        page.set_default_timeout(60_000)
        try:
            page.goto(f"{dagster_dev.url}/assets", wait_until="domcontentloaded")
            for asset in backfill.assets:
                row = page.locator('div[style*="grid-template-columns"]').filter(
                    has=page.locator(f'a[href="/assets/{asset}"]')
                )
                materialized = row.locator('div:has(> [aria-label="partition_success"])').first
                # the counts show "—" until the catalogue has loaded them, which takes a while on
                # a busy 2-core machine
                expect(materialized).to_have_text(str(BACKFILL_DAYS + len(CLI_DAYS)), timeout=60_000)
            page.screenshot(path=SCREENSHOT_DIR / "ui-asset-catalogue.png", full_page=True)

            page.goto(f"{dagster_dev.url}/assets/messages?view=partitions", wait_until="domcontentloaded")
            expect(page.get_by_text(f"Materialized ({BACKFILL_DAYS + len(CLI_DAYS)})")).to_be_visible()
            expect(page.get_by_text("Failed (0)")).to_be_visible()
            for key in CLI_DAYS + backfill.days:  # listed newest first, each with a green dot
                dot = page.locator(f'div:has(> [data-tooltip="{key}"]) > div[style*="--color-accent-green"]')
                expect(dot.first).to_be_visible()
            page.screenshot(path=SCREENSHOT_DIR / "ui-messages-partitions.png")

            # a person clicks yesterday's partition: its materialisation links the run, the
            # backfill's, or the schedule's if that loaded yesterday again since
            newest = backfill.days[-1]
            page.locator(f'[data-tooltip="{newest}"]').first.click()
            scheduled = [run["runId"] for run in dagster_dev.graphql(SCHEDULED_RUNS_QUERY)["runsOrError"]["results"]]
            linked = ", ".join(f'a[href^="/runs/{run_id}"]' for run_id in [runs[newest], *scheduled])
            expect(page.locator(linked).first).to_be_visible()
            page.screenshot(path=SCREENSHOT_DIR / "ui-messages-partition-yesterday.png")

            # the catalog documents the table: its columns with their descriptions
            # (docs/ui.md: docs/images/messages-columns.png)
            page.goto(f"{dagster_dev.url}/assets/messages?view=overview", wait_until="domcontentloaded")
            expect(page.get_by_text("message_key", exact=True).first).to_be_visible(timeout=30_000)
            expect(page.get_by_text("the redacted text, placeholders as sent").first).to_be_visible()
            page.wait_for_timeout(1000)
            page.screenshot(path=SCREENSHOT_DIR / "ui-messages-columns.png", full_page=True)

            # the asset graph, every asset in it (docs/ui.md: docs/images/asset-graph.png)
            page.goto(f"{dagster_dev.url}/asset-groups", wait_until="domcontentloaded")
            for asset in backfill.assets:
                expect(page.get_by_text(asset, exact=True).first).to_be_visible()
            page.wait_for_timeout(1500)  # let the layout settle
            page.screenshot(path=SCREENSHOT_DIR / "ui-asset-graph.png")

            # the partition backfill's own page (docs/ui.md: docs/images/partition-backfill.png)
            page.goto(f"{dagster_dev.url}/runs/b/{backfill.id}", wait_until="domcontentloaded")
            expect(page.get_by_text(backfill.id).first).to_be_visible()
            page.wait_for_timeout(1500)
            page.screenshot(path=SCREENSHOT_DIR / "ui-partition-backfill.png")
        except Exception:
            page.screenshot(path=SCREENSHOT_DIR / "ui-failure.png")  # what the page showed then
            raise


def _days_between(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


# ---- shutdown ------------------------------------------------------------------------


@pytest.mark.ui
def test_dagster_dev_stops_cleanly(dagster_dev: DagsterDev) -> None:
    """Ctrl-C (SIGINT to the process group) stops the webserver, the daemon and the code
    servers within the grace period, with no process of the group left."""
    pgid = dagster_dev.pgid
    assert processes_in_group(pgid), "`dagster dev` was not running"
    report = dagster_dev.stop()
    assert not report.left_after_interrupt, (
        "still running after SIGINT and the grace period (then killed):\n"
        + "\n".join(map(str, report.left_after_interrupt))
    )
    assert not report.left_after_kill, "\n".join(map(str, report.left_after_kill))
    assert report.exit_code == 0, f"`dagster dev` exited with {report.exit_code}:\n{dagster_dev.log_tail()}"
    # no member of the group at all; an orphan's zombie may need a moment to be reaped by init
    deadline = time.monotonic() + 10
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, f"process group {pgid} still exists (zombies?)"
        time.sleep(0.2)


# ---- queries -------------------------------------------------------------------------


ASSET_CHECKS_QUERY = """
query AssetChecks {
  assetNodes {
    assetKey { path }
    assetChecksOrError {
      __typename
      ... on AssetChecks { checks { name executionForLatestMaterialization { status } } }
    }
  }
}
"""
