"""Many accounts in one warehouse (DE_PROVIDERS_FILE): the file, the `provider` column, one
simulator serving two providers, and a wrong key that fails only its own account."""

from __future__ import annotations

import resource
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from de_pipeline.accounts import Account, accounts_from_env, read_providers_file
from de_pipeline.api import ApiSettings
from de_pipeline.env import SettingsError
from de_pipeline.simulator import embedded_simulator, simulator_config_from_env
from de_pipeline.warehouse.schema import ensure_schema
from de_pipeline.warehouse.settings import WarehouseSettings
from de_pipeline.warehouse.tables import DAILY_TABLES
from de_pipeline_tests.conftest import TEST_KEY
from de_pipeline_tests.helpers import query, recent_days, run_cli, served, unique_messages

OTHER_PROVIDER, OTHER_KEY = "other-provider-2", "other-key-2b8e-never-print-me"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_file_gives_each_account_its_fields(tmp_path):
    path = write(
        tmp_path / "providers.yaml",
        """accounts:
  - name: acme
    provider_id: 4711
    api_key_env: DE_API_KEY_ACME
    base_url: https://api.example.com
    timezone: Europe/Berlin
    max_requests_per_second: 5
  - name: globex
    provider_id: globex-1
""",
    )
    acme, globex = accounts_from_env({"DE_PROVIDERS_FILE": str(path)})
    assert acme == Account("acme", "4711", "DE_API_KEY_ACME", "https://api.example.com", "Europe/Berlin", 5.0)
    assert globex == Account("globex", "globex-1")
    assert accounts_from_env({}) == (Account("default"),)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("accounts: []", "expected `accounts:` with a list"),
        ("- name: a", "expected `accounts:` with a list"),
        ("accounts:\n  - name: acme\n", "account 'acme': provider_id is missing"),
        ("accounts:\n  - name: Acme Corp\n    provider_id: p", "name must be lower-case letters"),
        ("accounts:\n  - name: default\n    provider_id: p", "is kept for the single account"),
        ("accounts:\n  - {name: a, provider_id: p}\n  - {name: a, provider_id: q}", "'a' is used 2 times"),
        ("accounts:\n  - {name: a, provider_id: p, api_key: s3cret}", "unknown field(s) api_key"),
        ("accounts:\n  - {name: a, provider_id: p, timezone: Mars/Olympus}", "not a known IANA time zone"),
        ("accounts:\n  - {name: a, provider_id: p, max_requests_per_second: fast}", "must be a number"),
        ("accounts:\n  - {name: a, provider_id: p, api_key_env: 'my key'}", "must name a variable DE_API_KEY_<NAME>"),
        # `$` let a trailing newline through, and the name failed later with a traceback
        ('accounts:\n  - {name: "acme\\n", provider_id: p}', "account 'acme\\n': name must be lower-case letters"),
        ("accounts:\n  - {name: a, provider_id: p, base_url: 'ftp://x'}", "account 'a': base_url='ftp://x' is not"),
        ("accounts: [", "not valid YAML at line 1"),
    ],
)
def test_a_mistake_in_the_file_is_one_line_naming_the_file(tmp_path, text, complaint):
    path = write(tmp_path / "providers.yaml", text)
    with pytest.raises(SettingsError) as raised:
        read_providers_file(path)
    assert complaint in str(raised.value)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(SettingsError, match="DE_PROVIDERS_FILE=.*nowhere.yaml: cannot read it"):
        accounts_from_env({"DE_PROVIDERS_FILE": str(tmp_path / "nowhere.yaml")})


# ---- whoever edits the file can send no secret elsewhere, nor a key in clear --------------------

