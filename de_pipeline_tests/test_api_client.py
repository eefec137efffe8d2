"""The API client against the simulator, over real HTTP on loopback.

What is fetched is compared with what the simulator's dataset holds for the window; what the
client asked is read from the server's own request record (`simulator.requests`).
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
import tracemalloc
import zlib
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from email.utils import formatdate
from typing import Any
from urllib.parse import quote, quote_plus

import orjson
import pytest
import requests

from de_pipeline.api import (
    ApiAuthError,
    ApiBadRequestError,
    ApiEpochUnitError,
    ApiError,
    ApiNotFoundError,
    ApiRedirectError,
    ApiResponseError,
    ApiRetriesExhausted,
    ApiSettings,
    ApiStatusError,
    DigitalEngagementClient,
    Window,
)
from de_pipeline.api.errors import scrub
from de_pipeline.api.limiter import RateLimiter
from de_pipeline.api.settings import CUSTOMER_SESSION_PATH, DAY_MS, MAX_WINDOW_MS, PROVIDER_PATH
from de_pipeline.api.windows import window_parts
from de_pipeline.env import Env, SettingsError
from de_pipeline.simulator import ScriptedResponse, Simulator
from de_pipeline_tests.conftest import TEST_KEY, TEST_PROVIDER, point_at

PAGE_CAP = 70
# A key that is easy to spot anywhere it might leak.
RECOGNISABLE_KEY = "WRONG-key-7c41e2-recognisable-SECRET"


# ---- helpers ------------------------------------------------------------------------------


def ordinary_days(simulator: Simulator, count: int, *, ending_days_ago: int = 1) -> tuple[date, date]:
    """`count` consecutive recent UTC days, none an outage day, all fully in the past."""
    last = datetime.now(UTC).date() - timedelta(days=ending_days_ago)
    while True:
        first = last - timedelta(days=count - 1)
        days = [first + timedelta(days=n) for n in range(count)]
        if not any(simulator.dataset.is_outage_day(day) for day in days):
            return first, last
        last -= timedelta(days=1)


class FakeClock:
    """A monotonic clock that only sleeping advances; the sleeps are kept."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def days_window(simulator: Simulator, first: date, last: date) -> Window:
    return Window(simulator.dataset.day_bounds_ms(first)[0], simulator.dataset.day_bounds_ms(last)[1])


def settings_for(simulator: Simulator, **overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "base_url": simulator.base_url,
        "api_key": TEST_KEY,
        "provider_id": TEST_PROVIDER,
        "page_size": 1000,
        "backoff_base_seconds": 0.01,
        "backoff_max_seconds": 0.05,
        "max_requests_per_second": 1000,
        "read_timeout": 10.0,
        "connect_timeout": 5.0,
    }
    values.update(overrides)
    return ApiSettings(**values)


def records_of(pages: Any) -> tuple[list[bytes], list[Any]]:
    """Every record of the pages, re-serialised (orjson round-trips its own output byte for
    byte), and the pages themselves."""
    pages = list(pages)
    return [orjson.dumps(record) for page in pages for record in orjson.loads(page.body)], pages


def expected_payloads(simulator: Simulator, window: Window) -> list[bytes]:
    """What the server holds for the window, as the bytes it serves for each record."""
    return simulator.dataset.payloads_between(window.start_ms, window.end_ms)


def data_requests(simulator: Simulator) -> list[Any]:
    return [r for r in simulator.requests if r.start_ms is not None]


def check_offsets_follow_rows(simulator: Simulator, window: Window) -> list[int]:
    """Offsets of the window's successful requests: each is the previous plus its rows; a
    failed request is retried at the same offset; paging ends on an empty page."""
    records = [r for r in data_requests(simulator) if (r.start_ms, r.end_ms) == (window.start_ms, window.end_ms)]
    assert records, f"no request for {window}"
    ok = [r for r in records if r.status == 200]
    assert ok[0].offset == 0
    for before, after in zip(ok, ok[1:]):
        assert after.offset == before.offset + before.rows, (before, after)
    assert ok[-1].rows == 0, "paging must end on an empty page"
    assert all(r.rows > 0 for r in ok[:-1]), "an empty page must end the paging"
    for failed, following in zip(records, records[1:]):
        if failed.status != 200:
            assert following.offset == failed.offset, "a failed page must be asked again"
    return [r.offset for r in ok]


def assert_secret_free(text: str, key: str = TEST_KEY) -> None:
    """Neither the key nor any 8-character piece of it appears in `text`."""
    assert key not in text
    pieces = {key[i : i + 8] for i in range(len(key) - 7)}
    leaked = [piece for piece in pieces if piece in text]
    assert not leaked, f"parts of the API key leaked: {leaked}"


# ---- every message, through page caps, in normal and hostile mode --------------------------


