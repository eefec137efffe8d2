"""Bad answers from the API, one case each: either the run fails with one clear line and the
day keeps what it had, or the record lands in rejected_messages with a reason (or is kept,
coerced) -- and the counts always reconcile. And settings out of range: one line each."""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

import de_pipeline
from de_pipeline.accounts import max_parallel_accounts
from de_pipeline.api.settings import ApiSettings
from de_pipeline.dashboard.settings import DashboardSettings
from de_pipeline.defs.partitions import CalendarSettings
from de_pipeline.defs.runner import RunFailedError, run_range
from de_pipeline.env import SettingsError
from de_pipeline.simulator import ScriptedResponse, Simulator, SimulatorConfig, simulator_config_from_env
from de_pipeline.warehouse import archive
from de_pipeline.warehouse.archive import archive_file
from de_pipeline.warehouse.settings import WarehouseSettings
from de_pipeline.warehouse.tables import TABLE_NAMES
from de_pipeline_tests.conftest import TEST_SETTINGS, point_at
from de_pipeline_tests.helpers import (
    BUSY,
    busy_day,
    dump,
    identity,
    query,
    reading,
    recent_days,
    served,
    table,
    unique_messages,
)

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


# elements of topmatches are not checked: kept, and their gap (75) left out of avg_margin
PERCENT_TOPMATCHES = [{"topic": "billing", "score": 80}, {"topic": "refund", "score": 5}]
RECORD_CASES = [
    pytest.param({"ts": lambda r: f"{r['ts']}.5"}, rejected("ts is not an integer (epoch milliseconds)"),
                 id="ts-string-with-a-fraction"),
    pytest.param({"ts": lambda r: r["ts"] + 0.5}, rejected("ts is not an integer (epoch milliseconds)"),
                 id="ts-number-with-a-fraction"),
    pytest.param({"ts": "yesterday"}, rejected("ts is not an integer (epoch milliseconds)"), id="ts-words"),
    pytest.param({"ts": True}, rejected("ts is not an integer (epoch milliseconds)"), id="ts-boolean"),
    pytest.param({"ts": MISSING}, rejected("ts is missing"), id="ts-missing"),
    pytest.param({"sentiment": "-0.75"}, kept("sentiment", -0.75), id="sentiment-numeric-string-coerced"),
    pytest.param({"sentiment": "very happy"}, rejected("sentiment is not a number"), id="sentiment-non-numeric-string"),
    pytest.param({"score": "0.35"}, kept("score", 0.35), id="score-numeric-string-coerced"),
    pytest.param({"score": "high"}, rejected("score is not a number"), id="score-non-numeric-string"),
    pytest.param({"score": 1.5}, rejected("score is outside [0, 1] (looks like a percentage)"), id="score-above-1"),
    pytest.param({"score": 87}, rejected("score is outside [0, 1] (looks like a percentage)"), id="score-percent"),
    pytest.param({"score": 100}, rejected("score is outside [0, 1] (looks like a percentage)"), id="score-100"),
    pytest.param({"score": 100.5}, rejected("score is outside [0, 1] (above 100)"), id="score-above-100"),
    pytest.param({"score": -0.01}, rejected("score is outside [0, 1] (negative)"), id="score-below-0"),
    pytest.param({"score": "1.5"}, rejected("score is outside [0, 1] (looks like a percentage)"),
                 id="score-string-out-of-range"),
    pytest.param({"score": "NaN"}, rejected("score is not finite"), id="score-nan-string"),
    pytest.param({"score": 1}, kept("score", 1.0), id="score-1-kept"),
    pytest.param({"topmatches": "billing"}, rejected("topmatches is not a list"), id="topmatches-a-string"),
    pytest.param({"topmatches": {"topic": "billing", "score": 0.8}}, rejected("topmatches is not a list"),
                 id="topmatches-an-object"),
    pytest.param({"topmatches": PERCENT_TOPMATCHES}, kept("topmatches", PERCENT_TOPMATCHES),
                 id="topmatches-percentages-kept"),
    pytest.param({"sessionchannelinfo": "@shop on twitter"}, kept("sessionchannelinfo", "@shop on twitter"),
                 id="sessionchannelinfo-a-string-kept"),
    pytest.param({"agentid": 17, "routing": {"queue": "vip", "hops": [1, 2]}},
                 kept("extra_fields", {"agentid": 17, "routing": {"queue": "vip", "hops": [1, 2]}}),
                 id="unknown-extra-fields-kept"),
]  # fmt: skip


