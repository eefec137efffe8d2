"""Bad answers from the API, one case each: either the run fails with one clear line and the
day keeps what it had, or the record lands in rejected_messages with a reason (or is kept,
coerced) -- and the counts always reconcile. And settings out of range: one line each."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

import de_pipeline
from de_pipeline.api.settings import ApiSettings
from de_pipeline.api.simulator import ScriptedResponse, simulator_config_from_env
from de_pipeline.dashboard.settings import DashboardSettings
from de_pipeline.defs.partitions import CalendarSettings
from de_pipeline.env import SettingsError
from de_pipeline.runner import RunFailedError, run_range
from de_pipeline.warehouse.archive import archive_file
from de_pipeline.warehouse.settings import WarehouseSettings
from de_pipeline_tests.conftest import point_at
from de_pipeline_tests.helpers import busy_day, dump, query

DAY = busy_day(7)  # the simulators' default seed
MISSING = object()  # a field the record leaves out


@pytest.fixture
def simulator(start_simulator, monkeypatch):
    simulator = start_simulator(messages_per_day=40)
    point_at(monkeypatch, simulator)
    # the scripted answers are the day's window's, in order: one window, not the day in parts
    monkeypatch.setenv("DE_MAX_IN_FLIGHT", "1")
    return simulator


def day_start(simulator) -> int:
    return simulator.dataset.day_bounds_ms(DAY)[0]


def record(simulator, number: int, **changes: Any) -> dict[str, Any]:
    """A valid message of DAY (contract fields), with `changes` applied (MISSING removes)."""
    ts = day_start(simulator) + 3_600_000 + number * 1000
    message = {
        "text": f"hello, I need help with my bill (message {number})",
        "timestamp": "2026-01-01 01:00:00",
        "ts": ts,
        "sendername": "Ann",
        "senderemail": "",
        "sendertype": "customer",
        "sessionid": "123.1",
        "sentiment": 0.25,
        "workflow": "billing-flow",
        "workflownodeid": "node-7",
        "topic": "billing",
        "score": 0.8,
        "topmatches": [
            {"topic": "billing", "score": 0.8, "text": "pay my bill"},
            {"topic": "refund", "score": 0.1, "text": "get my money back"},
        ],
        "lang": "en",
        "customersessionid": "-4321.8765",
        "sessionchannel": "whatsapp",
        "sessionchannelinfo": {"number": "+44 20 7946 0000"},
        "chattype": "bot",
    }
    for name, value in changes.items():
        if value is MISSING:
            del message[name]
        else:
            message[name] = value
    return message


def serve(simulator, page: bytes) -> None:
    """The day's window answers `page`, then the end."""
    simulator.script([ScriptedResponse(200, body=page), ScriptedResponse(200, body=b"[]")])


def meta_of(results, asset: str) -> dict[str, Any]:
    """The per-partition metadata of `asset` for DAY, as plain values."""
    merged: dict[str, Any] = {}
    for result in results:
        for m in result.asset_materializations_for_node(asset):
            if m.partition == DAY.isoformat():
                merged.update({k: v.value for k, v in m.metadata.items()})
    return merged


def run_metadata(results, asset: str) -> dict[str, Any]:
    """The run-level metadata of `asset` (the materialization without a per-day split)."""
    events = [m for result in results for m in result.asset_materializations_for_node(asset)]
    return {k: v.value for k, v in events[0].metadata.items()}


def assert_reconciles(results, fetched: int, stored: int, duplicates: int, rejected: int) -> None:
    """fetched = stored + duplicates + rejected, from metadata and from the tables."""
    assert fetched == stored + duplicates + rejected  # the test's own arithmetic
    assert run_metadata(results, "raw_messages")["records_fetched"] == fetched
    assert meta_of(results, "raw_messages")["records"] == fetched
    meta = meta_of(results, "messages")
    assert (meta["records_archived"], meta["messages"], meta["duplicates_dropped"], meta["rejected"]) == (
        fetched,
        stored,
        duplicates,
        rejected,
    )
    counts = query(
        f"SELECT (SELECT count(*) FROM messages WHERE day = DATE '{DAY}') AS stored, "
        f"(SELECT count(*) FROM rejected_messages WHERE archive_day = DATE '{DAY}') AS rejected"
    )
    assert (counts.stored[0], counts.rejected[0]) == (stored, rejected)
    archived = query(f"SELECT count(*) AS n FROM read_parquet('{archive_path()}')")
    assert archived.n[0] == fetched


def archive_path() -> Path:
    return archive_file(WarehouseSettings.from_env().archive_dir, DAY)


