"""Partition backfills over GraphQL, launched as the UI launches them, and the checks every
test of a running Dagster makes of them: runs of at most 7 days, every partition
materialised, the pools held. Used against `dagster dev` (test_ui.py) and against the
deployment's separate services on PostgreSQL (test_deploy_postgres.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol

from de_pipeline_tests.helpers import one_at_a_time

MAX_PARTITIONS_PER_RUN = 7  # BackfillPolicy.multi_run(7) on every asset
BACKFILL_TIMEOUT_SECONDS = 8 * 60
SUCCESS = {"COMPLETED_SUCCESS", "COMPLETED"}  # COMPLETED: the deprecated name
GIVE_UP = {"FAILED", "FAILING", "CANCELED", "CANCELING", "COMPLETED_FAILED"}


class GraphQL(Protocol):
    def graphql(
        self, query: str, variables: Mapping[str, Any] | None = None, timeout: float = 60
    ) -> dict[str, Any]: ...


@dataclass
class Backfill:
    id: str
    first: date
    last: date
    assets: list[str]
    status: str = "NOT LAUNCHED"
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)
    problem: str = ""
    started: float = field(default_factory=time.monotonic)

    @property
    def days(self) -> list[str]:
        return [(self.first + timedelta(days=n)).isoformat() for n in range((self.last - self.first).days + 1)]

    @property
    def runs(self) -> list[dict[str, Any]]:
        """The backfill's runs, in the order of their first day."""
        return sorted(self.detail.get("runs", []), key=run_days)

    def explain(self, log_tail: str) -> str:
        return f"backfill {self.id} {self.status} after {self.seconds:.0f}s {self.problem}\n{log_tail}"


def launch_backfill(api: GraphQL, days: int) -> Backfill:
    """Every partitioned asset of the code location, for the last `days` partitions (the last
    is yesterday in DE_TIMEZONE, as the server sees it), as one partition backfill launched
    like the UI's *Materialize* dialog."""
    nodes = api.graphql(ASSET_NODES_QUERY)["assetNodes"]
    assets = sorted(key(n) for n in nodes if n["isMaterializable"] and n["isPartitioned"])
    keys = next(n for n in nodes if key(n) == "messages")["partitionKeysByDimension"][0]["partitionKeys"]
    first, last = date.fromisoformat(keys[-days]), date.fromisoformat(keys[-1])
    launched = api.graphql(LAUNCH_BACKFILL_MUTATION, {"params": ui_backfill_params(assets, keys[-days:])})
    answer = launched["launchPartitionBackfill"]
    backfill = Backfill(id=answer.get("backfillId", ""), first=first, last=last, assets=assets)
    if answer["__typename"] != "LaunchBackfillSuccess":
        backfill.status, backfill.problem = answer["__typename"], f"launch answered {answer}"
    return backfill


def poll_backfill(api: GraphQL, backfill: Backfill) -> bool:
    """Refresh `backfill` from the server; True once it has ended (done, failed or gone)."""
    if backfill.problem:
        return True
    answer = api.graphql(BACKFILL_QUERY, {"id": backfill.id})["partitionBackfillOrError"]
    backfill.seconds = time.monotonic() - backfill.started
    if answer["__typename"] != "PartitionBackfill":
        backfill.status, backfill.problem = answer["__typename"], answer.get("message", "")
        return True
    backfill.status, backfill.detail = answer["status"], answer
    if backfill.status in SUCCESS or backfill.status in GIVE_UP:
        if answer.get("error"):
            backfill.problem = answer["error"]["message"]
        return True
    return False


def wait_for_backfill(
    api: GraphQL,
    backfill: Backfill,
    timeout: float = BACKFILL_TIMEOUT_SECONDS,
    while_waiting: Callable[[Backfill], None] | None = None,
    poll_seconds: float = 2.0,
) -> Backfill:
    """Poll every `poll_seconds` until the backfill ends or `timeout` passes (then `problem`
    says so); between polls, `while_waiting` is called with its latest state."""
    while not poll_backfill(api, backfill):
        if backfill.seconds > timeout:
            backfill.problem = f"timed out after {timeout:.0f}s"
            break
        if while_waiting is not None:
            while_waiting(backfill)
        time.sleep(poll_seconds)
    return backfill


def ui_backfill_params(assets: list[str], partition_keys: list[str]) -> dict[str, Any]:
    """LaunchBackfillParams as the 1.13 UI sends them when a person selects assets in the
    catalogue, *Materialize selected*, picks a range of days and *Launch backfill*
    (LaunchAssetChoosePartitionsDialog.tsx: assetSelection + partitionNames, no selector:
    an asset backfill). The same range as `partitionsByAssets: [{assetKey, partitions:
    {range: {start, end}}}]` (the API's form) makes the same backfill and runs."""
    return {
        "tags": [],
        "assetSelection": [{"path": [a]} for a in assets],
        "partitionNames": partition_keys,
        "fromFailure": False,
    }


