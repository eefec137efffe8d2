"""conversation_segments and customer_journeys against journeys rebuilt here, in pandas,
from the messages the simulator served."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import orjson
import pandas as pd
import pytest

from de_pipeline.defs.runner import run_range
from de_pipeline.warehouse import days as warehouse_days
from de_pipeline.warehouse.tables import TABLE_NAMES
from de_pipeline_tests.conftest import point_at
from de_pipeline_tests.helpers import dump, query, recent_days, served, table, unique_messages

SEED = 5
PER_DAY = 1200


def expected_journeys(records: list) -> pd.DataFrame:
    """One row per customersessionid, computed from raw records without the project's SQL."""
    frame = unique_messages(records)
    frame = frame[frame.customersessionid.notna() & frame.sessionid.notna()]
    frame["day"] = [datetime.fromtimestamp(ts / 1000, UTC).date() for ts in frame.ts]
    rows = []
    for csid, journey in frame.groupby("customersessionid"):
        segments = []
        for sessionid, part in journey.groupby("sessionid"):
            customer = part[part.sendertype == "customer"].sentiment.dropna()
            workflows = part.workflow.dropna().astype(str).str.lower()
            segments.append(
                {
                    "first_ts": part.ts.min(),
                    "sessionid": sessionid,
                    "kind": "agent" if ((part.chattype == "agent") | (part.sendertype == "agent")).any() else "bot",
                    "survey": workflows.str.contains("survey").any(),
                    "sentiment": customer.mean() if len(customer) else np.nan,
                    "messages": len(part),
                }
            )
        segments.sort(key=lambda s: (s["first_ts"], s["sessionid"]))
        kinds = [s["kind"] for s in segments]
        pairs = list(zip(kinds, kinds[1:]))
        rows.append(
            {
                "customersessionid": csid,
                "day": journey.day.min(),
                "segments": len(segments),
                "messages": sum(s["messages"] for s in segments),
                "path": ">".join(kinds),
                "transfers": pairs.count(("agent", "agent")),
                "handoff_to_agent": ("bot", "agent") in pairs,
                "ended_with_survey": bool(segments[-1]["survey"]),
                "sentiment_change": segments[-1]["sentiment"] - segments[0]["sentiment"],
                "duration_seconds": (journey.ts.max() - journey.ts.min()) / 1000,
                "crosses_midnight": journey.day.nunique() > 1,
            }
        )
    return pd.DataFrame(rows).set_index("customersessionid").sort_index()


def crossing_day(simulator, days: int = 40) -> date:
    """A recent day with a journey that continues after midnight into the next day."""
    for back in range(2, days):
        day = date.today() - timedelta(days=back)
        if (
            expected_journeys(served(simulator, day, day + timedelta(days=1)))
            .query("crosses_midnight and day == @day")
            .shape[0]
        ):
            return day
    raise AssertionError("the simulator made no journey that crosses midnight")


@pytest.fixture
def simulator(start_simulator, monkeypatch):
    simulator = start_simulator(seed=SEED, messages_per_day=PER_DAY)
    point_at(monkeypatch, simulator)
    return simulator


@pytest.mark.dates
def test_journeys_match_the_served_messages(simulator):
    day = crossing_day(simulator)
    first, last = day - timedelta(days=1), day + timedelta(days=1)
    run_range(first, last)
    expected = expected_journeys(served(simulator, first, last))
    actual = table("customer_journeys").set_index("customersessionid").sort_index()

    assert len(actual) == len(expected) > 100
    assert (actual.path == expected.path).all()
    for column in ("segments", "transfers"):
        assert (actual[column] == expected[column]).all(), column
    for column in ("handoff_to_agent", "ended_with_survey"):
        assert (actual[column].astype(bool) == expected[column].astype(bool)).all(), column
    assert [d.date() for d in actual.day] == list(expected.day)
    np.testing.assert_allclose(actual.duration_seconds, expected.duration_seconds, atol=1e-3)
    np.testing.assert_allclose(actual.sentiment_change, expected.sentiment_change, atol=1e-9)

    segments = table("conversation_segments")
    assert segments.groupby("customersessionid").messages.sum().sort_index().tolist() == expected.messages.tolist()
    assert not segments.duplicated(["sessionid"]).any()

    # the midnight case is whole, under the day it started
    crossing = expected.query("crosses_midnight and day == @day")
    row = actual.loc[crossing.index[0]]
    assert row.day.date() == day and row.path == crossing.iloc[0].path and not row.open_at_load
    # a journey with two agent transfers
    two = expected[expected.transfers == 2]
    assert len(two) and (actual.loc[two.index].path.str.count("agent") >= 3).all()