@dataclass(frozen=True)
class EveryCase:
    """One run of DAY whose page holds two good records, one varied record per RECORD_CASES
    entry (each its own message), and a copy of the first good one."""

    warehouse: Path
    results: list[Any]
    good: list[dict[str, Any]]
    varied: dict[str, dict[str, Any]]  # the record as sent, by case id


@pytest.fixture(scope="module")
def every_case(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EveryCase]:
    """Every case of RECORD_CASES in one run (a run each took a minute of the suite); a bad
    record is judged on its own, so the others beside it change nothing."""
    simulator = Simulator(SimulatorConfig(messages_per_day=40))
    simulator.start()
    warehouse = tmp_path_factory.mktemp("every_case") / "warehouse.duckdb"
    good = [record(simulator, 0), record(simulator, 1)]
    varied = {}
    for number, case in enumerate(RECORD_CASES, start=2):
        changes = {k: (v(record(simulator, number)) if callable(v) else v) for k, v in case.values[0].items()}
        varied[case.id] = record(simulator, number, **changes)
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in {**TEST_SETTINGS, "DE_DUCKDB_PATH": str(warehouse), "DE_MAX_IN_FLIGHT": "1"}.items():
            monkeypatch.setenv(name, value)
        point_at(monkeypatch, simulator)
        serve(simulator, orjson.dumps([*good, *varied.values(), good[0]]))
        results = run_range(DAY, DAY)
    simulator.stop()
    yield EveryCase(warehouse, results, good, varied)


@pytest.fixture
def one_run(every_case: EveryCase, monkeypatch: pytest.MonkeyPatch) -> EveryCase:
    """every_case, with DE_DUCKDB_PATH (and so its archive) pointing at its warehouse."""
    monkeypatch.setenv("DE_DUCKDB_PATH", str(every_case.warehouse))
    return every_case


@pytest.mark.parametrize(("changes", "expected"), RECORD_CASES)
def test_a_bad_record_is_rejected_or_kept(one_run: EveryCase, request: pytest.FixtureRequest, changes, expected):
    varied = one_run.varied[request.node.callspec.id]
    rejections = [reason for reason, raw in query("SELECT reason, raw FROM rejected_messages").itertuples(index=False)
                  if json.loads(raw) == varied]  # the record as sent  # fmt: skip
    if expected[0] == "rejected":
        assert rejections == [expected[1]]
        assert query(f"SELECT count(*) AS n FROM messages WHERE text = '{varied['text']}'").n[0] == 0
    else:
        assert rejections == []
        _, column, value = expected
        row = stored_row(varied["text"])
        stored = (
            json.loads(row[column]) if column in ("sessionchannelinfo", "extra_fields", "topmatches") else row[column]
        )
        assert stored == value
        assert isinstance(stored, type(value))  # "-0.75" became a number, not a string


def test_every_record_of_the_bad_records_page_is_accounted_for(one_run: EveryCase):
    kept = sum(1 for case in RECORD_CASES if case.values[1][0] == "kept")
    good = one_run.good
    assert_reconciles(one_run.results, fetched=len(RECORD_CASES) + 3, stored=kept + 2, duplicates=1,
                      rejected=len(RECORD_CASES) - kept)  # fmt: skip
    # the good records carry no extra fields; an object channel info stays an object
    assert stored_row(good[0]["text"])["extra_fields"] is None
    assert json.loads(stored_row(good[0]["text"])["sessionchannelinfo"]) == good[0]["sessionchannelinfo"]


def test_avg_margin_leaves_out_a_gap_of_scores_outside_0_and_1(one_run: EveryCase):
    # every kept record is of topic billing, with topmatches 0.8 and 0.1 but the percentages'
    (margin,) = query("SELECT avg_margin FROM intent_confidence WHERE topic = 'billing'").avg_margin
    assert margin == pytest.approx(0.7)


# ---- numbers as a real API may write them ------------------------------------------------------


