"""The embedded simulator: its synthetic data, and the API contract it serves over HTTP.

HTTP is spoken with plain `requests`, not with the project's client, so that the simulator
is checked independently of the code it is used to test.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest
import requests

from de_pipeline.api.settings import CUSTOMER_SESSION_PATH, DAY_MS, MAX_WINDOW_MS, PROVIDER_PATH
from de_pipeline.simulator import ScriptedResponse, Simulator, SimulatorConfig, SyntheticDataset
from de_pipeline.simulator import vocabulary as words
from de_pipeline_tests.conftest import TEST_KEY, TEST_PROVIDER

LABELS = ("GPE", "DATE", "TIME", "ORG", "PERSON", "MONEY", "EMAIL", "NUMERIC", "ID")
_L = "|".join(LABELS)
WRAPPINGS = {
    "[LABEL]": re.compile(rf"\[({_L})\]"),
    "<LABEL>": re.compile(rf"<({_L})>"),
    "{LABEL}": re.compile(rf"\{{({_L})\}}"),
    "#LABEL#": re.compile(rf"#({_L})#"),
    "**LABEL**": re.compile(rf"(?<!\*)\*\*({_L})\*\*(?!\*)"),
    "****LABEL****": re.compile(rf"(?<!\*)\*\*\*\*({_L})\*\*\*\*(?!\*)"),
}
# "now" for the simulators below: noon UTC today, fixed so that retention edges are exact.
TODAY = datetime.now(UTC).date()
NOW_MS = int(datetime(TODAY.year, TODAY.month, TODAY.day, 12, tzinfo=UTC).timestamp() * 1000)


# ---- helpers ------------------------------------------------------------------------------


def day_ms(day: date) -> tuple[int, int]:
    start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
    return start, start + DAY_MS


def ordinary_day(dataset: SyntheticDataset, *, weekday: bool = True, days_ago: int = 1) -> date:
    """A recent day that is no outage day (and a Monday to Thursday if `weekday`)."""
    day = TODAY - timedelta(days=days_ago)
    while (
        dataset.is_outage_day(day) or dataset.is_outage_day(day + timedelta(days=1)) or (weekday and day.weekday() > 3)
    ):
        day -= timedelta(days=1)
    return day


def served_day(dataset: SyntheticDataset, day: date, step: int) -> date:
    """The first day from `day` on, going by `step` days, that is no outage day; `day` excluded."""
    day += timedelta(days=step)
    while dataset.is_outage_day(day):
        day += timedelta(days=step)
    return day


def start(config: SimulatorConfig) -> Iterator[Simulator]:
    simulator = Simulator(config, now=lambda: NOW_MS / 1000)
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()


def config(**values: Any) -> SimulatorConfig:
    values.setdefault("api_key", TEST_KEY)
    values.setdefault("provider_id", TEST_PROVIDER)
    values.setdefault("retry_after_seconds", 0)
    return SimulatorConfig(**values)


@pytest.fixture(scope="module")
def plain() -> Iterator[Simulator]:
    """Seconds on the wire, a page cap of 100, a default page of 30."""
    yield from start(config(seed=3, messages_per_day=500, max_page_size=100, default_page_size=30))


@pytest.fixture(scope="module")
def in_ms() -> Iterator[Simulator]:
    yield from start(config(seed=3, messages_per_day=500, max_page_size=5000, epoch_unit="ms"))


@pytest.fixture(scope="module")
def hostile() -> Iterator[Simulator]:
    yield from start(config(seed=5, messages_per_day=400, max_page_size=50, hostile=True, retry_after_seconds=2))


def headers(key: str | None = TEST_KEY, provider: str | None = TEST_PROVIDER) -> dict[str, str]:
    values = {}
    if key is not None:
        values["Authorization"] = f"Bearer {key}"
    if provider is not None:
        values["providerid"] = provider
    return values


def post(simulator: Simulator, body: Any, *, path: str = PROVIDER_PATH, **header_values: Any) -> requests.Response:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return requests.post(
        simulator.base_url + path,
        data=data,
        headers=headers(**header_values) | {"Content-Type": "application/json"},
        timeout=10,
    )


def wire(simulator: Simulator, ms: int) -> int:
    if simulator.config.epoch_unit == "s":
        assert ms % 1000 == 0
        return ms // 1000
    return ms


def page(
    simulator: Simulator, start_ms: int, end_ms: int, *, limit: int = 1000, offset: int = 0, tries: int = 1
) -> list[Any]:
    """One page of the provider endpoint; retries faults (hostile mode) up to `tries` times."""
    body = {"start": wire(simulator, start_ms), "end": wire(simulator, end_ms), "limit": limit,
            "offset": offset, "interval": "1d"}  # fmt: skip
    for _ in range(tries):
        try:
            response = post(simulator, body)
        except requests.ConnectionError:
            continue
        if response.status_code == 200:
            return response.json()
    raise AssertionError(f"no 200 in {tries} tries: {response.status_code} {response.text[:200]}")


def all_pages(simulator: Simulator, start_ms: int, end_ms: int, *, tries: int = 1) -> list[list[Any]]:
    """Every page of the window, advancing the offset by the rows received, until `[]`."""
    pages, offset = [], 0
    while rows := page(simulator, start_ms, end_ms, offset=offset, tries=tries):
        pages.append(rows)
        offset += len(rows)
    return pages


def canonical(records: list[Any]) -> list[bytes]:
    return [orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in records]


# ---- the synthetic data -------------------------------------------------------------------


def test_the_same_seed_gives_the_same_bytes_whatever_the_order_of_generation():
    first = TODAY - timedelta(days=9)
    start_ms, end_ms = day_ms(first)[0], day_ms(first + timedelta(days=3))[0]
    one, two = SyntheticDataset(11, 500), SyntheticDataset(11, 500)
    two.payloads_between(*day_ms(first + timedelta(days=2)))  # generate the days in another order
    two.payloads_between(*day_ms(first + timedelta(days=1)))
    assert one.payloads_between(start_ms, end_ms) == two.payloads_between(start_ms, end_ms)
    assert len(one.payloads_between(start_ms, end_ms)) > 500
    other = SyntheticDataset(12, 500).payloads_between(start_ms, end_ms)
    assert other != one.payloads_between(start_ms, end_ms)
    hostile_one = SyntheticDataset(11, 500, hostile=True).payloads_between(start_ms, end_ms)
    hostile_two = SyntheticDataset(11, 500, hostile=True).payloads_between(start_ms, end_ms)
    assert hostile_one == hostile_two


def test_long_texts_keep_the_journeys_and_run_to_a_few_hundred_characters():
    start_ms, end_ms = day_ms(TODAY - timedelta(days=3))[0], day_ms(TODAY - timedelta(days=1))[1]
    short = SyntheticDataset(7, 2000).messages_between(start_ms, end_ms)
    long = SyntheticDataset(7, 2000, long_texts=True).messages_between(start_ms, end_ms)
    assert len(long) == len(short) > 500
    for plain, lengthened in zip(short, long):
        assert lengthened["text"].startswith(plain["text"])
        assert {**lengthened, "text": plain["text"]} == plain  # every other field as it was
    sizes = sorted(len(m["text"]) for m in long)
    assert max(len(m["text"]) for m in short) < 100
    assert 250 <= sizes[-1] <= 600 and sizes[len(sizes) // 2] < 100  # most stay short
    assert sum(size > 150 for size in sizes) > len(sizes) / 10


def test_volume_is_roughly_messages_per_day():
    dataset = SyntheticDataset(7, 1000)
    days = [TODAY - timedelta(days=n) for n in range(1, 15)]
    counts = {day: len(dataset.payloads_between(*day_ms(day))) for day in days}
    normal = [d for d in days if not dataset.is_outage_day(d) and not dataset.is_outage_day(d - timedelta(days=1))]
    weekdays = [counts[d] for d in normal if d.weekday() <= 3]
    weekends = [counts[d] for d in normal if d.weekday() >= 5]
    assert weekdays and weekends
    assert all(800 <= n <= 1200 for n in weekdays), weekdays
    assert sum(weekends) / len(weekends) < sum(weekdays) / len(weekdays)
    served_days = [counts[d] for d in days if not dataset.is_outage_day(d)]  # 3 of 14 were outages on 2027-10-17
    assert 0.7 * 1000 <= sum(served_days) / len(served_days) <= 1.05 * 1000
    assert len(SyntheticDataset(7, 300).payloads_between(*day_ms(normal[0]))) < counts[normal[0]] / 2


def test_some_days_are_empty_outage_days(plain):
    dataset = SyntheticDataset(7, 1000, hostile=True)
    year = [TODAY - timedelta(days=n) for n in range(1, 366)]
    outages = [day for day in year if dataset.is_outage_day(day)]
    assert 0.005 * 365 <= len(outages) <= 0.08 * 365
    for day in outages[:3]:
        assert dataset.payloads_between(*day_ms(day)) == [], "an outage day holds nothing, not even extras"
    after_a_served_day = [day for day in outages if day - timedelta(days=1) not in outages]  # two in a row happen
    for day in after_a_served_day[:3]:
        assert dataset.payloads_between(*day_ms(day - timedelta(days=1))), "the day before is not empty"
    # and the server serves [] for one of its own outage days
    empty = next(day for day in year[:365] if plain.dataset.is_outage_day(day))
    assert page(plain, *day_ms(empty)) == []


def segments(journey: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(sessionid, messages) of each segment of a journey, in time order."""
    result: list[tuple[str, list[dict[str, Any]]]] = []
    for message in sorted(journey, key=lambda m: m["ts"]):
        if result and result[-1][0] == message["sessionid"]:
            result[-1][1].append(message)
        else:
            result.append((message["sessionid"], [message]))
    return result