@pytest.mark.parametrize("hostile", [False, True], ids=["normal", "hostile"])
def test_every_message_arrives_exactly_as_served_through_page_caps(start_simulator, hostile):
    simulator = start_simulator(hostile=hostile, messages_per_day=800, max_page_size=PAGE_CAP)
    first, last = ordinary_days(simulator, 2)
    window = days_window(simulator, first, last)
    expected = expected_payloads(simulator, window)
    # many pages: a Saturday and Sunday hold about 1000 (800 a day times 0.7 and 0.55), other days more
    assert len(expected) > 10 * PAGE_CAP

    with DigitalEngagementClient(settings_for(simulator)) as client:
        fetched, pages = records_of(client.provider_pages(window))

    assert all(page.rows <= PAGE_CAP for page in pages)
    assert sum(page.rows for page in pages) == len(fetched) == client.stats.rows
    assert all(page.window == window for page in pages)
    offsets = check_offsets_follow_rows(simulator, window)
    assert [page.offset for page in pages] == offsets[:-1]
    if not hostile:
        assert Counter(fetched) == Counter(expected)
        assert fetched == expected  # in the server's order, too
        assert client.stats.retries == 0
        assert offsets == list(range(0, len(expected) + 1, PAGE_CAP)) + (
            [len(expected)] if len(expected) % PAGE_CAP else []
        )
        return
    # Hostile: rows repeat across page boundaries, but none is missing and none is invented.
    fetched_counts, expected_counts = Counter(fetched), Counter(expected)
    assert set(fetched_counts) == set(expected_counts)
    assert not expected_counts - fetched_counts, "a served message is missing"
    assert len(fetched) > len(expected), "hostile mode should have repeated some rows"
    assert client.stats.retries > 0
    statuses = Counter(r.status for r in data_requests(simulator))
    assert {429, 500, 502, 503, 0} <= set(statuses), statuses
    assert client.stats.requests == len(data_requests(simulator))
    # the hostile extras made it through: day edges, malformed session ids, the ~100 KB text
    parsed = [orjson.loads(p) for p in set(fetched)]
    messages = [m for m in parsed if isinstance(m, dict)]
    assert window.start_ms in {m.get("ts") for m in messages}
    assert window.end_ms - 1 in {m.get("ts") for m in messages}
    assert any(len(m.get("text") or "") >= 100_000 for m in messages)
    assert {"abc", "1.2.3", "12.x"} <= {m.get("sessionid") for m in messages}


def test_offset_advances_by_rows_received_and_a_short_page_is_not_the_end(start_simulator):
    simulator = start_simulator(messages_per_day=400, max_page_size=PAGE_CAP)
    first, last = ordinary_days(simulator, 1)
    window = days_window(simulator, first, last)
    expected = expected_payloads(simulator, window)
    # The first page is short: 3 rows although 1000 were asked and 70 is the cap.
    short = b"[" + b",".join(expected[:3]) + b"]"
    simulator.script([ScriptedResponse(200, short)])

    with DigitalEngagementClient(settings_for(simulator, page_size=1000)) as client:
        fetched, pages = records_of(client.provider_pages(window))

    assert fetched == expected  # every message once: the client went on after 3 rows
    offsets = [r.offset for r in data_requests(simulator)]
    assert offsets[:4] == [0, 3, 3 + PAGE_CAP, 3 + 2 * PAGE_CAP]
    assert offsets[-1] == len(expected)
    assert [page.rows for page in pages][:3] == [3, PAGE_CAP, PAGE_CAP]
    assert [page.offset for page in pages] == offsets[:-1]
    assert all(offset % 1000 for offset in offsets[1:]), "the offset must not follow the page size"


def test_a_range_over_seven_days_is_split_into_legal_windows_that_tile_it(start_simulator):
    simulator = start_simulator(messages_per_day=300, max_page_size=1000)
    first, last = ordinary_days(simulator, 17, ending_days_ago=2)
    window = days_window(simulator, first, last)
    assert window.span_ms == 17 * DAY_MS

    with DigitalEngagementClient(settings_for(simulator)) as client:
        fetched, _ = records_of(client.provider_pages(window))

    records = data_requests(simulator)
    assert records and all(r.status == 200 for r in records)
    assert all(r.end_ms - r.start_ms <= MAX_WINDOW_MS for r in records)
    asked = list(dict.fromkeys((r.start_ms, r.end_ms) for r in records))  # in order of first use
    assert len(asked) == 3
    assert asked[0][0] == window.start_ms
    assert asked[-1][1] == window.end_ms
    for (_, end), (start, _) in zip(asked, asked[1:]):
        assert end == start, "windows must neither overlap nor leave a gap"
    assert sum(end - start for start, end in asked) == window.span_ms
    for start, end in asked:
        check_offsets_follow_rows(simulator, Window(start, end))
    assert fetched == expected_payloads(simulator, window)


@pytest.mark.parametrize(
    ("epoch_unit", "providerid_in"),
    [("s", "header"), ("s", "query"), ("ms", "both")],
)
def test_wire_settings_epoch_unit_and_providerid_placement(start_simulator, epoch_unit, providerid_in):
    simulator = start_simulator(messages_per_day=300, max_page_size=500, epoch_unit=epoch_unit)
    first, last = ordinary_days(simulator, 1)
    day = days_window(simulator, first, last)
    # in milliseconds, a window need not be in whole seconds
    window = Window(day.start_ms + 12_345, day.end_ms - 7) if epoch_unit == "ms" else day
    settings = settings_for(simulator, epoch_unit=epoch_unit, providerid_in=providerid_in)
    with DigitalEngagementClient(settings) as client:
        fetched, _ = records_of(client.provider_pages(window))
    assert fetched == expected_payloads(simulator, window)
    assert {(r.start_ms, r.end_ms) for r in data_requests(simulator)} == {(window.start_ms, window.end_ms)}