def stored_row(text: str) -> dict[str, Any]:
    rows = query(f"SELECT * FROM messages WHERE text = '{text}'")
    assert len(rows) == 1, f"expected one stored message {text!r}, found {len(rows)}"
    return rows.iloc[0].to_dict()


# ---- a record the pipeline rejects, or keeps (coerced) -------------------------------------


def rejected(reason: str):
    return ("rejected", reason)


def kept(column: str, value: Any):
    return ("kept", column, value)


RECORD_CASES = [
    pytest.param(
        {"ts": lambda r: str(r["ts"])}, rejected("ts is not an integer (epoch milliseconds)"), id="ts-as-string"
    ),
    pytest.param({"ts": MISSING}, rejected("ts is missing"), id="ts-missing"),
    pytest.param({"sentiment": "-0.75"}, kept("sentiment", -0.75), id="sentiment-numeric-string-coerced"),
    pytest.param({"sentiment": "very happy"}, rejected("sentiment is not a number"), id="sentiment-non-numeric-string"),
    pytest.param({"score": "0.35"}, kept("score", 0.35), id="score-numeric-string-coerced"),
    pytest.param({"score": "high"}, rejected("score is not a number"), id="score-non-numeric-string"),
    pytest.param({"score": 1.5}, rejected("score is outside [0, 1]"), id="score-above-1"),
    pytest.param({"score": -0.01}, rejected("score is outside [0, 1]"), id="score-below-0"),
    pytest.param({"score": "1.5"}, rejected("score is outside [0, 1]"), id="score-string-out-of-range"),
    pytest.param({"topmatches": "billing"}, rejected("topmatches is not a list"), id="topmatches-a-string"),
    pytest.param({"topmatches": {"topic": "billing", "score": 0.8}}, rejected("topmatches is not a list"),
                 id="topmatches-an-object"),
    pytest.param({"sessionchannelinfo": "@shop on twitter"}, kept("sessionchannelinfo", "@shop on twitter"),
                 id="sessionchannelinfo-a-string-kept"),
    pytest.param({"agentid": 17, "routing": {"queue": "vip", "hops": [1, 2]}},
                 kept("extra_fields", {"agentid": 17, "routing": {"queue": "vip", "hops": [1, 2]}}),
                 id="unknown-extra-fields-kept"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "expected"), RECORD_CASES)
def test_a_bad_record_is_rejected_or_kept(simulator, changes, expected):
    changes = {k: (v(record(simulator, 2)) if callable(v) else v) for k, v in changes.items()}
    varied = record(simulator, 2, **changes)
    good = [record(simulator, 0), record(simulator, 1)]
    page = [good[0], good[1], varied, good[0]]  # the last one repeats the first: a duplicate
    serve(simulator, orjson.dumps(page))

    results = run_range(DAY, DAY)

    if expected[0] == "rejected":
        assert_reconciles(results, fetched=4, stored=2, duplicates=1, rejected=1)
        rows = query("SELECT * FROM rejected_messages")
        assert list(rows.reason) == [expected[1]]
        assert json.loads(rows.raw[0]) == varied  # the record as sent
        assert set(query("SELECT text FROM messages").text) == {g["text"] for g in good}
    else:
        assert_reconciles(results, fetched=4, stored=3, duplicates=1, rejected=0)
        _, column, value = expected
        row = stored_row(varied["text"])
        stored = json.loads(row[column]) if column in ("sessionchannelinfo", "extra_fields") else row[column]
        assert stored == value
        assert isinstance(stored, type(value))  # "-0.75" became a number, not a string
        # the good records carry no extra fields; an object channel info stays an object
        assert stored_row(good[0]["text"])["extra_fields"] is None
        assert json.loads(stored_row(good[0]["text"])["sessionchannelinfo"]) == good[0]["sessionchannelinfo"]


def test_an_array_of_non_objects_is_rejected_record_by_record(simulator):
    good = record(simulator, 0)
    elements = [1, "a string", None, [1, 2], True, 2.5, {}]  # {} is an object without ts
    page = b"[" + b",".join(orjson.dumps(e) for e in [good, *elements]) + b"]"
    serve(simulator, page)

    results = run_range(DAY, DAY)

    assert_reconciles(results, fetched=8, stored=1, duplicates=0, rejected=7)
    rows = query("SELECT reason, raw FROM rejected_messages")
    reasons = {json.dumps(json.loads(raw)): reason for reason, raw in zip(rows.reason, rows.raw)}
    assert reasons == {
        "1": "not a JSON object",
        '"a string"': "not a JSON object",
        "null": "not a JSON object",
        "[1, 2]": "not a JSON object",
        "true": "not a JSON object",
        "2.5": "not a JSON object",
        "{}": "ts is missing",
    }
    assert list(query("SELECT text FROM messages").text) == [good["text"]]