def assert_runs_of_at_most_7_days(backfill: Backfill) -> list[dict[str, Any]]:
    """The backfill completed as consecutive runs of at most 7 days (10 days: 7 + 3), each of
    every asset, all successful; returns the runs."""
    detail = backfill.detail
    assert detail["isAssetBackfill"] and detail["numPartitions"] == len(backfill.days), detail
    assert sorted(key(a) for a in detail["assetSelection"]) == backfill.assets
    runs = backfill.runs
    ranges = [run_days(r) for r in runs]
    summary = [(r["runId"][:8], r["status"], start, end) for r, (start, end) in zip(runs, ranges)]
    assert [r["status"] for r in runs] == ["SUCCESS"] * len(runs), summary
    days = backfill.days
    expected_ranges = [
        (days[i], days[min(i + MAX_PARTITIONS_PER_RUN, len(days)) - 1])
        for i in range(0, len(days), MAX_PARTITIONS_PER_RUN)
    ]
    assert ranges == expected_ranges, summary
    for run in runs:
        assert sorted(key(a) for a in run["assetSelection"]) == backfill.assets, run["runId"]
        steps = {s["stepKey"]: s["status"] for s in run["stepStats"]}
        assert steps == {a: "SUCCESS" for a in backfill.assets}, (run["runId"], steps)
    return runs


def assert_days_materialized(api: GraphQL, backfill: Backfill, also: Sequence[str] = ()) -> None:
    """Every asset of the backfill shows exactly its days (and the days `also` built before
    it) materialised, and nothing failed."""
    expected = sorted(set(backfill.days) | set(also))
    for node in api.graphql(PARTITION_STATUS_QUERY)["assetNodes"]:
        if key(node) not in backfill.assets:
            continue
        ranges = node["assetPartitionStatuses"]["ranges"]
        assert {r["status"] for r in ranges} == {"MATERIALIZED"}, (key(node), ranges)
        shown = sorted(day for r in ranges for day in days_between(r["startKey"], r["endKey"]))
        assert shown == expected, (key(node), ranges)


def days_between(first: str, last: str) -> list[str]:
    """The days first..last (ISO dates, both included)."""
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


def assert_instance_config(api: GraphQL, backfill: Backfill, runs: list[dict[str, Any]]) -> None:
    """The instance's dagster.yaml is in force (pools of limit 1 at op granularity, the run
    queue, run monitoring), and no two steps of one pool overlapped in `runs`."""
    data = api.graphql(POOLS_QUERY)
    instance = data["instance"]
    assert instance["poolConfig"]["defaultPoolLimit"] == 1, instance
    assert instance["poolConfig"]["poolGranularity"] == "op", instance
    assert instance["runQueueConfig"]["maxConcurrentRuns"] == 4, instance
    daemons = {d["daemonType"]: d["healthy"] for d in instance["daemonHealth"]["allDaemonStatuses"]}
    assert daemons.get("MONITORING") and daemons.get("BACKFILL") and daemons.get("QUEUED_RUN_COORDINATOR"), daemons
    pools: dict[str, set[str]] = {}
    for node in data["assetNodes"]:
        for pool in node["pools"]:
            pools.setdefault(pool, set()).add(key(node))
    assert {"duckdb_warehouse", "digital_engagement_api"} <= set(pools), pools
    for pool, assets in pools.items():
        limit = api.graphql(POOL_LIMIT_QUERY, {"pool": pool})["instance"]["concurrencyLimit"]
        assert limit["slotCount"] == 1 and limit["activeSlotCount"] == 0, limit
        spans = [
            (s["startTime"], s["endTime"], pool, r["runId"][:8], s["stepKey"])
            for r in runs
            for s in r["stepStats"]
            if s["stepKey"] in assets
        ]
        assert len(spans) == len(runs) * len(assets & set(backfill.assets)), spans
        one_at_a_time(spans)  # limit 1: never two of the pool's steps at once


def key(node: dict[str, Any]) -> str:
    """An asset node's (or asset key's) key as a string, e.g. `messages`."""
    path = node["assetKey"]["path"] if "assetKey" in node else node["path"]
    return "/".join(path)


def run_days(run: dict[str, Any]) -> tuple[str, str]:
    """The first and last partition of a run."""
    return tag(run, "dagster/asset_partition_range_start"), tag(run, "dagster/asset_partition_range_end")


def tag(run: dict[str, Any], name: str) -> str:
    return next((t["value"] for t in run["tags"] if t["key"] == name), "")


ASSET_NODES_QUERY = """
query AssetNodes {
  assetNodes { assetKey { path } isMaterializable isPartitioned partitionKeysByDimension { partitionKeys } }
}
"""

LAUNCH_BACKFILL_MUTATION = """
mutation LaunchBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}
"""

BACKFILL_QUERY = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on Error { message }
    ... on PartitionBackfill {
      id
      status
      isAssetBackfill
      numPartitions
      error { message }
      assetSelection { path }
      runs {
        runId
        status
        tags { key value }
        assetSelection { path }
        stepStats { stepKey status startTime endTime }
      }
    }
  }
}
"""

PARTITION_STATUS_QUERY = """
query PartitionStatus {
  assetNodes {
    assetKey { path }
    assetPartitionStatuses {
      __typename
      ... on TimePartitionStatuses { ranges { status startKey endKey } }
    }
  }
}
"""

POOLS_QUERY = """
query Pools {
  instance {
    poolConfig { poolGranularity defaultPoolLimit }
    runQueueConfig { maxConcurrentRuns }
    daemonHealth { allDaemonStatuses { daemonType healthy } }
  }
  assetNodes { assetKey { path } pools }
}
"""

POOL_LIMIT_QUERY = """
query PoolLimit($pool: String!) {
  instance { concurrencyLimit(concurrencyKey: $pool) { slotCount activeSlotCount } }
}
"""