def written(records: list[dict[str, Any]], numbers: dict[str, str]) -> bytes:
    """The records as a JSON page, each "@name@" string replaced by the JSON text numbers[name]
    as written: 12.10 or 1.7e12, which no Python serialiser writes so."""
    page = orjson.dumps(records)
    for name, text in numbers.items():
        page = page.replace(f'"@{name}@"'.encode(), text.encode())
    return page


def test_a_ts_written_as_a_string_or_with_a_zero_fraction_is_read_and_an_ambiguous_one_rejected(simulator):
    ts = [record(simulator, n)["ts"] for n in range(9)]
    forms = {  # name: (how ts is written, kept)
        "integer": (str(ts[0]), True),
        "string": (f'"{ts[1]}"', True),
        "zero-fraction": (f"{ts[2]}.0", True),
        "string-zero-fraction": (f'"{ts[3]}.000"', True),
        "exponent": (f"{ts[4] / 1e12!r}e12", False),  # its value is whole, but not as written
        "fraction-past-a-double": (f"{ts[5]}.0000001", False),  # parses to the same double as .0
        "string-with-a-space": (f'" {ts[6]}"', False),
        "string-exponent": (f'"{ts[7] / 1e12!r}e12"', False),
    }
    records = [record(simulator, n, text=name, ts=f"@{name}@") for n, name in enumerate(forms)]
    copy = record(simulator, 1, text="string")  # the "string" message again, its ts an integer
    serve(simulator, written([*records, copy], {name: text for name, (text, _) in forms.items()}))

    results = run_range(DAY, DAY)

    kept = [name for name, (_, ok) in forms.items() if ok]
    assert_reconciles(results, fetched=9, stored=len(kept), duplicates=1, rejected=len(forms) - len(kept))
    stored = query("SELECT text, ts_ms, day FROM messages")
    assert dict(zip(stored.text, stored.ts_ms)) == {name: ts[n] for n, name in enumerate(forms) if name in kept}
    assert set(stored.day.dt.date) == {DAY}
    rejected = query("SELECT reason, raw FROM rejected_messages")
    assert {json.loads(raw)["text"] for raw in rejected.raw} == set(forms) - set(kept)
    assert set(rejected.reason) == {"ts is not an integer (epoch milliseconds)"}
    assert {f'"ts":{text}' for name, (text, ok) in forms.items() if not ok} == {
        re.search(r'"ts":("[^"]*"|[^,}]*)', raw).group(0) for raw in rejected.raw
    }  # as sent


def test_a_sessionid_written_as_a_number_keeps_its_digits(simulator):
    cases = {  # how sessionid is written: (sessionid stored, conversation, segment)
        "12.10": ("12.10", 12, 10),
        "12.1": ("12.1", 12, 1),
        "7.100": ("7.100", 7, 100),
        "13": ("13", None, None),
        "1.2e1": ("1.2e1", None, None),
        "-3.40": ("-3.40", None, None),
    }
    records = [
        record(simulator, n, text=f"sessionid {text}", sessionid=f"@s{n}@", customersessionid=f"@c{n}@")
        for n, text in enumerate(cases)
    ]
    # a field of the same name inside another one does not confuse it
    records[0]["sessionchannelinfo"] = {"sessionid": 99.50, "customersessionid": "x"}
    numbers = {f"s{n}": text for n, text in enumerate(cases)} | {f"c{n}": f"4321.{n}0" for n in range(len(cases))}
    serve(simulator, written(records, numbers))

    results = run_range(DAY, DAY)

    assert_reconciles(results, fetched=len(cases), stored=len(cases), duplicates=0, rejected=0)
    with reading() as connection:
        stored = connection.execute(
            "SELECT text, sessionid, conversation_id, segment_id, customersessionid FROM messages"
        ).fetchall()
    assert {text.removeprefix("sessionid "): tuple(parts) for text, *parts, _ in stored} == cases
    assert sorted(row[-1] for row in stored) == sorted(f"4321.{n}0" for n in range(len(cases)))
    archived = query(f"SELECT raw FROM read_parquet('{archive_path()}')").raw
    assert any('"sessionid":12.10,' in raw for raw in archived)  # the archive keeps it as sent


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


# ---- poison records: rejected with a reason, never blocking their run's days ---------------

HUGE = "@@huge@@"  # stands for a number that JSON allows and no Python serialiser writes