def kind(messages: list[dict[str, Any]]) -> str:
    if any(m["text"] == words.SURVEY_LINES[0] for m in messages):
        return "S"
    if any(m["sendertype"] == "agent" for m in messages):
        assert all(m["chattype"] == "agent" for m in messages)
        return "A"
    assert all(m["chattype"] == "bot" for m in messages)
    return "B"


def test_journeys_go_bot_then_agents_then_survey_under_one_customersessionid():
    dataset = SyntheticDataset(7, 800)
    day = ordinary_day(dataset)
    start_ms = day_ms(day)[0]
    messages = dataset.messages_between(start_ms, start_ms + 2 * DAY_MS)
    journeys: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in messages:
        csid = message["customersessionid"]
        assert re.fullmatch(r"-?\d+\.\d{4}", csid)
        if csid.lstrip("-").split(".")[0] == str(day.toordinal()):
            journeys[csid].append(message)
    assert len(journeys) > 30
    shapes = Counter()
    for csid, journey in journeys.items():
        parts = segments(journey)
        shape = "".join(kind(msgs) for _, msgs in parts)
        assert re.fullmatch(r"B(A{1,3}S?)?B?", shape), (csid, shape)
        shapes[shape.rstrip("B") or "B"] += 1
        conversation, segment = map(int, parts[0][0].split("."))
        assert segment == 1
        for number, (sessionid, msgs) in enumerate(parts[1:], 2):
            x, y = map(int, sessionid.split("."))
            if kind(msgs) == "A":
                assert (x, y) == (conversation, number), (csid, sessionid)
            elif kind(msgs) == "S":
                assert (x, y) in {(conversation, number), (conversation + 1, 1)}, (csid, sessionid)
            else:  # the customer came back later
                assert x in (conversation + 2, conversation + 3) and y == 1
        for _, msgs in parts:
            assert msgs[0]["sendertype"] in ("bot", "agent")  # the bot or the agent opens a segment
        assert len({m["sessionchannel"] for m in journey}) == 1
    assert shapes["B"] and shapes["BA"] and shapes["BAS"] and (shapes["BAA"] + shapes["BAAS"])
    assert sum(n for s, n in shapes.items() if "A" in s) > len(journeys) / 3


