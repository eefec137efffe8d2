"""No silently empty day: a fetch whose records lie outside their window stops naming
DE_EPOCH_UNIT, a run that stores nothing says so unless the account's history explains it,
and the check and the dashboard show a day that came back empty where messages were expected
(the rule: de_pipeline/warehouse/empty_days.py)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from dagster import DagsterInstance

from de_pipeline.api.windows import TsSample, Window
from de_pipeline.cli import main
from de_pipeline.defs.runner import RunFailedError, run_range
from de_pipeline.simulator import ScriptedResponse, SyntheticDataset
from de_pipeline.warehouse.archive import archive_file
from de_pipeline.warehouse.days import calendar_days, day_bounds_table
from de_pipeline.warehouse.empty_days import unexplained_empty_run
from de_pipeline.warehouse.schema import ensure_schema
from de_pipeline.warehouse.settings import WarehouseSettings
from de_pipeline.warehouse.tables import TABLE_NAMES
from de_pipeline_tests.conftest import point_at
from de_pipeline_tests.helpers import BUSY, busy_day, dump, query, recent_days, unique_messages
from de_pipeline_tests.test_dashboard import figures

EMPTY_RUN = "no message was stored"


def warnings_of(text: str) -> list[str]:
    """The console's WARNING lines that say a run stored nothing."""
    return [line for line in text.splitlines() if " - WARNING - " in line and EMPTY_RUN in line]


def check_of(results: list[Any], name: str) -> Any:
    """The one evaluation of the asset check `name` in the runs."""
    (evaluation,) = [e for r in results for e in r.get_asset_check_evaluations() if e.check_name == name]
    return evaluation


# ---- the records of a window lie outside it: a unit mismatch, not bad records ----------------


DAY = busy_day(7)


@pytest.fixture
def simulator(start_simulator, monkeypatch):
    simulator = start_simulator(messages_per_day=40)
    point_at(monkeypatch, simulator)
    monkeypatch.setenv("DE_MAX_IN_FLIGHT", "1")  # one window for the day: the scripted pages are its
    return simulator


def served_records(simulator, day: date) -> list[dict[str, Any]]:
    return [orjson.loads(p) for p in simulator.dataset.payloads_between(*simulator.dataset.day_bounds_ms(day))]


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        # the day's records with ts in seconds: 1000 times earlier than the window (in ms)
        (lambda s: [r | {"ts": r["ts"] // 1000} for r in served_records(s, DAY)],
         "about 1000 times earlier: the server reads start/end as milliseconds (set DE_EPOCH_UNIT=ms)"),
        # another day's records: a server that does not filter by start/end
        (lambda s: served_records(s, DAY - timedelta(days=1)), "does the server ignore start/end"),
    ],
    ids=["ts-1000-times-off", "another-window"],
)  # fmt: skip
def test_records_outside_their_window_stop_the_fetch_naming_the_epoch_unit(simulator, answer, said):
    run_range(DAY, DAY)  # the day as it should be
    before = {name: dump(name) for name in TABLE_NAMES}
    archived = archive_file(WarehouseSettings.from_env().archive_dir, DAY).read_bytes()
    records = answer(simulator)
    assert len(records) >= BUSY  # busy_day's day, or the day before it
    simulator.script([ScriptedResponse(200, body=orjson.dumps(records)), ScriptedResponse(200, body=b"[]")])

    with pytest.raises(RunFailedError) as failure:
        run_range(DAY, DAY)

    line = str(failure.value)
    assert "\n" not in line and said in line, line
    assert "DE_EPOCH_UNIT=s sends start/end in seconds" in line and "`de-pipeline check`" in line
    # nothing was stored: the day keeps what it had, its archive file too
    assert archive_file(WarehouseSettings.from_env().archive_dir, DAY).read_bytes() == archived
    assert {name: dump(name) for name in TABLE_NAMES} == before