POISON = [
    ({"ts": 9223372036854776}, "ts is outside the requested window"),  # past DuckDB's timestamps
    ({"ts": -9223372036854775808}, "ts is outside the requested window"),  # before them
    ({"ts": -1}, "ts is outside the requested window"),
    ({"ts": 18446744073709551615}, "ts is not an integer (epoch milliseconds)"),  # a UBIGINT
    ({"ts": 1.7e12}, "ts is outside the requested window"),  # written 1700000000000.0: an integer, of 2023
    ({"sentiment": HUGE}, "sentiment is not finite"),
    ({"sentiment": 1e308}, "sentiment is outside [-1, 1]"),  # its sums overflowed to inf
    ({"sentiment": -1.0001}, "sentiment is outside [-1, 1]"),
    ({"sentiment": "NaN"}, "sentiment is not finite"),
    ({"sentiment": "Infinity"}, "sentiment is not finite"),
    ({"score": HUGE}, "score is not finite"),
    ({"ts": HUGE}, "ts is not an integer (epoch milliseconds)"),
]


def poison_payloads(template: dict[str, Any]) -> list[tuple[bytes, str]]:
    """Each poison record as served (HUGE written as 1e400, or as 2**64 for ts), with its reason."""
    poison = []
    for number, (changes, reason) in enumerate(POISON):
        payload = orjson.dumps({**template, "text": f"poison {number}", **changes})
        poison.append((payload.replace(b'"ts":"@@huge@@"', b'"ts":18446744073709551616')
                       .replace(f'"{HUGE}"'.encode(), b"1e400"), reason))  # fmt: skip
    return poison


def test_poison_records_are_rejected_and_the_run_and_its_rebuild_succeed(start_simulator, monkeypatch):
    simulator = start_simulator(messages_per_day=40)
    point_at(monkeypatch, simulator)
    first, last = recent_days(2, seeds=(7,))
    dataset = simulator.dataset
    start_ms, end_ms = dataset.day_bounds_ms(first)
    template = orjson.loads(dataset.payloads_between(start_ms, end_ms)[0])
    poison = poison_payloads(template)
    # sentiment's bounds are inside the range
    edges = [orjson.dumps({**template, "text": f"edge {s}", "sentiment": s}) for s in (-1, 1.0)]
    good = served(simulator, first, last) + [orjson.loads(e) for e in edges]
    # served in the first day's window, whatever their ts says (before any request: it caches)
    dataset.inject([(start_ms + n, payload) for n, payload in enumerate([p for p, _ in poison] + edges)])

    run_range(first, last)

    rejected = query("SELECT archive_day, reason, raw FROM rejected_messages")
    # the record as sent, byte for byte (the archive re-wrote numbers: 1e+308 as 1e308)
    assert dict(zip(rejected.raw, rejected.reason)) == {p.decode(): reason for p, reason in poison}
    assert set(rejected.archive_day.dt.date) == {first}
    beyond = query("SELECT ts_ms FROM rejected_messages WHERE day IS NULL AND ts_ms IS NOT NULL")
    assert set(beyond.ts_ms) == {9223372036854776, -9223372036854775808}  # no calendar day: NULL
    stored = table("messages")
    expected = unique_messages(good)
    assert len(stored) == len(expected) > len(edges)
    assert {identity(r) for r in stored.rename(columns={"ts_ms": "ts"}).to_dict("records")} == {
        identity(r) for r in expected.to_dict("records")
    }
    assert set(stored.day.dt.date) == {first, last}
    trends = query("SELECT min(min_sentiment) AS low, max(max_sentiment) AS high, "
                   "bool_and(isfinite(avg_sentiment)) AS finite FROM sentiment_trends")  # fmt: skip
    assert (trends.low[0], trends.high[0], trends.finite[0]) == (-1, 1, True)

    before = {name: dump(name) for name in TABLE_NAMES}
    run_range(first, last, job_name="rebuild_from_archive")  # de-pipeline backfill --from-archive
    assert {name: dump(name) for name in TABLE_NAMES} == before


# ---- message_key: a message is stored once, and only a copy of it is a duplicate --------------