def test_all_nine_redaction_labels_appear_in_every_wrapping():
    dataset = SyntheticDataset(7, 1000)
    day = ordinary_day(dataset)
    texts = [m["text"] for m in dataset.messages_between(*day_ms(day))]
    labels_by_wrapping = {name: set() for name in WRAPPINGS}
    for text in texts:
        for name, pattern in WRAPPINGS.items():
            labels_by_wrapping[name].update(pattern.findall(text))
    assert set().union(*labels_by_wrapping.values()) == set(LABELS)
    assert all(labels_by_wrapping.values()), labels_by_wrapping
    assert not any("%" + label + "%" in text for text in texts for label in LABELS), "a token was left raw"


def test_hostile_extras_are_present():
    dataset = SyntheticDataset(5, 400, hostile=True)
    day = ordinary_day(dataset, weekday=False)
    start_ms, end_ms = day_ms(day)
    records = dataset.messages_between(start_ms, end_ms)
    messages = [r for r in records if isinstance(r, dict)]
    by_ts = {m.get("ts"): m for m in messages}
    assert by_ts[start_ms]["text"] == "first message of the day"
    assert by_ts[end_ms - 1]["text"] == "last message of the day"
    assert min(m["ts"] for m in messages if isinstance(m.get("ts"), int)) == start_ms
    sessionids = {m.get("sessionid") for m in messages}
    assert set(words.MALFORMED_SESSIONIDS) <= sessionids
    assert any(len(m.get("text") or "") >= 100_000 for m in messages)
    assert set(words.ODD_TEXTS) <= {m.get("text") for m in messages}
    assert any(not isinstance(r, dict) for r in records), "a record that is not an object"
    assert any(isinstance(m.get("ts"), str) for m in messages), "a record whose ts is a string"
    assert any("ts" not in m for m in messages), "a record without ts"
    assert any("lang" not in m or "chattype" not in m for m in messages if "ts" in m), "missing fields"
    normal = SyntheticDataset(5, 400).messages_between(start_ms, end_ms)
    assert not set(words.MALFORMED_SESSIONIDS) & {m["sessionid"] for m in normal}


