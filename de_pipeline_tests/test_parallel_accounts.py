"""Several accounts fetched at once (DE_MAX_PARALLEL_ACCOUNTS): the same tables, row for row,
as fetched one after another; the fetches overlap; a wrong key fails its account alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from de_pipeline.accounts import max_parallel_accounts
from de_pipeline.env import SettingsError
from de_pipeline.simulator import Simulator, provider_seed
from de_pipeline.warehouse.tables import TABLES
from de_pipeline_tests.conftest import TEST_KEY
from de_pipeline_tests.helpers import dump, query, recent_days, run_cli, served, unique_messages

# the simulator's other providers, each with its own key (and its own data)
OTHERS = (("provider-b", "key-b-never-print-me"), ("provider-c", "key-c-never-print-me"))
WRONG_KEY = "wrong-key-never-print-me"
SEED = 11


def providers_file(path: Path, simulator: Simulator) -> Path:
    """Accounts a, b and c on their own keys, and `wrong` on a key the simulator refuses."""
    ids = {"a": simulator.config.provider_id, "b": OTHERS[0][0], "c": OTHERS[1][0], "wrong": OTHERS[1][0]}
    lines = [
        f"  - {{name: {name}, provider_id: {provider}, api_key_env: DE_API_KEY_{name.upper()}, "
        f"base_url: {simulator.base_url}}}"
        for name, provider in ids.items()
    ]
    path.write_text("accounts:\n" + "\n".join(lines) + "\n")
    return path


def fetch_spans(simulator: Simulator, since: int) -> dict[str, tuple[float, float]]:
    """Per provider, when its first and its last data request arrived, of the requests after
    the first `since` (the simulator's own clock, not ours)."""
    spans: dict[str, tuple[float, float]] = {}
    for request in simulator.requests[since:]:
        if request.provider is None:
            continue  # refused before the provider was read (the wrong key)
        first, last = spans.get(request.provider, (request.at, request.at))
        spans[request.provider] = (min(first, request.at), max(last, request.at))
    return spans


def overlapping(spans: dict[str, tuple[float, float]]) -> bool:
    """Were all the providers being fetched at one moment?"""
    return max(first for first, _ in spans.values()) < min(last for _, last in spans.values())


@pytest.mark.slow  # two backfills of four accounts: about 45 s, most of it the builds
def test_accounts_fetched_at_once_load_what_one_after_another_loads(start_simulator, dagster_home, tmp_path):
    # 100 ms a request, pages of 100, two at a time: each account's fetch takes a second or
    # two, so that fetches at once overlap whatever the order their runs start in
    simulator = start_simulator(seed=SEED, messages_per_day=1500, latency_ms=100, other_providers=OTHERS)
    first, last = recent_days(2, seeds=(SEED, *(SEED + provider_seed(provider) for provider, _ in OTHERS)))
    env = {
        "DE_PROVIDERS_FILE": str(providers_file(tmp_path / "providers.yaml", simulator)),
        "DE_API_KEY_A": TEST_KEY,
        "DE_API_KEY_B": OTHERS[0][1],
        "DE_API_KEY_C": OTHERS[1][1],
        "DE_API_KEY_WRONG": WRONG_KEY,
        "DE_PAGE_SIZE": "100",
        "DE_MAX_IN_FLIGHT": "2",
    }
    warehouses = {mode: tmp_path / mode / "warehouse.duckdb" for mode in ("serial", "parallel")}
    spans = {}
    for mode, parallel in (("serial", "1"), ("parallel", "4")):
        since = len(simulator.requests)
        done = run_cli(
            "backfill", "--start", str(first), "--end", str(last),
            env=env | {"DE_DUCKDB_PATH": str(warehouses[mode]), "DE_MAX_PARALLEL_ACCOUNTS": parallel},
        )  # fmt: skip
        # the wrong key fails its own account, named at the end; the others load fully
        assert done.returncode == 1, done.stderr[-3000:]
        assert "account wrong failed" in done.stderr and "the other accounts go on without it" in done.stderr
        last_line = done.stderr.strip().splitlines()[-1]
        assert "account wrong: run for" in last_line and "401" in last_line, last_line
        assert "account a" not in last_line and "account b" not in last_line and "account c" not in last_line
        for secret in (TEST_KEY, WRONG_KEY, *(key for _, key in OTHERS)):
            assert secret not in done.stdout + done.stderr
        spans[mode] = fetch_spans(simulator, since)

    assert set(spans["parallel"]) == {simulator.config.provider_id, *(p for p, _ in OTHERS)}
    assert overlapping(spans["parallel"]), spans["parallel"]
    assert not overlapping(spans["serial"]), spans["serial"]  # the same check fails one after another

    # every account's rows as served, none lost or doubled; `wrong` has none
    for name, provider in (("a", None), ("b", OTHERS[0][0]), ("c", OTHERS[1][0])):
        expected = len(unique_messages(served(simulator, first, last, provider)))
        for warehouse in warehouses.values():
            counted = query(f"SELECT count(*) AS n, count(DISTINCT message_key) AS k FROM messages "
                            f"WHERE provider = '{name}'", warehouse)  # fmt: skip
            assert (int(counted.n[0]), int(counted.k[0])) == (expected, expected), (name, warehouse)
    for warehouse in warehouses.values():
        assert set(query("SELECT DISTINCT provider FROM messages", warehouse).provider) == {"a", "b", "c"}
    # every table, row for row, the same at once as one after another
    for table in TABLES:
        assert dump(table.name, warehouses["parallel"]) == dump(table.name, warehouses["serial"]), table.name


@pytest.mark.parametrize(
    ("value", "complaint"),
    [("0", "DE_MAX_PARALLEL_ACCOUNTS=0 must be in [1, 64]"), ("x", "DE_MAX_PARALLEL_ACCOUNTS='x' is not an integer")],
)
def test_a_wrong_number_of_accounts_at_once_is_named(value, complaint):
    with pytest.raises(SettingsError, match=re.escape(complaint)):
        max_parallel_accounts({"DE_MAX_PARALLEL_ACCOUNTS": value})
    assert max_parallel_accounts({}) == 4 and max_parallel_accounts({"DE_MAX_PARALLEL_ACCOUNTS": "1"}) == 1