@pytest.mark.parametrize("hours", [24, 23, 25])  # a day, and the two days of a DST change
@pytest.mark.parametrize("count", [1, 3, 7, 8, 24])
def test_a_days_window_cut_into_parts_is_tiled_on_whole_seconds(hours, count):
    start = int(datetime(2027, 3, 14, 8, tzinfo=UTC).timestamp()) * 1000
    window = Window(start, start + hours * 3_600_000)
    parts = window_parts(window, count)
    assert len(parts) == count
    assert (parts[0].start_ms, parts[-1].end_ms) == (window.start_ms, window.end_ms)
    assert all(a.end_ms == b.start_ms for a, b in zip(parts, parts[1:], strict=False))
    assert all(p.start_ms % 1000 == 0 and p.span_ms > 0 for p in parts)
    assert max(p.span_ms for p in parts) - min(p.span_ms for p in parts) <= 1000


def test_a_window_not_in_whole_seconds_is_refused_before_any_request(start_simulator):
    simulator = start_simulator(messages_per_day=300)
    with DigitalEngagementClient(settings_for(simulator, epoch_unit="s")) as client:
        with pytest.raises(ValueError, match="whole seconds"):
            list(client.provider_pages(Window(1_700_000_000_500, 1_700_000_100_000)))
    assert simulator.requests == []


# ---- errors that retrying cannot fix: at once, one request, named, secret-free ------------


def fail_once(simulator, settings, window, expected_type, caplog):
    caplog.set_level(logging.DEBUG)
    sleeps: list[float] = []
    with DigitalEngagementClient(settings, sleep=sleeps.append) as client:
        with pytest.raises(expected_type) as info:
            list(client.provider_pages(window))
    error = info.value
    assert type(error) is expected_type
    assert len(simulator.requests) == 1, "a permanent error must not be retried"
    assert client.stats.retries == 0
    assert not [s for s in sleeps if s > 0.01], "no backoff for a permanent error"
    message = str(error)
    assert "POST" in message and settings.provider_path in message
    assert str(window) in message
    assert_secret_free(message, settings.api_key)
    assert_secret_free(caplog.text, settings.api_key)
    assert_secret_free(message, TEST_KEY)
    assert_secret_free(caplog.text, TEST_KEY)
    return error, message


def test_400_bad_parameter_fails_at_once_with_the_servers_message(start_simulator, caplog):
    # The client sends milliseconds, the server reads seconds: every window looks > 7 days.
    simulator = start_simulator(messages_per_day=300, epoch_unit="s")
    window = days_window(simulator, *ordinary_days(simulator, 1))
    settings = settings_for(simulator, epoch_unit="ms")
    error, message = fail_once(simulator, settings, window, ApiBadRequestError, caplog)
    assert "400" in message
    assert "end - start must not be more than 7 days" in message
    assert error.server_message == "end - start must not be more than 7 days"
    assert simulator.requests[0].status == 400


def test_400_scripted_json_body_echoing_the_key_is_scrubbed(start_simulator, caplog):
    simulator = start_simulator(messages_per_day=300)
    window = days_window(simulator, *ordinary_days(simulator, 1))
    body = orjson.dumps({"error": f"bad 'limit' in request with Authorization: Bearer {TEST_KEY}"})
    simulator.script([ScriptedResponse(400, body)])
    _, message = fail_once(simulator, settings_for(simulator), window, ApiBadRequestError, caplog)
    assert "bad 'limit' in request" in message


def test_401_wrong_key_fails_at_once_and_never_shows_the_key(start_simulator, caplog):
    simulator = start_simulator(messages_per_day=300)
    window = days_window(simulator, *ordinary_days(simulator, 1))
    settings = settings_for(simulator, api_key=RECOGNISABLE_KEY)
    assert RECOGNISABLE_KEY not in repr(settings)
    error, message = fail_once(simulator, settings, window, ApiAuthError, caplog)
    assert "401" in message and "API key" in message
    assert "invalid or missing API key" in message  # the server's message
    assert simulator.requests[0].status == 401


def test_403_wrong_provider_fails_at_once_and_names_the_provider(start_simulator, caplog):
    simulator = start_simulator(messages_per_day=300)
    window = days_window(simulator, *ordinary_days(simulator, 1))
    settings = settings_for(simulator, provider_id="someone-elses-provider", api_key=TEST_KEY)
    _, message = fail_once(simulator, settings, window, ApiAuthError, caplog)
    assert "403" in message and "someone-elses-provider" in message
    assert "provider not allowed for this key" in message
    assert simulator.requests[0].status == 403