# ---- the HTTP contract --------------------------------------------------------------------


def test_the_server_serves_the_dataset_in_time_order_through_its_page_cap(plain):
    day = ordinary_day(plain.dataset)
    start_ms, end_ms = day_ms(day)
    before = len(plain.requests)
    pages = all_pages(plain, start_ms, end_ms)
    served = [r for rows in pages for r in rows]
    assert served == plain.dataset.messages_between(start_ms, end_ms)
    assert len(served) > 300
    assert [m["ts"] for m in served] == sorted(m["ts"] for m in served)
    assert all(len(rows) == 100 for rows in pages[:-1]) and 0 < len(pages[-1]) <= 100
    records = plain.requests[before:]
    assert [r.offset for r in records] == [100 * n for n in range(len(pages))] + [len(served)]
    assert {r.limit for r in records} == {100}  # 1000 asked, capped at 100
    assert {(r.start_ms, r.end_ms, r.method, r.path, r.status) for r in records} == {
        (start_ms, end_ms, "POST", PROVIDER_PATH, 200)
    }
    assert [r.rows for r in records] == [len(rows) for rows in pages] + [0]
    # limit 0 means the server's default page; an offset past the end gives []
    assert len(page(plain, start_ms, end_ms, limit=0)) == 30
    assert len(page(plain, start_ms, end_ms, limit=7, offset=5)) == 7
    assert page(plain, start_ms, end_ms, limit=7, offset=5) == served[5:12]
    assert page(plain, start_ms, end_ms, offset=len(served) + 10) == []


