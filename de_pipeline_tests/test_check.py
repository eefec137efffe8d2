"""`de-pipeline check`: one test server per request form; the settings check writes make a
backfill store exactly what the server served; a capture replays to the same settings; the
key never shows; a server that takes no form of the key is one line and exit 1."""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from dagster import DagsterInstance
from dotenv import dotenv_values

from de_pipeline.api import ApiSettings, DigitalEngagementClient, Window
from de_pipeline.api.capture import CAPTURE_FILE, read_capture
from de_pipeline.api.probe import probe
from de_pipeline.api.settings import CUSTOMER_SESSION_PATH
from de_pipeline.cli import main
from de_pipeline.defs.runner import run_range
from de_pipeline.env import load_env_file
from de_pipeline.simulator import ScriptedResponse
from de_pipeline.simulator.replay import Replay
from de_pipeline.warehouse.settings import ENTITY_LABELS
from de_pipeline_tests.conftest import TEST_KEY, point_at
from de_pipeline_tests.helpers import query, recent_days, run_cli, served, start_cli, unique_messages
from de_pipeline_tests.test_api_client import TRICKY_KEY, assert_secret_free, encodings

PARTNER = "partner-42"
SESSION_IN_PATH = CUSTOMER_SESSION_PATH + "/{customersessionid}"
SMALL = {"messages_per_day": 40, "max_page_size": 15}  # a few pages a day, so the page cap shows
PLACEHOLDER = r"\[[A-Z]+\]|<[A-Z]+>"  # a label the capture keeps, as the article writes it
CONNECTION = {"DE_API_BASE_URL", "DE_PROVIDER_ID"}  # written for a real server, whatever its forms