def test_404_wrong_path_fails_at_once_and_names_the_url(start_simulator, caplog):
    simulator = start_simulator(messages_per_day=300)
    window = days_window(simulator, *ordinary_days(simulator, 1))
    settings = settings_for(simulator, provider_path="/api/v2/redacted/provider", api_key=RECOGNISABLE_KEY)
    _, message = fail_once(simulator, settings, window, ApiNotFoundError, caplog)
    assert f"{simulator.base_url}/api/v2/redacted/provider" in message
    assert "no such endpoint" in message
    assert simulator.requests[0].status == 404


def test_another_permanent_status_is_not_retried(start_simulator, caplog):
    # The provider path pointed at the customer-session endpoint: the server answers 405.
    simulator = start_simulator(messages_per_day=300)
    window = days_window(simulator, *ordinary_days(simulator, 1))
    settings = settings_for(simulator, provider_path=CUSTOMER_SESSION_PATH)
    _, message = fail_once(simulator, settings, window, ApiStatusError, caplog)
    assert "405" in message and "use GET" in message


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html><body><h1>Maintenance</h1></body></html>", "not valid JSON"),
        (b'[{"text": "cut off in the midd', "not valid JSON"),
        (b"", "not valid JSON"),
        (b'{"error": "an object, not a list"}', "JSON dict, not an array"),
        (b'"just a string"', "JSON str, not an array"),
        (b"[" * 100_000, "not valid JSON"),
        (b"[" * 10_000 + b"]" * 10_000, "not valid JSON (The JSON document was too deep"),
    ],
    ids=["html", "truncated", "empty", "object", "string", "unclosed-100k", "nested-10k"],
)
def test_a_200_body_that_is_not_a_json_array_is_a_response_error(start_simulator, caplog, body, problem):
    simulator = start_simulator(messages_per_day=300)
    window = days_window(simulator, *ordinary_days(simulator, 1))
    simulator.script([ScriptedResponse(200, body)])
    _, message = fail_once(simulator, settings_for(simulator), window, ApiResponseError, caplog)
    assert problem in message
    assert "offset 0" in message
    assert "\n" not in message


@pytest.mark.parametrize("position", [0, 100, 110, 119, 300])
def test_a_non_json_body_echoing_the_key_never_shows_any_part_of_it(start_simulator, caplog, position):
    """The preview of a bad body must be scrubbed before it is cut: a key straddling the cut
    must not leak its first characters."""
    simulator = start_simulator(messages_per_day=300)
    window = days_window(simulator, *ordinary_days(simulator, 1))
    simulator.script([ScriptedResponse(200, b"y" * position + TEST_KEY.encode() + b" -- debug echo")])
    _, message = fail_once(simulator, settings_for(simulator), window, ApiResponseError, caplog)
    assert "not valid JSON" in message


def lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), text)


def encodings(key: str) -> dict[str, str]:
    """The ways a server may echo `key`: JSON-escaped (ensure_ascii or not, with or without
    `\\/`, every character as `\\uXXXX`) and URL-encoded (quote, quote_plus, either hex case)."""
    return {
        "raw": key,
        "json-ascii": json.dumps(key, ensure_ascii=True)[1:-1],
        "json-utf8": json.dumps(key, ensure_ascii=False)[1:-1],
        "json-escaped-slash": json.dumps(key)[1:-1].replace("/", "\\/"),
        "json-all-u-escapes": "".join(f"\\u{ord(c):04x}" for c in key),
        "json-u-escapes-upper": json.dumps(key)[1:-1].replace("/", "\\u002F").replace("+", "\\u002B"),
        "quote": quote(key),
        "quote-lower": lower_hex(quote(key)),
        "quote-plus": quote_plus(key),
        "quote-plus-lower": lower_hex(quote_plus(key)),
    }


# A bearer token of the token68 alphabet with every character that an encoding changes.
TRICKY_KEY = "sk_live/AbC+9x=~Zq/8+Kw.-_=="


def test_scrub_masks_every_encoding_of_the_key():
    for key in (TRICKY_KEY, 'k\u00e9y "with" a \\ space/+%~\n'):
        for name, form in encodings(key).items():
            assert scrub(f"before {form} after", key) == "before *** after", name
    assert scrub("nothing to hide", "") == "nothing to hide"


@pytest.mark.parametrize("form", sorted(encodings(TRICKY_KEY)))
@pytest.mark.parametrize("status", [400, 401, 500])
def test_a_key_echoed_in_any_encoding_never_reaches_the_error(start_simulator, caplog, status, form):
    """A key with `/` echoed as `\\/` (or `\\u002f`, `%2F`...) used to pass the raw-text mask."""
    caplog.set_level(logging.DEBUG)
    simulator = start_simulator(api_key=TRICKY_KEY, messages_per_day=300)
    window = days_window(simulator, *ordinary_days(simulator, 1))
    echo = encodings(TRICKY_KEY)[form]
    body = ('{"message": "token ' + echo + ' refused for this account"}').encode()
    simulator.script([ScriptedResponse(status, body)] * 2)
    settings = settings_for(simulator, api_key=TRICKY_KEY, max_retries=1)
    with DigitalEngagementClient(settings, sleep=lambda _: None) as client:
        with pytest.raises(ApiError) as info:
            list(client.provider_pages(window))
    message = str(info.value)
    assert f"HTTP {status}" in message
    assert "server said: token *** refused for this account" in message, message
    for text in (message, caplog.text):
        assert_secret_free(text, TRICKY_KEY)
        assert not [name for name, form in encodings(TRICKY_KEY).items() if form in text]