def test_a_journey_that_crosses_a_run_boundary_is_completed_by_the_next_run(simulator):
    day = crossing_day(simulator)
    expected = expected_journeys(served(simulator, day, day + timedelta(days=1)))
    csid = expected.query("crosses_midnight and day == @day").index[0]
    whole = expected.loc[csid]

    run_range(day, day)  # the run ends at midnight: the journey's later segments are not here yet
    early = query(f"SELECT * FROM customer_journeys WHERE customersessionid = '{csid}'")
    assert len(early) == 1 and bool(early.open_at_load[0])
    assert early.segments[0] < whole.segments

    run_range(day + timedelta(days=1), day + timedelta(days=1))  # the next run completes it
    late = query(f"SELECT * FROM customer_journeys WHERE customersessionid = '{csid}'")
    assert len(late) == 1
    assert late.day[0].date() == day
    assert late.path[0] == whole.path and late.segments[0] == whole.segments
    assert not late.open_at_load[0]
    counted = query(f"SELECT count(*) AS n FROM conversation_segments WHERE customersessionid = '{csid}'").n[0]
    assert counted == whole.segments
    # every journey of the first day is closed now that its next day is loaded
    still_open = query(f"SELECT count(*) AS n FROM customer_journeys WHERE day = '{day}' AND open_at_load").n[0]
    assert still_open == 0


def test_a_run_day_by_day_gives_the_rows_of_one_step_over_the_run(start_simulator, monkeypatch, tmp_path):
    simulator = start_simulator(seed=SEED, messages_per_day=300)
    point_at(monkeypatch, simulator)
    first, last = recent_days(4, seeds=(SEED,))  # the run; two days before it are loaded first

    def at(day: date, hours: float) -> int:
        return simulator.dataset.day_bounds_ms(day)[0] + int(hours * 3_600_000)

    def message(csid: str, ts: int, sessionid: str | None) -> tuple[int, bytes]:
        record = {
            "text": f"journey {csid}",
            "ts": ts,
            "sendertype": "customer",
            "chattype": "bot",
            "customersessionid": csid,
            "sessionchannel": "sms",
            "sentiment": 0.25,
            "topic": "refund",
        }
        if sessionid:
            record["sessionid"] = sessionid
        return ts, orjson.dumps(record)

    day = timedelta(days=1)
    simulator.dataset.inject([  # journeys at the edges of the steps (before any request)
        # lasts three days, though journeys are assumed to last less than one
        message("long.1", at(first - day, 12), "9001.1"),
        message("long.1", at(first + day, 12), "9001.2"),
        message("long.1", at(first + 2 * day, 12), "9001.3"),
        # touched on the run's first day by a message without a sessionid; its segments
        # start the next day, the day of the second step
        message("late.2", at(first, 23.9), None),
        message("late.2", at(first + day, 0.1), "9002.1"),
        # from the day before the run into its first day
        message("early.3", at(first - day, 23.5), "9003.1"),
        message("early.3", at(first, 0.5), "9003.2"),
        # started two days before the run, and continues in its last two days
        message("gap.4", at(first - 2 * day, 8), "9004.1"),
        message("gap.4", at(last - day, 8), "9004.2"),
        message("gap.4", at(last, 8), "9004.3"),
    ])  # fmt: skip

    built = {}
    for days_per_step in (1, 7):
        monkeypatch.setattr(warehouse_days, "DAYS_PER_STEP", days_per_step)
        monkeypatch.setenv("DE_DUCKDB_PATH", str(tmp_path / f"steps-of-{days_per_step}.duckdb"))
        run_range(first - 2 * day, first - day)
        run_range(first, last)  # one run of 4 days: 4 steps, or one
        built[days_per_step] = {name: dump(name) for name in TABLES}

    assert built[1] == built[7]
    journeys = {row[2] for row in built[1]["customer_journeys"]}  # provider, day, customersessionid
    # the injected journeys, and the simulator's own (no outage day among these: recent_days)
    assert {"long.1", "late.2", "early.3", "gap.4"} < journeys
    assert len(built[1]["messages"]) == len(unique_messages(served(simulator, first - 2 * day, last)))


TABLES = TABLE_NAMES  # every table of the registry
