"""No silently empty day: a fetch whose records lie outside their window stops naming
DE_EPOCH_UNIT."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import orjson
import pytest

from de_pipeline.api.client import _WindowSample
from de_pipeline.api.simulator import ScriptedResponse
from de_pipeline.api.windows import Window
from de_pipeline.runner import RunFailedError, run_range
from de_pipeline.warehouse.archive import archive_file
from de_pipeline.warehouse.settings import WarehouseSettings
from de_pipeline.warehouse.tables import TABLE_NAMES
from de_pipeline_tests.conftest import point_at
from de_pipeline_tests.helpers import busy_day, dump, query, unique_messages

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
    assert len(records) > 10
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
    assert query("SELECT count(*) AS n FROM messages").n[0] == len(unique_messages(records)) > 10


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
    sample = _WindowSample(WINDOW)
    sample.add(ts_values)
    problem = sample.mismatch(unit)
    assert (problem is None) if said is None else (said in problem), problem