PASSWORD = "pg-password-never-send-me"


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        # the database password's variable and a server of the editor's: the password was the bearer token
        (
            "api_key_env: DAGSTER_PG_PASSWORD, base_url: https://collector.example.net",
            "account 'thief': api_key_env='DAGSTER_PG_PASSWORD' must name a variable DE_API_KEY_<NAME>",
        ),
        ("api_key_env: ACME_API_KEY", "account 'thief': api_key_env='ACME_API_KEY' must name a variable"),
        ("api_key_env: DE_API_KEY", "api_key_env='DE_API_KEY' must name a variable"),  # the prefix alone
        ("api_key_env: DE_API_KEY_acme", "api_key_env='DE_API_KEY_acme' must name a variable"),
        ('api_key_env: "DE_API_KEY_ACME\\n"', "api_key_env='DE_API_KEY_ACME\\n' must name a variable"),
        (
            "api_key_env: DE_API_KEY_ACME, base_url: 'http://collector.example.net'",
            "account 'thief': base_url='http://collector.example.net' would send the API key unencrypted",
        ),
        ("base_url: 'https://user:pw@api.example.com'", "account 'thief': base_url must not carry credentials"),
    ],
)
def test_the_file_cannot_send_another_secret_or_a_key_in_clear(tmp_path, fields, complaint):
    path = write(tmp_path / "providers.yaml", f"accounts:\n  - {{name: thief, provider_id: p, {fields}}}\n")
    with pytest.raises(SettingsError) as raised:
        accounts_from_env({"DE_PROVIDERS_FILE": str(path), "DAGSTER_PG_PASSWORD": PASSWORD})
    text = str(raised.value)
    assert complaint in text and str(path) in text and "\n" not in text, text
    assert PASSWORD not in text and ":pw@" not in text


def test_a_key_of_the_prefix_goes_over_https_or_to_this_machine(tmp_path):
    path = write(
        tmp_path / "providers.yaml",
        """accounts:
  - {name: acme, provider_id: "4711", api_key_env: DE_API_KEY_ACME, base_url: "https://api.example.com/"}
  - {name: local, provider_id: "9", api_key_env: DE_API_KEY_LOCAL_2, base_url: "http://127.0.0.1:8765"}
""",
    )
    base = {"DE_PROVIDERS_FILE": str(path), "DE_DUCKDB_PATH": str(tmp_path / "w.duckdb")}
    acme, local = accounts_from_env(base)
    assert (acme.base_url, local.base_url) == ("https://api.example.com", "http://127.0.0.1:8765")
    assert local.api_source(base | {"DE_API_KEY_LOCAL_2": "k"}).settings.api_key == "k"
    # plain http to another machine, as for DE_API_BASE_URL: only with DE_ALLOW_INSECURE_HTTP=1
    write(path, "accounts:\n  - {name: lan, provider_id: p, base_url: 'http://api.lan.example.com'}\n")
    (lan,) = accounts_from_env(base | {"DE_ALLOW_INSECURE_HTTP": "1"})
    assert lan.base_url == "http://api.lan.example.com"


# ---- the file is small and plain: no YAML aliases ------------------------------------------------