def check(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def found(env_file: Path) -> dict[str, str]:
    """The request-form settings of an env file (not the base URL and provider id)."""
    return {name: value for name, value in dotenv_values(env_file).items() if name not in CONNECTION}


def table_line(out: str, topic: str) -> str:
    (line,) = [line for line in out.splitlines() if re.match(rf"(ok|!!)\s+{re.escape(topic)}\s", line)]
    return line


def stored_messages() -> list[tuple[Any, ...]]:
    frame = query("SELECT ts_ms, sessionid, text FROM messages ORDER BY ALL")
    return [tuple(row) for row in frame.itertuples(index=False)]


def served_messages(simulator, first, last) -> list[tuple[Any, ...]]:
    frame = unique_messages(served(simulator, first, last))
    return sorted(zip(frame.ts, frame.sessionid, frame.text, strict=True))


def page_cap_seen(simulator) -> list[str]:
    """The first words of check's page cap: the cap when the window it pages through, UTC
    yesterday, holds more than one page; 'not reached' when it holds a page or less (a quiet
    Sunday can hold 4 messages at 40 a day). An empty yesterday (an outage) makes check page
    through the last 7 days, which hold many pages."""
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    held = len(served(simulator, yesterday, yesterday))
    cap = simulator.config.max_page_size
    return [str(cap), "rows"] if held > cap or not held else ["not", "reached"]


# ---- one server per form: check finds it, and a backfill with its settings stores it all ----------


FORMS = {
    "epoch-milliseconds": ({"epoch_unit": "ms"}, {}, {"DE_EPOCH_UNIT": "ms"}),
    "key-provider-partner-as-query-parameters": (
        {"auth_in": "query", "providerid_in": "query", "partner_id": PARTNER},
        {"DE_PARTNER_ID": PARTNER},
        {"DE_AUTH_IN": "query", "DE_PROVIDERID_IN": "query", "DE_PARTNER_ID": PARTNER},
    ),
    "key-in-a-header": (
        {"auth_in": "header", "api_key_header": "x-api-key"},
        {},
        {"DE_AUTH_IN": "header", "DE_API_KEY_HEADER": "x-api-key"},
    ),
    "customer-session-get-id-in-path": (
        {"customer_session_path": SESSION_IN_PATH},
        {},
        {"DE_CUSTOMER_SESSION_PATH": SESSION_IN_PATH},
    ),
}


@pytest.mark.parametrize(("served_form", "given", "expected"), list(FORMS.values()), ids=list(FORMS))
def test_check_finds_the_form_and_its_settings_fetch_what_was_served(
    start_simulator, monkeypatch, capsys, tmp_path, served_form, given, expected
):
    simulator = start_simulator(**SMALL, **served_form)
    point_at(monkeypatch, simulator)
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    env_file = tmp_path / "found.env"
    code, out, err = check(capsys, "--write-env", str(env_file))
    assert code == 0, out + err
    assert found(env_file) == expected, out
    assert not re.search(r"^DE_API_KEY=", env_file.read_text(), re.MULTILINE)
    assert TEST_KEY not in env_file.read_text()
    assert dotenv_values(env_file)["DE_API_BASE_URL"] == simulator.base_url
    assert table_line(out, "paging: page cap").split()[4:6] == page_cap_seen(simulator)

    for name, value in dotenv_values(env_file).items():  # as `de-pipeline` reads .env
        monkeypatch.setenv(name, value)
    first, last = recent_days(1)
    run_range(first, last)
    assert stored_messages() == served_messages(simulator, first, last)
    # and the customer-session call, in the form found
    window = Window(*simulator.dataset.day_bounds_ms(first))
    held = simulator.dataset.messages_between(window.start_ms, window.end_ms)
    csid = held[-1]["customersessionid"]
    with DigitalEngagementClient(ApiSettings.from_env()) as client:
        journey = [m for page in client.customer_session_pages(csid, window) for m in orjson.loads(page.body)]
    assert journey == [m for m in held if m["customersessionid"] == csid]


def test_check_reports_sessionid_as_a_number_and_ts_as_a_string(start_simulator, monkeypatch, capsys):
    simulator = start_simulator(**SMALL, sessionid_type="number", ts_type="string")
    point_at(monkeypatch, simulator)
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first_of_yesterday = int((midnight - timedelta(days=1)).timestamp()) * 1000  # the first message the probe reads
    record = {"text": "segment ten", "ts": first_of_yesterday, "sessionid": "12.10", "customersessionid": "9.0001"}
    simulator.dataset.inject([(first_of_yesterday, orjson.dumps(record))])
    code, out, err = check(capsys)
    assert code == 0, out + err
    sessionid, ts = table_line(out, "type of sessionid"), table_line(out, "type of ts")
    assert sessionid.startswith("!!") and sessionid.split()[4] == "number", out
    words = " ".join(out.split())  # the evidence is wrapped
    assert "e.g. 12.10" in words  # its literal digits: segment 10, not 1
    assert ts.startswith("!!") and ts.split()[4] == "string", out
    assert f'e.g. "{first_of_yesterday}"' in words
    assert table_line(out, "type of customersessionid").startswith("ok")


# ---- a capture for bug reports ------------------------------------------------------------------


def test_a_replayed_capture_gives_the_same_settings(start_simulator, monkeypatch, capsys, tmp_path):
    form = {"epoch_unit": "ms", "auth_in": "query", "providerid_in": "query", "partner_id": PARTNER}
    simulator = start_simulator(**SMALL, **form, customer_session_path=SESSION_IN_PATH)
    point_at(monkeypatch, simulator)
    monkeypatch.setenv("DE_PARTNER_ID", PARTNER)
    recorded_env, replayed_env, capture_dir = tmp_path / "recorded.env", tmp_path / "replayed.env", tmp_path / "cap"
    code, out, err = check(capsys, "--record", str(capture_dir), "--write-env", str(recorded_env))
    assert code == 0, out + err
    asked = len(simulator.requests)
    assert f"Recorded {asked} answers in {capture_dir}" in out

    # the capture: every answer, no message text, lengths and placeholders kept
    capture = json.loads((capture_dir / CAPTURE_FILE).read_text())
    assert len(capture["answers"]) == asked
    bodies = [orjson.loads(a["body"]) for a in capture["answers"] if a["status"] == 200]
    recorded = {(m["customersessionid"], m["sessionid"], m["ts"]): m for body in bodies for m in body}
    now_ms = int(time.time() * 1000)
    held = simulator.dataset.messages_between(now_ms - 8 * 86_400_000, now_ms)  # the probe asks at most 7 days back
    held = {(m["customersessionid"], m["sessionid"], m["ts"]): m for m in held}
    assert recorded and set(recorded) <= set(held)
    capture_text = (capture_dir / CAPTURE_FILE).read_text()
    for identity, message in recorded.items():
        original = held[identity]["text"]
        placeholders = re.findall(PLACEHOLDER, original)
        assert len(message["text"]) == len(original)
        if re.search(r"[^\W_]", re.sub(PLACEHOLDER, "", original)):  # letters to blank
            assert message["text"] != original
        if len(original) >= 12:  # a short text ("4", "ok") may be found in the capture by chance
            assert original not in capture_text
        for placeholder in placeholders:
            assert placeholder in message["text"]

    # served again by `de-pipeline simulate --replay`, check finds the same settings
    port = free_port()
    server = start_cli("simulate", "--replay", str(capture_dir), "--port", str(port))
    try:
        line = server.stdout.readline()
        assert f"replaying {asked} answers of {simulator.base_url} on http://127.0.0.1:{port}" in line, line
        monkeypatch.setenv("DE_API_BASE_URL", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("DE_API_KEY", "any-key")  # the capture holds no key: the replay takes any
        code, out, err = check(capsys, "--write-env", str(replayed_env))
    finally:
        server.kill()
        server.communicate(timeout=30)
    assert code == 0, out + err
    assert found(replayed_env) == found(recorded_env) != {}
    assert found(recorded_env)["DE_CUSTOMER_SESSION_PATH"] == SESSION_IN_PATH


def test_a_capture_replayed_days_later_gives_the_same_findings(start_simulator, tmp_path):
    simulator = start_simulator(**SMALL, epoch_unit="ms")
    settings = ApiSettings(simulator.base_url, TEST_KEY, simulator.config.provider_id)
    from de_pipeline.api.capture import write_capture

    first = probe(settings, labels=ENTITY_LABELS)
    write_capture(first, tmp_path, {}, ENTITY_LABELS)
    later = time.time() + 3 * 86_400
    replay = Replay(read_capture(tmp_path), now=lambda: later)
    replay.start()
    try:
        again = probe(
            ApiSettings(replay.base_url, "any-key", settings.provider_id),
            labels=ENTITY_LABELS,
            now=datetime.fromtimestamp(later, UTC),
        )
    finally:
        replay.stop()
    assert replay.unmatched == 0 and again.ok
    assert [(f.topic, f.verdict) for f in again.findings] == [(f.topic, f.verdict) for f in first.findings]
    assert [(s.name, s.value) for s in again.settings if s.name not in CONNECTION] == [
        (s.name, s.value) for s in first.settings if s.name not in CONNECTION
    ]


def free_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return probe_socket.getsockname()[1]


# ---- the key --------------------------------------------------------------------------------------


def test_the_key_never_appears_in_the_output_the_env_file_or_the_capture(
    start_simulator, monkeypatch, capsys, caplog, tmp_path
):
    caplog.set_level(logging.DEBUG)  # urllib3's debug lines show every URL, its query string too
    simulator = start_simulator(**SMALL, api_key=TRICKY_KEY, auth_in="query", partner_id=PARTNER)
    point_at(monkeypatch, simulator)
    monkeypatch.setenv("DE_PARTNER_ID", PARTNER)
    # a message that echoes the key in every encoding, in fields the capture keeps as they are
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    at = int((midnight - timedelta(hours=12)).timestamp()) * 1000
    echoes = ",".join(f'"echo_{n}":"{form}"' for n, form in enumerate(encodings(TRICKY_KEY).values()))
    echoes = echoes.replace('"\\"', '"\\\\"')  # a form ending in a backslash stays a JSON string
    simulator.dataset.inject([(at, f'{{"ts":{at},"sessionid":"1.1","text":"echo",{echoes}}}'.encode())])
    # and a 429 (retried) that echoes it in a rate-limit header and its body
    echo = encodings(TRICKY_KEY)["quote"]
    simulator.script([ScriptedResponse(429, f'{{"error":"{echo}"}}'.encode(), {"X-RateLimit-Key": echo})])
    env_file, capture_dir = tmp_path / "found.env", tmp_path / "capture"
    code, out, err = check(capsys, "--write-env", str(env_file), "--record", str(capture_dir))
    assert code == 0, out + err
    assert "X-RateLimit-Key: ***" in out  # the header was there, masked
    assert "***" in (capture_dir / CAPTURE_FILE).read_text()
    texts = {
        "output": out + err,
        "log": caplog.text,
        "env file": env_file.read_text(),
        "capture": (capture_dir / CAPTURE_FILE).read_text(),
    }
    for where, text in texts.items():
        assert_secret_free(text, TRICKY_KEY)
        assert not [name for name, form in encodings(TRICKY_KEY).items() if form in text], where


# ---- no working configuration -----------------------------------------------------------------------


def test_check_exits_1_with_one_line_when_every_form_of_the_key_is_refused(start_simulator):
    simulator = start_simulator(**SMALL)
    env = {"DE_API_BASE_URL": simulator.base_url, "DE_API_KEY": TEST_KEY + "-wrong", "DE_PROVIDER_ID": "p"}
    out = run_cli("check", "--write-env", "never.env", env=env)
    assert out.returncode == 1
    (line,) = out.stderr.splitlines()
    assert line.startswith("de-pipeline check: the server refused the key in all 6 forms tried (HTTP 401"), line
    assert "refused in every form" in out.stdout and "never.env not written" in out.stdout
    assert not Path("never.env").exists()
    assert_secret_free(out.stdout + out.stderr)
    assert {r.status for r in simulator.requests} == {401} and len(simulator.requests) == 6


def test_check_of_an_account_without_messages_names_the_windows_it_tried(start_simulator, monkeypatch, capsys):
    simulator = start_simulator(messages_per_day=0, epoch_unit="ms")
    point_at(monkeypatch, simulator)
    code, out, err = check(capsys)
    assert code == 1
    (line,) = err.splitlines()
    assert "DE_EPOCH_UNIT cannot be told" in line, line
    assert table_line(out, "epoch unit of start/end").startswith("!!")
    words = " ".join(out.split())  # the evidence is wrapped
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for first, last in (
        (midnight - timedelta(days=1), midnight),
        (midnight - timedelta(days=6), midnight + timedelta(days=1)),
    ):
        assert f"[{first:%Y-%m-%dT%H:%M:%SZ}, {last:%Y-%m-%dT%H:%M:%SZ})" in words  # both windows tried
    assert len(simulator.requests) == 1 + 3  # the key's form, then yesterday in ms, 7 days in s and ms


def test_check_of_a_server_that_cannot_be_reached_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("DE_API_BASE_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("DE_API_KEY", TEST_KEY)
    monkeypatch.setenv("DE_PROVIDER_ID", "p")
    monkeypatch.setenv("DE_MAX_RETRIES", "0")
    code, out, err = check(capsys)
    assert code == 1
    (line,) = err.splitlines()
    assert line.startswith("de-pipeline check: the server cannot be reached:"), line


# ---- the env file -------------------------------------------------------------------------------------


def test_the_env_file_fills_only_variables_not_set(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("# written by de-pipeline check\nDE_EPOCH_UNIT=ms\nDE_AUTH_IN=query\n")
    monkeypatch.chdir(tmp_path)
    environ = {"DE_EPOCH_UNIT": "s"}
    assert load_env_file(environ) == ["DE_AUTH_IN"]
    assert environ == {"DE_EPOCH_UNIT": "s", "DE_AUTH_IN": "query"}
    assert load_env_file({"DE_ENV_FILE": "off"}) == []
    with pytest.raises(Exception, match="DE_ENV_FILE=missing.env: no such file"):
        load_env_file({"DE_ENV_FILE": "missing.env"})


def test_de_pipeline_reads_the_env_file_that_check_wrote(start_simulator, tmp_path):
    """The first real run of a new user: a server taking start/end in milliseconds."""
    simulator = start_simulator(**SMALL, epoch_unit="ms")
    env = {
        "DE_API_BASE_URL": simulator.base_url,
        "DE_API_KEY": TEST_KEY,
        "DE_PROVIDER_ID": simulator.config.provider_id,
        "DE_ENV_FILE": "",  # the default: .env in the current directory
    }
    out = run_cli("check", "--write-env", ".env", env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "DE_EPOCH_UNIT=ms" in (tmp_path / ".env").read_text()
    assert "`de-pipeline` reads .env from the directory it runs in" in out.stdout
    first, last = recent_days(1)
    out = run_cli("backfill", "--start", str(first), "--end", str(last), env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "read DE_API_BASE_URL" not in out.stderr and "DE_EPOCH_UNIT" in out.stderr  # set ones win
    assert stored_messages() == served_messages(simulator, first, last)


# ---- the Dagster job ----------------------------------------------------------------------------------


def test_the_check_connection_job_logs_the_table(start_simulator, monkeypatch):
    from de_pipeline.defs.definitions import defs

    simulator = start_simulator(**SMALL, epoch_unit="ms")
    point_at(monkeypatch, simulator)
    job = defs().resolve_job_def("check_connection")
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance)
        assert result.success
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
        (table,) = [m for m in messages if m.startswith("de-pipeline check:")]
        assert re.search(r"ok\s+epoch unit of start/end\s+ms\s", table) and "DE_EPOCH_UNIT=ms" in table
        monkeypatch.setenv("DE_API_KEY", TEST_KEY + "-wrong")
        failed = job.execute_in_process(instance=instance, raise_on_error=False)
        assert not failed.success
        assert "refused the key in all 6 forms" in str(failed.get_run_failure_event().message) + "".join(
            str(e.event_specific_data) for e in failed.all_events if e.is_step_failure
        )