def test_a_huge_text_is_kept_intact(simulator):
    text = "".join(f'line {i}: "quoted" ünïcødé ✓ \\ back\\slash\n' for i in range(50_000))[: 2 * 1024 * 1024]
    assert len(text) == 2 * 1024 * 1024
    huge = record(simulator, 1, text=text)
    page = [record(simulator, 0), huge, record(simulator, 2)]
    serve(simulator, orjson.dumps(page))

    results = run_range(DAY, DAY)

    assert_reconciles(results, fetched=3, stored=3, duplicates=0, rejected=0)
    stored = query(f"SELECT text FROM messages WHERE ts_ms = {huge['ts']}").text
    assert len(stored) == 1 and stored[0] == text


def test_invalid_utf8_is_repaired_and_the_message_kept(simulator, capfd):
    page = orjson.dumps([record(simulator, 0, text="caf@@ and more"), record(simulator, 1)])
    page = page.replace(b"@@", b"\xe9\xff")  # Latin-1 'é' and a byte no UTF-8 has
    serve(simulator, page)

    results = run_range(DAY, DAY)

    assert_reconciles(results, fetched=2, stored=2, duplicates=0, rejected=0)
    assert set(query("SELECT text FROM messages").text) == {"caf\ufffd\ufffd and more", record(simulator, 1)["text"]}
    assert run_metadata(results, "raw_messages")["pages_with_repaired_utf8"] == 1
    logged = capfd.readouterr().err
    warnings = [line for line in logged.splitlines() if "not valid UTF-8" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0] and "U+FFFD" in warnings[0], logged[-3000:]


# ---- an answer the pipeline refuses: the run fails, the day keeps what it had -------------

BAD_BODIES = [
    pytest.param(b"upstream proxy says: hello", "the body is not valid JSON", id="body-not-json"),
    pytest.param(b'[{"ts": 1795651201000, "text": "cut off', "the body is not valid JSON", id="truncated-json"),
    pytest.param(b"", "the body is not valid JSON", id="empty-body"),
    pytest.param(b'{"messages": [], "next": null}', "the body is a JSON dict, not an array of messages",
                 id="json-object-not-array"),
]  # fmt: skip


def snapshot() -> dict[str, Any]:
    """What the warehouse and the archive hold for the test's day."""
    archive_dir = WarehouseSettings.from_env().archive_dir
    # every entry (a leftover staging folder counts); files by bytes, the day's file also by
    # mtime (the _source.txt marker is rewritten by each run, with the same text)
    files = {str(p.relative_to(archive_dir)): None if p.is_dir() else
             (p.read_bytes(), p.stat().st_mtime_ns if p.suffix == ".parquet" else None)
             for p in sorted(archive_dir.rglob("*"))}  # fmt: skip
    return {"messages": dump("messages"), "rejected": dump("rejected_messages"), "archive": files}


def loaded_day(simulator) -> dict[str, Any]:
    run_range(DAY, DAY)
    before = snapshot()
    assert len(before["messages"]) > 10  # the day holds real rows that a failure must not touch
    assert archive_path().exists() and str(archive_path().relative_to(archive_path().parents[1])) in before["archive"]
    return before


def assert_clear_failure(exc: RunFailedError, *phrases: str) -> None:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text and 'File "' not in text, text
    assert text.startswith(f"run for {DAY} .. {DAY} failed: raw_messages: "), text
    assert "POST /api/v1/redacted/provider" in text, text  # names the request
    for phrase in phrases:
        assert phrase in text, text


@pytest.mark.parametrize(("body", "problem"), BAD_BODIES)
def test_a_body_that_is_not_an_array_fails_the_run_and_keeps_the_day(simulator, body, problem):
    before = loaded_day(simulator)
    served_first = record(simulator, 0)
    simulator.script([ScriptedResponse(200, body=orjson.dumps([served_first])), ScriptedResponse(200, body=body)])

    with pytest.raises(RunFailedError) as failure:
        run_range(DAY, DAY)

    assert_clear_failure(failure.value, problem, "offset 1")
    assert snapshot() == before
    assert served_first["text"] not in set(query("SELECT text FROM messages").text)