def alias_bomb() -> str:
    """The "billion laughs": ten lines of aliases, each nine of the line before, 9**10 strings."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for before, name in zip("abcdefghi", "bcdefghij"):
        lines.append(f"{name}: &{name} [{','.join([f'*{before}'] * 9)}]")
    return "\n".join(lines) + "\naccounts:\n  - {name: *j, provider_id: p}\n"


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    """It was read, and the account's name (3.5 billion strings) printed in the error filled the
    memory. Read in a child with 1 GiB of address space, so that such a reader fails, quickly."""
    path = write(tmp_path / "providers.yaml", alias_bomb())
    assert path.stat().st_size < 600
    child = (
        "import sys, pathlib\n"
        "from de_pipeline.accounts import read_providers_file\n"
        "from de_pipeline.env import SettingsError\n"
        "try:\n    read_providers_file(pathlib.Path(sys.argv[1]))\n"
        "except SettingsError as exc:\n    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", child, str(path)], capture_output=True, text=True, timeout=60, preexec_fn=limit_memory
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        done.stdout == f"DE_PROVIDERS_FILE={path}: YAML anchors and aliases (&name, *name) are not allowed "
        "(line 1); write each account out in full\n"
    )


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("accounts:\n  - &acme {name: acme, provider_id: p}\n", "anchors and aliases (&name, *name) are not allowed"),
        ("# " + "x" * (1 << 20) + "\naccounts: [{name: a, provider_id: p}]\n", "is over 1048576 bytes (1 MiB)"),
        ("[" * 100_000, "not valid YAML (nested too deeply)"),
    ],
    ids=["an-anchor", "over-1-MiB", "deep-nesting"],
)
def test_a_file_too_big_or_too_clever_is_refused(tmp_path, text, complaint):
    path = write(tmp_path / "providers.yaml", text)
    with pytest.raises(SettingsError) as raised:
        read_providers_file(path)
    assert complaint in str(raised.value) and str(path) in str(raised.value)


def test_a_missing_key_variable_names_the_variable_and_the_account(tmp_path):
    account = Account("acme", "4711", "DE_API_KEY_ACME", "https://api.example.com")
    with pytest.raises(SettingsError, match="DE_API_KEY_ACME is not set: it holds the API key of account 'acme'"):
        account.api_source({"DE_DUCKDB_PATH": str(tmp_path / "w.duckdb")})
    base = {"DE_DUCKDB_PATH": str(tmp_path / "w.duckdb"), "DE_API_KEY_ACME": "k", "DE_API_KEY": "x"}
    settings = account.api_source(base).settings
    assert settings.api_key == "k" and settings.provider_id == "4711"
    process = WarehouseSettings.from_env(base)
    assert account.warehouse_settings(process).archive_dir == tmp_path / "w_archive" / "acme"  # its own folder


def test_an_accounts_settings_are_a_copy_of_the_process_settings_with_its_fields_replaced(tmp_path):
    """Not the environment again with the account's fields laid over as strings: settings the
    process holds that no variable says (set in code, or in a resource's run config) stay."""
    process = replace(
        WarehouseSettings.from_env({"DE_DUCKDB_PATH": str(tmp_path / "w.duckdb")}),
        lock_timeout_seconds=7.25,
        custom_labels=("PLANET",),
    )
    acme = Account("acme", "4711", "DE_API_KEY_ACME", timezone="Europe/Berlin")
    assert acme.warehouse_settings(process) == replace(
        process, account="acme", archive_dir=process.archive_dir / "acme", timezone="Europe/Berlin"
    )
    assert Account("default").warehouse_settings(process) is process
    environ = {"DE_API_BASE_URL": "https://api.example.com", "DE_API_KEY_ACME": "k", "DE_PAGE_SIZE": "250"}
    fast = replace(acme, max_requests_per_second=5.0)
    assert fast.api_source(environ).settings == replace(
        ApiSettings.shared_from_env(environ),
        base_url="https://api.example.com",
        api_key="k",
        provider_id="4711",
        max_requests_per_second=5.0,
    )


def test_an_account_on_the_simulator_serves_its_own_provider_in_its_own_time_zone():
    acme = Account("acme", "4711", timezone="Asia/Kolkata")
    config = simulator_config_from_env({}, timezone="Asia/Kolkata").serving("4711")
    source = acme.api_source({"DE_API_KEY": "ignored: the default account's"})
    assert source.simulated and source.settings.provider_id == "4711"
    assert config.seed != simulator_config_from_env({}).seed  # its own data
    assert embedded_simulator(config).base_url == source.settings.base_url


def test_a_warehouse_from_before_accounts_gets_the_provider_column(tmp_path):
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE TABLE sentiment_trends (day DATE NOT NULL, messages BIGINT NOT NULL)")
        connection.execute("INSERT INTO sentiment_trends VALUES ('2026-01-05', 3)")
        ensure_schema(connection)
        ensure_schema(connection)  # twice: nothing more to do
        assert connection.execute("SELECT provider, messages FROM sentiment_trends").fetchall() == [("default", 3)]
        assert connection.execute("SELECT count(*) FROM messages WHERE provider IS NULL").fetchone() == (0,)


@pytest.mark.slow
def test_two_accounts_with_one_wrong_key(start_simulator, tmp_path):
    """One simulator serves two providers. Account `good` loads its own data, both weeks;
    `bad` has a wrong key: its steps fail, with its name, and `good` goes on without it. Then `bad`'s key
    is fixed and its own, different data arrives, without touching `good`'s."""
    simulator = start_simulator(seed=7, other_providers=((OTHER_PROVIDER, OTHER_KEY),))
    first, last = recent_days(8)  # two weeks' runs: the fetch of the second beside the build of the first
    providers = write(
        tmp_path / "providers.yaml",
        f"""accounts:
  - {{name: good, provider_id: {simulator.config.provider_id}, api_key_env: DE_API_KEY_GOOD,
      base_url: {simulator.base_url}}}
  - {{name: bad, provider_id: {OTHER_PROVIDER}, api_key_env: DE_API_KEY_BAD, base_url: {simulator.base_url}}}
""",
    )
    env = {
        "DE_PROVIDERS_FILE": str(providers),
        "DE_API_KEY_GOOD": TEST_KEY,
        "DE_API_KEY_BAD": "wrong-key-never-print-me",
    }
    failed = run_cli("backfill", "--start", str(first), "--end", str(last), env=env)
    assert failed.returncode == 1
    assert "account bad failed" in failed.stderr and "the other accounts go on without it" in failed.stderr
    assert "account bad: run for" in failed.stderr.splitlines()[-1] and "401" in failed.stderr.splitlines()[-1]
    for secret in (TEST_KEY, OTHER_KEY, "wrong-key-never-print-me"):
        assert secret not in failed.stdout + failed.stderr

    def count(table: str, provider: str) -> int:
        return int(query(f"SELECT count(*) AS n FROM {table} WHERE provider = '{provider}'").n[0])

    good_messages = unique_messages(served(simulator, first, last))
    assert count("messages", "good") == len(good_messages)
    assert count("customer_journeys", "good") > 0
    assert count("messages", "bad") == 0
    good_rows = {name: f"SELECT * {'EXCLUDE (fetched_at)' if name == 'messages' else ''} FROM {name} "
                       "WHERE provider = 'good' ORDER BY ALL"
                 for name in ("messages", *(t.name for t in DAILY_TABLES))}  # fmt: skip
    before = {name: query(sql) for name, sql in good_rows.items()}

    fixed = run_cli("backfill", "--start", str(first), "--end", str(last), env=env | {"DE_API_KEY_BAD": OTHER_KEY})
    assert fixed.returncode == 0, fixed.stderr
    other_messages = unique_messages(served(simulator, first, last, OTHER_PROVIDER))
    assert count("messages", "bad") == len(other_messages)
    assert set(other_messages.text) != set(good_messages.text)  # its own data
    for name, sql in good_rows.items():  # re-fetched, the same rows; bad's run touched none of them
        pd.testing.assert_frame_equal(query(sql), before[name], obj=name)
    # each account's tables are built from its own messages only
    trends = query("SELECT provider, sum(messages) AS n FROM sentiment_trends GROUP BY ALL ORDER BY ALL")
    assert trends.n.tolist() == [len(other_messages), len(good_messages)]
    # every table's per-account counts add up, as the checks say; the views split by account
    overview = query("SELECT provider, sum(messages) AS n FROM daily_overview GROUP BY ALL ORDER BY ALL")
    assert overview.to_dict("list") == {"provider": ["bad", "good"], "n": [len(other_messages), len(good_messages)]}

    # a day of one account is replaced without touching the other's
    one_day = run_cli("backfill", "--start", str(last), "--end", str(last), env=env | {"DE_API_KEY_BAD": OTHER_KEY})
    assert one_day.returncode == 0, one_day.stderr
    assert count("messages", "good") == len(good_messages)
    assert count("messages", "bad") == len(other_messages)


@pytest.mark.slow
def test_the_demo_with_two_providers(clean_environment):
    done = run_cli("demo", "--days", "3", "--providers", "2", timeout=600)
    assert done.returncode == 0, done.stderr
    keys = query("SELECT key FROM warehouse_meta ORDER BY key").key.tolist()
    assert keys == ["source/demo_1", "source/demo_2"]
    archive = clean_environment.with_name(clean_environment.stem + "_archive")
    for account in ("demo_1", "demo_2"):
        assert len(list((archive / account).glob("day=*/data.parquet"))) == 3  # its own archive
        # its own dashboard beside the one of both (or a page saying it has no data yet)
        assert f"account {account}" in clean_environment.with_name(f"dashboard-{account}.html").read_text()
    # each account's own data (a simulated outage may leave one day of one of them empty)
    journeys = query("SELECT provider, list(message_key) AS ids FROM messages GROUP BY ALL")
    assert set(journeys.provider) <= {"demo_1", "demo_2"} and len(journeys) >= 1
    if len(journeys) == 2:
        assert not set(journeys.ids[0]) & set(journeys.ids[1])
    for provider in journeys.provider:
        assert f"| {provider}" in done.stdout  # the Accounts headline