def test_messages_that_differ_only_where_a_field_ends_are_both_stored(simulator):
    # joined by a separator, both read "a<US>b<US>c": one key, and one message was dropped
    split = [record(simulator, 1, sendername="a\x1fb", text="c"), record(simulator, 1, sendername="a", text="b\x1fc")]
    serve(simulator, orjson.dumps(split))

    results = run_range(DAY, DAY)

    assert_reconciles(results, fetched=2, stored=2, duplicates=0, rejected=0)
    assert set(query("SELECT sendername, text FROM messages").itertuples(index=False, name=None)) == {
        (r["sendername"], r["text"]) for r in split
    }


def test_copies_of_a_message_are_stored_once(simulator):
    # missing, null and "" are the same value in the key; fields outside the key do not count
    copies = [record(simulator, 1, sendername="", customersessionid=None, text=""),
              record(simulator, 1, sendername=None, customersessionid=MISSING, text=MISSING),
              record(simulator, 1, sendername=MISSING, customersessionid="", text=None, sentiment=-0.5)]  # fmt: skip
    other = record(simulator, 2)
    serve(simulator, orjson.dumps([*copies, other, other]))

    results = run_range(DAY, DAY)

    assert_reconciles(results, fetched=5, stored=2, duplicates=3, rejected=0)


# ---- an answer the pipeline refuses: the run fails, the day keeps what it had -------------