def test_the_window_is_half_open(in_ms):
    day = ordinary_day(in_ms.dataset)
    start_ms, end_ms = day_ms(day)
    messages = in_ms.dataset.messages_between(start_ms, end_ms)
    target = messages[len(messages) // 2]
    ts = target["ts"]
    assert ts % 1000, "pick a message off the whole second, so the ms unit matters"
    upto = page(in_ms, start_ms, ts)
    assert target not in upto and upto and all(m["ts"] < ts for m in upto)
    through = page(in_ms, start_ms, ts + 1)
    assert target in through and through[: len(upto)] == upto
    assert page(in_ms, ts, ts + 1) == [m for m in messages if m["ts"] == ts]
    assert page(in_ms, ts, ts) == []


def test_half_open_at_day_edges_in_hostile_mode(hostile):
    day = ordinary_day(hostile.dataset, weekday=False)
    start_ms, end_ms = day_ms(day)
    served = [r for rows in all_pages(hostile, start_ms, end_ms, tries=12) for r in rows]
    timestamps = {r.get("ts") for r in served if isinstance(r, dict)}
    assert start_ms in timestamps and end_ms - 1 in timestamps
    assert end_ms not in timestamps  # the next day's first message is not served
    assert end_ms in {r.get("ts") for r in hostile.dataset.messages_between(end_ms, end_ms + 1)}
    # rows repeat across page boundaries, none is lost
    held = hostile.dataset.messages_between(start_ms, end_ms)
    assert set(canonical(served)) == set(canonical(held))
    assert len(served) - len(held) == len(held) // hostile.config.max_page_size > 0


def test_hostile_mode_answers_with_every_kind_of_fault(hostile):
    day = ordinary_day(hostile.dataset, weekday=False)
    body = {"start": wire(hostile, day_ms(day)[0]), "end": wire(hostile, day_ms(day)[1]), "limit": 10, "offset": 0}
    outcomes = []
    before = len(hostile.requests)
    for _ in range(2 * 14):
        try:
            response = post(hostile, body)
        except requests.ConnectionError:
            outcomes.append(("reset", None, ""))
            continue
        outcomes.append((response.status_code, response.headers.get("Retry-After"), response.text))
    statuses = Counter(status for status, _, _ in outcomes)
    assert statuses[200] >= 10
    assert any(s == 429 and after == "2" for s, after, _ in outcomes), "429 with Retry-After"
    assert any(s == 429 and after is None for s, after, _ in outcomes), "429 without Retry-After"
    assert any(s == 503 and text.lstrip().startswith("<html") for s, _, text in outcomes), "503 with HTML"
    assert any(s in (500, 502) and not text.lstrip().startswith(("{", "<")) for s, _, text in outcomes)
    assert statuses["reset"] >= 1
    assert [r.status for r in hostile.requests[before:]].count(0) == statuses["reset"]
    ok = [orjson.loads(text) for s, _, text in outcomes if s == 200]
    assert all(rows == ok[0] for rows in ok), "a fault does not move the data"


def test_retention_and_the_future_give_empty_arrays(plain):
    cut = NOW_MS - 365 * DAY_MS  # NOW_MS is noon: the cut is at noon, 365 days ago
    old_day = ordinary_day(plain.dataset, weekday=False, days_ago=400)
    assert plain.dataset.payloads_between(*day_ms(old_day)), "the data exists; retention hides it"
    assert page(plain, *day_ms(old_day)) == []
    cut_day = datetime.fromtimestamp(cut / 1000, UTC).date()
    before, after = (served_day(plain.dataset, cut_day, step) for step in (-1, 1))  # outages come two in a row
    start_ms, end_ms = day_ms(before)[0], day_ms(after)[1]
    held = plain.dataset.messages_between(start_ms, end_ms)
    assert any(m["ts"] < cut for m in held) and any(m["ts"] >= cut for m in held)
    assert [r for rows in all_pages(plain, start_ms, end_ms) for r in rows] == [m for m in held if m["ts"] >= cut]
    # the future: tomorrow is [], and today is served only up to now
    tomorrow = next(d for n in range(1, 30) if not plain.dataset.is_outage_day(d := TODAY + timedelta(days=n)))
    assert plain.dataset.payloads_between(*day_ms(tomorrow))
    assert page(plain, *day_ms(tomorrow)) == []
    today = [r for rows in all_pages(plain, *day_ms(TODAY)) for r in rows]
    assert today == plain.dataset.messages_between(day_ms(TODAY)[0], NOW_MS)


def test_a_window_over_seven_days_is_refused(plain):
    end_ms = day_ms(TODAY)[0]
    start_ms = end_ms - MAX_WINDOW_MS
    assert post(plain, {"start": wire(plain, start_ms), "end": wire(plain, end_ms), "limit": 5}).status_code == 200
    response = post(plain, {"start": wire(plain, start_ms) - 1, "end": wire(plain, end_ms), "limit": 5})
    assert response.status_code == 400
    assert "7 days" in response.json()["error"]
    assert plain.requests[-1].status == 400


@pytest.mark.parametrize(
    "body",
    [
        {"start": "abc", "end": 1, "limit": 5},
        {"end": 1_700_000_000},
        {"start": 1_700_000_000},
        {"start": 1_700_000_000, "end": 1_700_000_100, "offset": -1},
        {"start": 1_700_000_000, "end": 1_700_000_100, "limit": True},
        {"start": 1_700_000_100, "end": 1_700_000_000},
        [1, 2, 3],
        b"not json",
    ],
    ids=["start-text", "no-start", "no-end", "negative-offset", "bool-limit", "end-before-start", "array", "not-json"],
)
def test_bad_parameters_get_400_with_a_json_error(plain, body):
    response = post(plain, body)
    assert response.status_code == 400
    assert response.json()["error"]


def test_customersession_endpoint_missing_start_gets_400(plain):
    response = requests.get(
        plain.base_url + CUSTOMER_SESSION_PATH,
        params={"customersessionid": "1.1", "end": 5},
        headers=headers(),
        timeout=10,
    )
    assert response.status_code == 400


def test_auth_provider_path_and_method(plain):
    start_ms, end_ms = day_ms(ordinary_day(plain.dataset))
    body = {"start": wire(plain, start_ms), "end": wire(plain, end_ms), "limit": 3}
    cases = {
        "wrong key": (post(plain, body, key="not-the-key"), 401),
        "no key": (post(plain, body, key=None), 401),
        "wrong provider": (post(plain, body, provider="someone-else"), 403),
        "no provider": (post(plain, body, provider=None), 403),
        "wrong path": (post(plain, body, path="/api/v2/redacted/provider"), 404),
    }
    for name, (response, status) in cases.items():
        assert response.status_code == status, name
        assert response.json()["error"], name
        assert TEST_KEY not in response.text
    # the provider id as the query parameter `providerId` (older API versions)
    response = requests.post(
        plain.base_url + PROVIDER_PATH, params={"providerId": TEST_PROVIDER}, data=orjson.dumps(body),
        headers=headers(provider=None), timeout=10,
    )  # fmt: skip
    assert response.status_code == 200 and len(response.json()) == 3
    # each endpoint has its method
    response = requests.get(plain.base_url + PROVIDER_PATH, params=body, headers=headers(), timeout=10)
    assert response.status_code == 405


def test_customersession_endpoint_serves_one_journey(plain):
    day = ordinary_day(plain.dataset, days_ago=2)
    start_ms, end_ms = day_ms(day)[0], day_ms(day)[1] + DAY_MS  # two days, ending before now
    held = plain.dataset.messages_between(start_ms, end_ms)
    sizes = Counter(m["customersessionid"] for m in held)
    csid = max((c for c in sizes if c.startswith("-")), key=sizes.get)

    def ask(customersessionid: str, **window: int) -> requests.Response:
        params = {
            "customersessionid": customersessionid,
            "start": wire(plain, window.get("start", start_ms)),
            "end": wire(plain, window.get("end", end_ms)),
            "limit": 1000,
            "offset": window.get("offset", 0),
        }
        return requests.get(plain.base_url + CUSTOMER_SESSION_PATH, params=params, headers=headers(), timeout=10)

    response = ask(csid)
    assert response.status_code == 200
    assert response.json() == [m for m in held if m["customersessionid"] == csid]
    assert plain.requests[-1].customersessionid == csid and plain.requests[-1].method == "GET"
    assert ask(csid, offset=2).json() == response.json()[2:]
    for unknown in ("999999.0001", f"{day.toordinal()}.9999", "abc", "1.2.3", ""):
        answer = ask(unknown)
        assert answer.status_code == 200 and answer.json() == [], unknown
    assert requests.post(plain.base_url + CUSTOMER_SESSION_PATH, headers=headers(), timeout=10).status_code == 405


def test_scripted_responses_replace_the_next_data_requests_in_order(plain):
    start_ms, end_ms = day_ms(ordinary_day(plain.dataset))
    body = {"start": wire(plain, start_ms), "end": wire(plain, end_ms), "limit": 2}
    plain.script([ScriptedResponse(418, b"teapot", {"X-Test": "yes"}), ScriptedResponse(200, b"[1]")])
    assert post(plain, body, key="wrong").status_code == 401  # refused before the script is used
    first = post(plain, body)
    assert (first.status_code, first.text, first.headers["X-Test"]) == (418, "teapot", "yes")
    assert post(plain, body).json() == [1]
    assert post(plain, body).json() == plain.dataset.messages_between(start_ms, end_ms)[:2]
    assert [r.status for r in plain.requests[-4:]] == [401, 418, 200, 200]