def test_retries_exhausted_raise_a_clear_error(start_simulator, caplog):
    caplog.set_level(logging.DEBUG)
    simulator = start_simulator(messages_per_day=300)
    window = days_window(simulator, *ordinary_days(simulator, 1))
    html = b"<html><head><title>503 Service Unavailable</title></head><body>down</body></html>"
    simulator.script([ScriptedResponse(503, html, {"Content-Type": "text/html"})] * 6)
    sleeps: list[float] = []
    settings = settings_for(simulator, max_retries=3)
    with DigitalEngagementClient(settings, sleep=sleeps.append) as client:
        with pytest.raises(ApiRetriesExhausted) as info:
            list(client.provider_pages(window))
    message = str(info.value)
    assert len(simulator.requests) == 4  # the first try and 3 retries
    assert client.stats.retries == 3
    assert "gave up after 4 attempts" in message
    assert "HTTP 503" in message
    assert str(window) in message and "POST" in message and PROVIDER_PATH in message
    assert_secret_free(message)
    assert_secret_free(caplog.text)
    # exponential backoff between the tries
    backoffs = [s for s in sleeps if s >= 0.004]
    assert len(backoffs) == 3


def test_a_retry_after_beyond_the_time_budget_gives_up_without_waiting(start_simulator):
    simulator = start_simulator(messages_per_day=300)
    window = days_window(simulator, *ordinary_days(simulator, 1))
    simulator.script([ScriptedResponse(429, b'{"error": "slow down"}', {"Retry-After": "1000"})])
    sleeps: list[float] = []
    settings = settings_for(simulator, retry_max_seconds=60)
    with DigitalEngagementClient(settings, sleep=sleeps.append) as client:
        with pytest.raises(ApiRetriesExhausted, match="Retry-After 1000s") as info:
            list(client.provider_pages(window))
    assert "HTTP 429" in str(info.value)
    assert len(simulator.requests) == 1
    assert not any(s >= 60 for s in sleeps)


def test_connection_refused_is_retried_then_exhausted(start_simulator):
    simulator = start_simulator(messages_per_day=300)
    window = days_window(simulator, *ordinary_days(simulator, 1))
    settings = settings_for(simulator, max_retries=2)
    simulator.stop()  # nothing listens at the base URL any more
    sleeps: list[float] = []
    with DigitalEngagementClient(settings, sleep=sleeps.append) as client:
        with pytest.raises(ApiRetriesExhausted, match="ConnectionError") as info:
            list(client.provider_pages(window))
    assert client.stats.requests == 3
    assert client.stats.retries == 2
    assert_secret_free(str(info.value))


def test_a_body_cut_short_is_retried_and_nothing_is_lost(start_simulator, caplog):
    simulator = start_simulator(messages_per_day=300, max_page_size=500)
    window = days_window(simulator, *ordinary_days(simulator, 1))
    expected = expected_payloads(simulator, window)
    half_page = b"[" + b",".join(expected[:40])[:5000]
    simulator.script([ScriptedResponse(200, half_page, {"Content-Length": str(len(half_page) * 3)})])
    with DigitalEngagementClient(settings_for(simulator), sleep=lambda _: None) as client:
        fetched, _ = records_of(client.provider_pages(window))
    assert fetched == expected
    assert client.stats.retries == 1
    assert "IncompleteRead" in caplog.text or "Connection broken" in caplog.text
    assert_secret_free(caplog.text)


def test_each_retry_is_logged_at_warning_with_status_window_and_attempt(start_simulator, caplog):
    caplog.set_level(logging.DEBUG)
    simulator = start_simulator(messages_per_day=300, max_page_size=500)
    window = days_window(simulator, *ordinary_days(simulator, 1))
    simulator.script(
        [
            ScriptedResponse(503, b"<html><body>Service Unavailable</body></html>", {"Content-Type": "text/html"}),
            ScriptedResponse(429, b'{"error": "rate limited"}'),
            ScriptedResponse(500, b"upstream error", {"Content-Type": "text/plain"}),
        ]
    )
    with DigitalEngagementClient(settings_for(simulator)) as client:
        fetched, _ = records_of(client.provider_pages(window))
    assert fetched == expected_payloads(simulator, window)
    assert client.stats.retries == 3

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("de_pipeline")]
    assert len(warnings) == 3
    for record, status, attempt in zip(warnings, (503, 429, 500), (1, 2, 3)):
        text = record.getMessage()
        assert f"HTTP {status}" in text
        assert str(window) in text
        assert f"retry {attempt} of {ApiSettings.__dataclass_fields__['max_retries'].default}" in text
        assert "offset 0" in text
    assert_secret_free(caplog.text)


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_retry_after_is_honoured(start_simulator, form):
    simulator = start_simulator(messages_per_day=300, max_page_size=500)
    window = days_window(simulator, *ordinary_days(simulator, 1))
    value = "3" if form == "seconds" else formatdate(time.time() + 5, usegmt=True)
    simulator.script([ScriptedResponse(429, b'{"error": "slow down"}', {"Retry-After": value})])
    clock = FakeClock()  # the wait is the shared limiter's pause: every worker waits
    limiter = RateLimiter(1000, clock=clock, sleep=clock.sleep)
    with DigitalEngagementClient(settings_for(simulator), sleep=clock.sleep, limiter=limiter) as client:
        fetched, _ = records_of(client.provider_pages(window))
    assert fetched == expected_payloads(simulator, window)
    assert client.stats.retries == 1
    assert client.stats.limiter_wait_seconds >= 3
    waits = [s for s in clock.sleeps if s >= 1]
    assert len(waits) == 1
    if form == "seconds":
        assert waits[0] == 3
    else:
        assert 3 <= waits[0] <= 5.5
    # the retry came after the wait, at the same offset
    assert [r.status for r in simulator.requests][:2] == [429, 200]
    assert simulator.requests[1].offset == 0