BAD_BODIES = [
    pytest.param(b"upstream proxy says: hello", "the body is not valid JSON", id="body-not-json"),
    pytest.param(b'[{"ts": 1795651201000, "text": "cut off', "the body is not valid JSON", id="truncated-json"),
    pytest.param(b"", "the body is not valid JSON", id="empty-body"),
    pytest.param(b'{"messages": [], "next": null}', "the body is a JSON dict, not an array of messages",
                 id="json-object-not-array"),
    pytest.param(b'[{"sentiment": 1e400}, {"sentiment": NaN}]', "the body is not valid JSON",
                 id="nan-after-a-huge-number"),  # a huge number is read by Python's json, NaN is still refused
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
    assert len(before["messages"]) >= BUSY  # the day holds real rows that a failure must not touch
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


# ---- a server that fills the disk ------------------------------------------------------------


def endless_pages(simulator, page_bytes: int, sent: list[bytes]) -> Iterator[ScriptedResponse]:
    """Pages of about `page_bytes`, each different, for ever (a server that never says `[]`);
    each body is added to `sent` as it is served."""
    padding = "x" * 1000
    for number in itertools.count():
        rows = [record(simulator, n, text=f"page {number} {padding}") for n in range(page_bytes // 1700)]
        sent.append(orjson.dumps(rows))
        yield ScriptedResponse(200, body=sent[-1])


def assert_one_line(exc: RunFailedError, *phrases: str) -> None:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text and 'File "' not in text, text
    assert text.startswith(f"run for {DAY} .. {DAY} failed: raw_messages: "), text
    for phrase in phrases:
        assert phrase in text, text


def test_a_server_that_never_ends_its_pages_stops_at_the_staged_bytes_cap(simulator, monkeypatch):
    """Endless pages of about 1 MB grew the staging folder by 20 MB/s until the pages-per-window
    cap, about 11 hours later; the fetch now stops at DE_MAX_STAGED_BYTES."""
    before = loaded_day(simulator)
    sent: list[bytes] = []
    simulator.script(endless_pages(simulator, 256 << 10, sent))
    monkeypatch.setenv("DE_MAX_STAGED_BYTES", "2MiB")
    monkeypatch.setenv("DE_MAX_PAGES_PER_WINDOW", "400")  # about 100 MB: a bound on this test alone

    with pytest.raises(RunFailedError) as failure:
        run_range(DAY, DAY)

    assert_one_line(failure.value, f"{DAY}: the fetch has staged", "past DE_MAX_STAGED_BYTES (2.0 MiB)",
                    "the archive is as it was")  # fmt: skip
    # every page but the last fits in the cap; the last would have passed it, and ended the fetch
    assert sum(map(len, sent[:-1])) <= 2 << 20 < sum(map(len, sent))
    assert snapshot() == before  # no staging folder left, the day's file untouched


def low_disk(monkeypatch, free_after: int) -> list[Path]:
    """The disk has plenty of room for the first `free_after` looks at it, then 100 MiB (a
    full disk cannot be made here); returns the folders looked at."""
    looked_at: list[Path] = []

    def free_disk_bytes(path: Path) -> int:
        looked_at.append(Path(path))
        return (1 << 40) if len(looked_at) <= free_after else 100 << 20

    monkeypatch.setattr(archive, "free_disk_bytes", free_disk_bytes)
    return looked_at


def test_a_fetch_stops_when_the_disk_runs_low_and_keeps_the_day(simulator, monkeypatch):
    before = loaded_day(simulator)
    monkeypatch.setenv("DE_PAGE_SIZE", "5")  # 40 messages: 8 pages
    looked_at = low_disk(monkeypatch, free_after=3)  # before the fetch, and 2 pages
    seen = len(simulator.requests)

    with pytest.raises(RunFailedError) as failure:
        run_range(DAY, DAY)

    archive_dir = WarehouseSettings.from_env().archive_dir
    assert_one_line(failure.value, f"the disk of the raw archive {archive_dir} has 100.0 MiB free; staging the "
                    "next page", "would leave less than DE_MIN_FREE_DISK_BYTES (1.0 GiB): the fetch stopped, "
                    "and the archive is as it was")  # fmt: skip
    assert len(simulator.requests) - seen == 3  # the third page was received, not staged
    assert {path.parent for path in looked_at} == {archive_dir}  # the staging folder's disk
    assert snapshot() == before


def test_a_fetch_does_not_start_on_a_disk_below_the_floor_unless_the_check_is_off(simulator, monkeypatch):
    before = loaded_day(simulator)
    low_disk(monkeypatch, free_after=0)
    monkeypatch.setenv("DE_MIN_FREE_DISK_BYTES", "200MiB")
    seen = len(simulator.requests)

    with pytest.raises(RunFailedError) as failure:
        run_range(DAY, DAY)

    assert_one_line(failure.value, "has 100.0 MiB free; less than DE_MIN_FREE_DISK_BYTES (200.0 MiB): the fetch "
                    "did not start", "(0 turns the check off)")  # fmt: skip
    assert len(simulator.requests) == seen
    assert snapshot() == before

    monkeypatch.setenv("DE_MIN_FREE_DISK_BYTES", "0")
    run_range(DAY, DAY)
    assert len(simulator.requests) > seen


def test_the_disk_settings_take_sizes_with_units_and_name_themselves_when_wrong():
    settings = WarehouseSettings.from_env({"DE_MAX_STAGED_BYTES": "1.5GiB", "DE_MIN_FREE_DISK_BYTES": "500MB"})
    assert (settings.max_staged_bytes, settings.min_free_disk_bytes) == (3 << 29, 500_000_000)
    assert WarehouseSettings.from_env({"DE_MIN_FREE_DISK_BYTES": "0"}).min_free_disk_bytes == 0
    for name, value in [("DE_MAX_STAGED_BYTES", "lots"), ("DE_MIN_FREE_DISK_BYTES", "-1GB"),
                        ("DE_MAX_STAGED_BYTES", "0")]:  # fmt: skip
        with pytest.raises(SettingsError, match=f"^{name}="):
            WarehouseSettings.from_env({name: value})


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
    max_parallel_accounts(environ)


@pytest.mark.parametrize("value", ["1e308", "1" + "0" * 308])
@pytest.mark.parametrize("name", numeric_settings())
def test_every_numeric_setting_has_an_upper_bound(name, value):
    assert {"DE_REQUEST_TIMEOUT", "DE_LOCK_TIMEOUT_SECONDS", "DE_SIM_RATE_LIMIT"} <= set(numeric_settings())
    lake = {"DE_WAREHOUSE": "ducklake:/tmp/x.ducklake", "DE_LAKE_DATA_PATH": "/tmp/x"}  # its settings are read then
    environ = dict(os.environ) | lake | {"DE_API_BASE_URL": "https://api.example.com", "DE_API_KEY": "k",
                                         "DE_PROVIDER_ID": "p", name: value}  # fmt: skip
    with pytest.raises(SettingsError) as refused:
        read_every_setting(environ)
    text = str(refused.value)
    assert text.startswith(f"{name}=") and "\n" not in text, text
    assert "must be in [" in text or "is not an integer" in text, text