def test_a_stray_record_is_still_a_rejection(simulator):
    records = served_records(simulator, DAY)
    stray = records[len(records) // 2] | {"ts": records[0]["ts"] // 1000, "text": "a stray"}  # 1000 times off
    simulator.script([ScriptedResponse(200, body=orjson.dumps([*records, stray])), ScriptedResponse(200, body=b"[]")])

    run_range(DAY, DAY)

    rejected = query("SELECT reason, raw FROM rejected_messages")
    assert list(rejected.reason) == ["ts is outside the requested window"]
    assert orjson.loads(rejected.raw[0])["text"] == "a stray"
    assert query("SELECT count(*) AS n FROM messages").n[0] == len(unique_messages(records)) >= BUSY


WINDOW = Window(1_732_406_400_000, 1_732_492_800_000)  # a day, in ms


@pytest.mark.parametrize(
    ("ts_values", "unit", "said"),
    [
        ([WINDOW.start_ms + 5, WINDOW.end_ms + 5, WINDOW.end_ms - 1], "s", None),  # one stray of three
        ([WINDOW.end_ms + 86_400_000], "s", None),  # a lone stray record, not 1000 times off
        ([None, None, WINDOW.start_ms + 1], "s", None),  # no ts at all: rejected record by record
        ([WINDOW.start_ms // 1000 + 7], "s", "set DE_EPOCH_UNIT=ms"),  # a lone record, but 1000 times off
        ([(WINDOW.start_ms + 9) * 1000, (WINDOW.end_ms - 9) * 1000], "ms", "set DE_EPOCH_UNIT=s"),
        ([(WINDOW.start_ms + 9) * 1000], "s", "writes ts in microseconds"),
        ([WINDOW.start_ms // 1000 + 1], "ms", "writes ts in seconds"),
        ([WINDOW.start_ms - 5, WINDOW.start_ms - 4, WINDOW.start_ms + 4], "s", "ignore start/end"),
    ],
)
def test_the_sample_of_a_window_tells_a_mismatch_from_strays(ts_values, unit, said):
    sample = TsSample(WINDOW)
    sample.add(ts_values)
    problem = sample.mismatch(unit)
    assert (problem is None) if said is None else (said in problem), problem


# ---- a run that stores nothing ------------------------------------------------------------------


@pytest.mark.dates
@pytest.mark.every_clock
def test_a_first_run_that_stores_nothing_warns_in_the_console_and_the_runs_events(
    start_simulator, monkeypatch, capfd, dagster_home
):
    # the reported break: the server takes milliseconds, DE_EPOCH_UNIT=s (the default) sends
    # seconds, so each window falls in January 1970 and the server answers []
    simulator = start_simulator(messages_per_day=40, epoch_unit="ms")
    point_at(monkeypatch, simulator)
    first, last = recent_days(3)

    assert main(["backfill", "--start", str(first), "--end", str(last)]) == 0

    asked = {(r.start_ms, r.end_ms) for r in simulator.requests if r.start_ms is not None}
    assert asked and all(end < 365 * 86_400_000 for _, end in asked)  # 1970: seconds read as milliseconds
    assert query("SELECT count(*) AS n FROM messages").n[0] == 0
    (line,) = warnings_of(capfd.readouterr().err)
    for said in (f"{first} .. {last} (3 days)", "every window came back empty", "no message stored on any day",
                 f"provider={simulator.config.provider_id}", "DE_EPOCH_UNIT=s", "in seconds", "DE_PROVIDER_ID",
                 "DE_API_BASE_URL", "`de-pipeline check`"):  # fmt: skip
        assert said in line, (said, line)
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        logged = [
            entry.user_message
            for run in instance.get_runs()
            for entry in instance.all_logs(run.run_id)
            if entry.level == 30 and EMPTY_RUN in (entry.user_message or "")
        ]
    assert len(logged) == 1 and f"{first} .. {last}" in logged[0]
    loaded = query("SELECT CAST(day AS VARCHAR) AS day, messages, rejected FROM loaded_days ORDER BY day")
    assert loaded.values.tolist() == [[str(first + timedelta(days=n)), 0, 0] for n in range(3)]


@pytest.mark.dates
def test_an_empty_run_after_the_accounts_history_warns_and_the_check_and_dashboard_show_its_days(
    start_simulator, monkeypatch, capfd, tmp_path
):
    simulator = start_simulator(messages_per_day=40, epoch_unit="ms")
    point_at(monkeypatch, simulator)
    first, last = recent_days(10)
    monkeypatch.setenv("DE_EPOCH_UNIT", "ms")  # right: a week of history
    run_range(first, first + timedelta(days=6))
    monkeypatch.setenv("DE_EPOCH_UNIT", "s")  # wrong: every window in 1970
    capfd.readouterr()

    lone, before = last - timedelta(days=2), last - timedelta(days=1)
    checked = run_range(lone, lone)  # after a day with messages: an outage, maybe
    assert warnings_of(capfd.readouterr().err) == []
    assert check_of(checked, "no_unexpected_empty_days").metadata["days"].value == str(lone)

    results = run_range(before, last)  # and the next days too: a pattern

    (line,) = warnings_of(capfd.readouterr().err)
    assert f"{before} .. {last} (2 days)" in line and f"expected messages on {before}, {last}" in line, line
    check = check_of(results, "no_unexpected_empty_days")
    assert not check.passed and check.severity.value == "WARN"
    assert check.metadata["unexpected_empty_days"].value == 2
    assert check.metadata["days"].value == f"{before}, {last}"
    # the dashboard ends at the last loaded day, empty as it is, and marks the three days
    health = figures(tmp_path / "dashboard.html")["data_health"]["data"]
    (marked,) = [trace for trace in health if trace.get("name") == "empty, though expected"]
    assert marked["x"] == [str(lone), str(before), str(last)]
    assert health[0]["x"][-1] == str(last)
    assert (
        "3 day(s) came back empty although the account&#x27;s history expected messages"
        in (tmp_path / "dashboard.html").read_text()
    )


def outage_day(seed: int = 7) -> date:
    """A recent day on which the simulator has an outage (an empty day by nature), with busy
    days around it and a week before it."""
    day = date.today() - timedelta(days=2)
    dataset = SyntheticDataset(seed)
    while True:
        around = [day - timedelta(days=n) for n in (8, 7, 2, 1)] + [day + timedelta(days=1)]
        if dataset.is_outage_day(day) and not any(dataset.is_outage_day(d) for d in around):
            return day
        day -= timedelta(days=1)


@pytest.mark.dates
@pytest.mark.every_clock
def test_a_quiet_day_among_busy_ones_does_not_warn_and_the_check_shows_it(start_simulator, monkeypatch, capfd):
    point_at(monkeypatch, start_simulator(messages_per_day=40))
    quiet = outage_day()
    run_range(quiet - timedelta(days=7), quiet - timedelta(days=7))  # the same weekday had messages
    capfd.readouterr()

    results = run_range(quiet - timedelta(days=1), quiet + timedelta(days=1))

    assert warnings_of(capfd.readouterr().err) == []
    stored = query("SELECT day, messages FROM loaded_days ORDER BY day")
    assert dict(zip(stored.day.dt.date, stored.messages))[quiet] == 0
    assert all(n > 0 for d, n in zip(stored.day.dt.date, stored.messages) if d != quiet)
    check = check_of(results, "no_unexpected_empty_days")
    assert not check.passed and check.metadata["days"].value == str(quiet)


# ---- the rule, day by day (empty_days.py) ---------------------------------------------------------

RUN = date(2026, 3, 16)  # a Monday


@pytest.mark.parametrize(
    ("history", "run", "warns", "unexpected"),
    [
        ({}, [RUN], True, []),  # a first run
        ({RUN - timedelta(days=7): 0}, [RUN], True, []),  # nothing was ever stored
        ({RUN - timedelta(days=1): 5}, [RUN], False, []),  # one day after a busy one, no history: no pattern
        ({RUN - timedelta(days=7): 5, RUN - timedelta(days=1): 5}, [RUN], False, [RUN]),  # an outage, maybe
        ({RUN - timedelta(days=7): 5, RUN - timedelta(days=1): 0}, [RUN], True, [RUN]),  # a second empty day
        ({RUN - timedelta(days=7): 5}, [RUN, RUN + timedelta(days=1)], True, [RUN]),  # several days
        ({RUN - timedelta(days=10): 5}, [RUN, RUN + timedelta(days=1)], True, []),  # several, no history to tell
        # a weekend that is always empty, of an account busy on weekdays
        ({RUN - timedelta(days=d): 0 if d in (2, 1, 9, 8) else 5 for d in range(1, 15)},
         [RUN - timedelta(days=2), RUN - timedelta(days=1)], False, []),
        ({RUN - timedelta(days=7 * w): 0 if w % 2 else 5 for w in range(1, 5)}, [RUN], False, []),  # half empty
        ({RUN - timedelta(days=7 * w): 0 if w == 1 else 5 for w in range(1, 5)}, [RUN], True, [RUN]),  # 3 of 4
    ],
)  # fmt: skip
def test_the_rule_of_empty_days(tmp_path, history, run, warns, unexpected):
    with duckdb.connect(str(tmp_path / "rule.duckdb")) as connection:
        ensure_schema(connection)
        for day, messages in {**history, **dict.fromkeys(run, 0)}.items():
            connection.execute("INSERT INTO loaded_days VALUES ('default', ?, ?, 0)", [day, messages])
            connection.execute(
                "INSERT INTO messages (provider, message_key, day, ts, ts_ms, fetched_at) "
                "SELECT 'default', $day || '-' || n, $day, now(), 0, now() FROM range($messages) AS r(n)",
                {"day": day, "messages": messages},
            )
        day_bounds_table(connection, calendar_days(run[0], run[-1], "UTC"))
        verdict = unexplained_empty_run(connection, "default", run[0], run[-1])
    assert (verdict is not None) == warns
    if verdict is not None:
        assert verdict.days == run and verdict.unexpected == unexpected
        assert verdict.first_run == (not any(history.values()))


def test_a_warehouse_holding_only_empty_days_says_so_on_the_dashboard(start_simulator, monkeypatch, tmp_path, capsys):
    point_at(monkeypatch, start_simulator(messages_per_day=0))
    first, last = recent_days(2)
    run_range(first, last, log_level="ERROR")
    page = (tmp_path / "dashboard.html").read_text()
    assert "<h1>No data yet</h1>" in page and "2 day(s) were loaded and came back empty" in page
    assert "DE_EPOCH_UNIT" in page and "de-pipeline check" in page


def test_a_warehouse_from_before_loaded_days_still_draws_its_dashboard(start_simulator, monkeypatch, tmp_path):
    point_at(monkeypatch, start_simulator(messages_per_day=40))
    day = busy_day(7)
    run_range(day, day, log_level="ERROR")
    with duckdb.connect(str(WarehouseSettings.from_env().duckdb_path)) as connection:
        connection.execute("DROP TABLE loaded_days")
    assert main(["dashboard"]) == 0
    assert figures(Path(tmp_path / "dashboard.html"))["data_health"]["data"][0]["x"] == [str(day)]