def test_retries_exhausted_fails_the_run_and_keeps_the_day(simulator, monkeypatch):
    monkeypatch.setenv("DE_MAX_RETRIES", "2")
    before = loaded_day(simulator)
    served_first = record(simulator, 0)
    unavailable = ScriptedResponse(503, body=b"<html><h1>Service Unavailable</h1></html>",
                                   headers={"Content-Type": "text/html"})  # fmt: skip
    simulator.script([ScriptedResponse(200, body=orjson.dumps([served_first]))] + [unavailable] * 3)
    seen = len(simulator.requests)

    with pytest.raises(RunFailedError) as failure:
        run_range(DAY, DAY)

    assert_clear_failure(failure.value, "gave up after 3 attempts", "last failure: HTTP 503", "offset 1")
    assert [r.status for r in simulator.requests[seen:]] == [200, 503, 503, 503]  # 1 try + 2 retries
    assert snapshot() == before
    assert served_first["text"] not in set(query("SELECT text FROM messages").text)


def test_a_memory_budget_too_small_names_the_setting_and_keeps_the_day(simulator, monkeypatch):
    before = loaded_day(simulator)
    monkeypatch.setenv("DE_DUCKDB_MEMORY_LIMIT", "8MB")  # below what DuckDB's JSON reader needs

    with pytest.raises(RunFailedError) as failure:
        run_range(DAY, DAY)

    text = str(failure.value)
    assert "\n" not in text and "Traceback" not in text and 'File "' not in text, text
    assert "memory budget DE_DUCKDB_MEMORY_LIMIT=8MB" in text, text
    assert "raise it" in text, text
    assert snapshot() == before


# ---- a setting out of range: one line naming it and its range, before any request --------------


def test_a_huge_timeout_stops_the_run_naming_the_setting(simulator, monkeypatch):
    """DE_REQUEST_TIMEOUT=1e308 ended in an OverflowError inside the socket's timer."""
    monkeypatch.setenv("DE_REQUEST_TIMEOUT", "1e308")
    with pytest.raises(RunFailedError) as failure:
        run_range(DAY, DAY)
    text = str(failure.value)
    assert "DE_REQUEST_TIMEOUT=1e308 must be in [0.1, 3600]" in text and "\n" not in text, text
    assert "Overflow" not in text


def test_a_huge_deadline_stops_the_run_instead_of_lifting_the_deadline(simulator, monkeypatch):
    """DE_REQUEST_DEADLINE_SECONDS=1e308 killed the deadline's watchdog thread (its wait
    overflowed), and the run went on with no deadline at all."""
    monkeypatch.setenv("DE_REQUEST_DEADLINE_SECONDS", "1e308")
    seen = len(simulator.requests)
    with pytest.raises(RunFailedError) as failure:
        run_range(DAY, DAY)
    text = str(failure.value)
    assert "DE_REQUEST_DEADLINE_SECONDS=1e308 must be in [0.1, 3600]" in text and "\n" not in text, text
    assert len(simulator.requests) == seen  # refused before any request


def numeric_settings() -> list[str]:
    """Every DE_* setting the code reads with Env.number or Env.integer, found in its source."""
    call = re.compile(r'\.(?:number|integer)\(\s*"(DE_[A-Z0-9_]+)"')
    sources = Path(de_pipeline.__file__).parent.rglob("*.py")
    return sorted({name for source in sources for name in call.findall(source.read_text())})


def read_every_setting(environ: dict[str, str]) -> None:
    """Read each settings class as a run does (a numeric setting read elsewhere belongs here)."""
    warehouse = WarehouseSettings.from_env(environ)
    DashboardSettings.from_env(warehouse, environ)
    CalendarSettings.from_env(environ)
    ApiSettings.from_env(environ)
    simulator_config_from_env(environ)


@pytest.mark.parametrize("value", ["1e308", "1" + "0" * 308])
@pytest.mark.parametrize("name", numeric_settings())
def test_every_numeric_setting_has_an_upper_bound(name, value):
    assert {"DE_REQUEST_TIMEOUT", "DE_LOCK_TIMEOUT_SECONDS", "DE_SIM_RATE_LIMIT"} <= set(numeric_settings())
    environ = dict(os.environ) | {"DE_API_BASE_URL": "https://api.example.com", "DE_API_KEY": "k",
                                  "DE_PROVIDER_ID": "p", name: value}  # fmt: skip
    with pytest.raises(SettingsError) as refused:
        read_every_setting(environ)
    text = str(refused.value)
    assert text.startswith(f"{name}=") and "\n" not in text, text
    assert "must be in [" in text or "is not an integer" in text, text