# ---- bounds on what a hostile server can make the client do ----------------------------------


def test_paging_stops_at_the_pages_per_window_cap(start_simulator, monkeypatch):
    simulator = start_simulator(messages_per_day=800, max_page_size=PAGE_CAP)
    window = days_window(simulator, *ordinary_days(simulator, 1))
    full_pages = -(-len(expected_payloads(simulator, window)) // PAGE_CAP)
    assert full_pages > 4
    point_at(monkeypatch, simulator)
    monkeypatch.setenv("DE_MAX_PAGES_PER_WINDOW", str(full_pages))  # exactly enough
    with DigitalEngagementClient(ApiSettings.from_env()) as client:
        assert len(list(client.provider_pages(window))) == full_pages

    monkeypatch.setenv("DE_MAX_PAGES_PER_WINDOW", "3")
    seen = len(simulator.requests)
    pages = []
    with DigitalEngagementClient(ApiSettings.from_env()) as client:
        with pytest.raises(ApiResponseError) as info:
            pages.extend(client.provider_pages(window))
    assert len(pages) == 3
    assert len(simulator.requests) - seen == 4  # the fourth page was received, not kept
    message = str(info.value)
    assert "more than 3 pages" in message and "DE_MAX_PAGES_PER_WINDOW" in message
    assert str(window) in message and "\n" not in message


def gzip_bomb(decoded_bytes: int) -> bytes:
    """A gzip body that decodes to a valid, empty JSON array of about `decoded_bytes` bytes."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: with a gzip header
    blank = b" " * (1 << 20)
    parts = [packer.compress(b"[")]
    parts += [packer.compress(blank) for _ in range((decoded_bytes - 2) >> 20)]
    return b"".join([*parts, packer.compress(b"]"), packer.flush()])


@pytest.mark.parametrize(
    ("status", "error"), [(200, ApiResponseError), (400, ApiBadRequestError)], ids=["page", "error-answer"]
)
def test_a_gzip_bomb_is_not_decoded_past_the_cap(start_simulator, monkeypatch, caplog, status, error):
    """A 407 KB gzip body used to grow the process by 800 MB."""
    simulator = start_simulator(messages_per_day=300)
    window = days_window(simulator, *ordinary_days(simulator, 1))
    bomb = gzip_bomb(64 << 20)
    assert len(bomb) < 100_000
    simulator.script([ScriptedResponse(status, bomb, {"Content-Encoding": "gzip"})])
    point_at(monkeypatch, simulator)
    monkeypatch.setenv("DE_MAX_PAGE_BYTES", str(1 << 20))
    tracemalloc.start()
    try:
        _, message = fail_once(simulator, ApiSettings.from_env(), window, error, caplog)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if status == 200:
        assert f"over {1 << 20} bytes once decoded (DE_MAX_PAGE_BYTES)" in message
    assert peak < 16 << 20, f"{peak >> 20} MiB were allocated for a 1 MiB cap"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("drip_headers", [False, True], ids=["body", "headers-and-body"])
def test_a_server_dripping_its_answer_is_cut_at_the_request_deadline(
    start_simulator, monkeypatch, caplog, drip_headers
):
    """One byte every 0.1 s never trips the per-read timeout: such a request was still being
    read after 25 s. Each try is now cut after DE_REQUEST_DEADLINE_SECONDS and retried."""
    simulator = start_simulator(messages_per_day=300)
    window = days_window(simulator, *ordinary_days(simulator, 1))
    drip = ScriptedResponse(200, b"[" + b" " * 200 + b"]", drip_seconds=0.1, drip_headers=drip_headers)
    simulator.script([drip] * 3)  # 20 s or more each
    point_at(monkeypatch, simulator)
    monkeypatch.setenv("DE_REQUEST_DEADLINE_SECONDS", "1")
    monkeypatch.setenv("DE_MAX_RETRIES", "2")
    started = time.monotonic()
    with DigitalEngagementClient(ApiSettings.from_env()) as client:
        with pytest.raises(ApiRetriesExhausted) as info:
            list(client.provider_pages(window))
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert "gave up after 3 attempts" in message
    assert "last failure: no complete answer within 1s (DE_REQUEST_DEADLINE_SECONDS)" in message
    assert client.stats.retries == 2 and len(simulator.requests) == 3
    assert elapsed < 15, f"{elapsed:.1f}s for three tries of 1 s"
    assert_secret_free(message)
    assert_secret_free(caplog.text)


# ---- redirects ---------------------------------------------------------------------------------


def test_a_redirect_to_another_origin_is_refused_naming_both_urls(start_simulator, caplog):
    """requests followed it, without the key; the other host's `[]` emptied the day."""
    simulator = start_simulator(messages_per_day=300)
    other = start_simulator(messages_per_day=300, api_key="other-origin-key")  # another port
    window = days_window(simulator, *ordinary_days(simulator, 1))
    target = f"{other.base_url}{PROVIDER_PATH}?token={TEST_KEY}"
    simulator.script([ScriptedResponse(307, b"", {"Location": target})])
    error, message = fail_once(simulator, settings_for(simulator), window, ApiRedirectError, caplog)
    assert f"{simulator.base_url}{PROVIDER_PATH} redirects (HTTP 307) to" in message
    assert f"{other.base_url}{PROVIDER_PATH}?token=***" in message
    assert "DE_API_BASE_URL" in message
    assert other.requests == []


def test_a_redirect_from_https_to_http_is_refused(monkeypatch):
    """The simulator speaks no TLS, so the https answer is made up at the adapter."""
    sent: list[str] = []

    def redirect_to_http(adapter, request, **kwargs):
        sent.append(request.url)
        response = requests.Response()
        response.status_code = 308
        response.headers["Location"] = "http://api.example.com" + PROVIDER_PATH
        response.url = request.url
        response.request = request
        response.raw = io.BytesIO(b"")
        return response

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", redirect_to_http)
    settings = ApiSettings(base_url="https://api.example.com", api_key=TEST_KEY, provider_id=TEST_PROVIDER)
    with DigitalEngagementClient(settings) as client:
        with pytest.raises(ApiRedirectError) as info:
            list(client.provider_pages(Window(1_700_000_000_000, 1_700_000_100_000)))
    assert sent == ["https://api.example.com" + PROVIDER_PATH]
    message = str(info.value)
    assert f"https://api.example.com{PROVIDER_PATH} redirects (HTTP 308) to http://api.example.com" in message
    assert_secret_free(message)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_same_origin_redirect_is_followed_with_the_same_method_and_body(start_simulator, status):
    simulator = start_simulator(messages_per_day=300, max_page_size=500)
    window = days_window(simulator, *ordinary_days(simulator, 1))
    moved = f"{PROVIDER_PATH}?moved=1"  # relative, on the same origin
    simulator.script([ScriptedResponse(status, b"", {"Location": moved})])
    with DigitalEngagementClient(settings_for(simulator)) as client:
        fetched, _ = records_of(client.provider_pages(window))
    assert fetched == expected_payloads(simulator, window)
    first, redirected = simulator.requests[:2]
    assert (first.status, redirected.status) == (status, 200)
    assert redirected.method == "POST"  # not turned into a GET
    assert (redirected.start_ms, redirected.end_ms, redirected.offset) == (window.start_ms, window.end_ms, 0)
    assert client.stats.requests == len(simulator.requests)


def test_a_redirect_loop_stops_after_a_few_hops(start_simulator, caplog):
    simulator = start_simulator(messages_per_day=300)
    window = days_window(simulator, *ordinary_days(simulator, 1))
    simulator.script([ScriptedResponse(307, b"", {"Location": PROVIDER_PATH})] * 50)
    with DigitalEngagementClient(settings_for(simulator)) as client:
        with pytest.raises(ApiRedirectError, match=r"more than 5 redirects; the last to http://"):
            list(client.provider_pages(window))
    assert len(simulator.requests) == 6


# ---- the customer-session endpoint ---------------------------------------------------------


@pytest.mark.parametrize("hostile", [False, True], ids=["normal", "hostile"])
def test_customer_session_pages_hold_the_journeys_messages(start_simulator, hostile):
    simulator = start_simulator(messages_per_day=600, max_page_size=4, hostile=hostile)
    first, last = ordinary_days(simulator, 2)
    window = days_window(simulator, first, last)
    served = [m for m in simulator.dataset.messages_between(window.start_ms, window.end_ms) if isinstance(m, dict)]
    sizes = Counter(m.get("customersessionid") for m in served if m.get("customersessionid"))
    # the longest journey, and one whose id is negative
    chosen = [sizes.most_common(1)[0][0], max((c for c in sizes if c.startswith("-")), key=sizes.get)]
    with DigitalEngagementClient(settings_for(simulator)) as client:
        for csid in chosen:
            before = len(simulator.requests)
            fetched, pages = records_of(client.customer_session_pages(csid, window))
            expected = [orjson.dumps(m) for m in served if m.get("customersessionid") == csid]
            assert len(expected) > 4  # more than one page
            if hostile:
                assert set(fetched) == set(expected)
                assert not Counter(expected) - Counter(fetched)
            else:
                assert fetched == expected
            records = simulator.requests[before:]
            assert {r.method for r in records} == {"GET"}
            assert {r.customersessionid for r in records} == {csid}
            assert all(r.path == CUSTOMER_SESSION_PATH for r in records)
            assert all(page.rows <= 4 for page in pages)
        for unknown in ("999999.0001", f"{first.toordinal()}.9999", "abc", ""):
            assert list(client.customer_session_pages(unknown, window)) == []
    if hostile:
        assert client.stats.retries > 0


# ---- invalid UTF-8 --------------------------------------------------------------------------


def test_invalid_utf8_in_a_body_is_repaired_with_a_warning(start_simulator, caplog):
    caplog.set_level(logging.DEBUG)
    simulator = start_simulator(messages_per_day=300, max_page_size=50)
    window = days_window(simulator, *ordinary_days(simulator, 1))
    ts = window.start_ms + 12 * 3600 * 1000 + 1
    bad = b'{"text":"caf\xe9 \xff\xfe ok","ts":' + str(ts).encode() + b',"sessionid":"1.1"}'
    simulator.dataset.inject([(ts, bad)])  # before any request: the server caches sequences
    expected = expected_payloads(simulator, window)
    assert bad in expected

    with DigitalEngagementClient(settings_for(simulator)) as client:
        pages = list(client.provider_pages(window))
    repaired = [page for page in pages if page.repaired_utf8]
    assert len(repaired) == 1
    assert client.stats.repaired_pages == 1
    repaired[0].body.decode("utf-8")  # valid UTF-8 now
    messages = [m for page in pages for m in orjson.loads(page.body)]
    assert len(messages) == len(expected)
    odd = [m for m in messages if m.get("ts") == ts and m.get("sessionid") == "1.1"]
    assert len(odd) == 1
    assert odd[0]["text"].startswith("caf\ufffd") and odd[0]["text"].endswith(" ok")
    # every other record arrives untouched
    others = [orjson.dumps(m) for m in messages if m is not odd[0]]
    assert others == [p for p in expected if p != bad]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "not valid UTF-8" in warnings[0] and str(window) in warnings[0]


def test_a_number_beyond_64_bits_does_not_refuse_its_page(start_simulator):
    # JSON allows them; simdjson refused the whole page, so one odd record failed the run
    simulator = start_simulator(messages_per_day=300, max_page_size=50)
    window = days_window(simulator, *ordinary_days(simulator, 1))
    ts = window.start_ms + 12 * 3600 * 1000 + 1
    odd = [b'{"ts":' + str(ts).encode() + b',"sentiment":1e400}', b'{"ts":18446744073709551616,"score":-1e400}']
    simulator.dataset.inject([(ts, odd[0]), (ts + 1, odd[1])])  # before any request
    expected = expected_payloads(simulator, window)

    with DigitalEngagementClient(settings_for(simulator)) as client:
        pages = list(client.provider_pages(window))

    assert sum(page.rows for page in pages) == len(expected) == client.stats.rows
    assert all(any(record in page.body for page in pages) for record in odd)
    check_offsets_follow_rows(simulator, window)


def test_a_page_reads_the_ts_of_a_few_records_as_the_parser_does(start_simulator):
    # the first, middle and last record: enough to tell a window read in another unit
    simulator = start_simulator(messages_per_day=300)
    window = days_window(simulator, *ordinary_days(simulator, 1))
    ts = window.start_ms + 1
    forms = [{"ts": str(ts)}, {"ts": "soon"}, {"ts": ts + 0.5}, {"ts": True}, {"ts": float(ts)}]
    simulator.script([ScriptedResponse(200, body=orjson.dumps(forms)), ScriptedResponse(200, body=b"[]")])

    with DigitalEngagementClient(settings_for(simulator)) as client:
        (page,) = list(client.provider_pages(window))

    assert page.ts_sampled == (ts, None, ts)  # records 0, 2 and 4: a fraction is no ts
    assert all(type(value) is int for value in (page.ts_sampled[0], page.ts_sampled[2]))


def test_api_error_is_the_base_of_every_typed_error():
    for error_type in (
        ApiAuthError,
        ApiBadRequestError,
        ApiEpochUnitError,
        ApiNotFoundError,
        ApiResponseError,
        ApiRetriesExhausted,
        ApiStatusError,
    ):
        assert issubclass(error_type, ApiError)


# ---- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity", "1e999"])
def test_a_number_setting_must_be_finite(value):
    """float() accepts these; a timeout of inf was accepted, then crashed with OverflowError."""
    with pytest.raises(SettingsError, match=rf"^DE_REQUEST_TIMEOUT={value} must be a finite number$"):
        Env({"DE_REQUEST_TIMEOUT": value}).number("DE_REQUEST_TIMEOUT", 60.0, minimum=0.1, maximum=3600)
    environ = {"DE_API_BASE_URL": "https://api.example.com", "DE_API_KEY": TEST_KEY,
               "DE_PROVIDER_ID": TEST_PROVIDER, "DE_REQUEST_TIMEOUT": value}  # fmt: skip
    with pytest.raises(SettingsError, match="DE_REQUEST_TIMEOUT.*finite"):
        ApiSettings.from_env(environ)
