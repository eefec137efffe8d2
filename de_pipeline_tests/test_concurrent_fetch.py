"""Many requests in flight: the shared rate limiter, the simulator's latency and rate limit,
and a concurrent backfill that stores exactly what a sequential one does."""

from __future__ import annotations

import bisect
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import duckdb
import pytest
import requests

from de_pipeline.api import ApiSettings, DigitalEngagementClient, Window
from de_pipeline.api.limiter import JITTER_MARGIN, RateLimiter, shared_limiter
from de_pipeline.cli import main
from de_pipeline.defs.runner import run_range
from de_pipeline.env import SettingsError
from de_pipeline.simulator import ScriptedResponse, Simulator, simulator_config_from_env
from de_pipeline.warehouse.archive import archive_file
from de_pipeline.warehouse.settings import WarehouseSettings
from de_pipeline_tests.conftest import point_at
from de_pipeline_tests.helpers import dump, kill_when_staged, recent_days, served, start_cli, unique_messages
from de_pipeline_tests.test_api_client import FakeClock, settings_for

THREADS = 8


def grant_clock() -> tuple[Callable[[], float], threading.local]:
    """A monotonic clock that remembers, per thread, its last reading: right after `acquire`
    returns, that is the moment of the grant (the limiter's last reading under its lock)."""
    last = threading.local()

    def clock() -> float:
        last.value = time.monotonic()
        return last.value

    return clock, last


def most_in_a_window(moments: list[float], seconds: float = 1.0) -> int:
    """The most moments in any closed window of `seconds`."""
    moments = sorted(moments)
    return max(bisect.bisect_right(moments, m + seconds) - i for i, m in enumerate(moments))


def run_workers(work: Callable[[int], None], count: int = THREADS) -> None:
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(work, range(count)))


def test_the_limiter_keeps_the_rate_over_every_window_across_threads():
    clock, last = grant_clock()
    limiter = RateLimiter(50, clock=clock)
    grants: list[float] = []
    stop = time.monotonic() + 10.0  # 8 workers asking as fast as they can, for 10 s

    def worker(_: int) -> None:
        while time.monotonic() < stop:
            limiter.acquire()
            grants.append(last.value)  # list.append is atomic

    run_workers(worker)
    assert most_in_a_window(grants) <= 50
    assert most_in_a_window(grants, seconds=10.0) <= 500
    assert len(grants) >= 300  # it does grant, at about the rate (generous: a loaded machine)


def test_the_limiter_leaves_room_for_jitter_on_the_way_and_spends_the_rest():
    clock = FakeClock()
    limiter = RateLimiter(20, clock=clock, sleep=clock.sleep)
    grants = []
    for _ in range(100):
        limiter.acquire()
        grants.append(clock.now)
    # any 21 grants in a row span 1 s and the margin: a request may reach a vendor that
    # counts 20 in any second 20 ms or more later or sooner than another, and still pass
    spans = [later - earlier for earlier, later in zip(grants, grants[20:], strict=False)]
    assert min(spans) == pytest.approx(max(spans)) == pytest.approx(1.0 + JITTER_MARGIN)
    assert 0.02 <= JITTER_MARGIN <= 0.05  # room for jitter, and the rest of the rate is spent


def test_one_limiter_per_account_whatever_the_client():
    one = shared_limiter("https://api.example.com", "key-a", 20)
    assert shared_limiter("https://api.example.com", "key-a", 20) is one
    assert shared_limiter("https://api.example.com", "key-b", 20) is not one
    assert shared_limiter("https://other.example.com", "key-a", 20) is not one


def test_a_pause_holds_back_every_thread():
    clock, last = grant_clock()
    limiter = RateLimiter(200, clock=clock)
    grants: list[float] = []
    stop = time.monotonic() + 3.0

    def worker(_: int) -> None:
        while time.monotonic() < stop:
            limiter.acquire()
            grants.append(last.value)

    moments: list[float] = []

    def pause() -> None:
        moments.append(time.monotonic())
        limiter.pause(2.0)
        moments.append(time.monotonic())

    pauser = threading.Timer(0.3, pause)
    pauser.start()
    run_workers(worker)
    before, after = moments
    assert not [g for g in grants if after < g < before + 2.0]
    assert [g for g in grants if g < before] and [g for g in grants if g >= before + 2.0]


def day_windows(simulator: Simulator, count: int) -> list[Window]:
    first, _ = recent_days(count)
    bounds = [simulator.dataset.day_bounds_ms(first.fromordinal(first.toordinal() + n)) for n in range(count)]
    return [Window(start, end) for start, end in bounds]


def fetch_concurrently(simulator: Simulator, windows: list[Window], **settings: object) -> None:
    """Each window's pages by its own client, all at once."""

    def fetch(number: int) -> None:
        with DigitalEngagementClient(settings_for(simulator, **settings)) as client:
            for _ in client.provider_pages(windows[number]):
                pass

    run_workers(fetch, len(windows))


def test_the_caller_furthest_behind_goes_first():
    limiter = RateLimiter(2)  # a turn every 0.515 s: both are in line long before it
    limiter.acquire()
    order: list[str] = []

    def wait(name: str, progress: float) -> None:
        limiter.acquire(progress)
        order.append(name)

    ahead = threading.Thread(target=wait, args=("ahead", 0.9))
    behind = threading.Thread(target=wait, args=("behind", 0.2))
    ahead.start()  # it came first, and waits for the next turn
    time.sleep(0.02)
    behind.start()  # it came later, further behind: it is served first
    for thread in (ahead, behind):
        thread.join(timeout=5)
    assert order == ["behind", "ahead"]
    assert not limiter._waiting  # nobody is left in line


class RecordingLimiter(RateLimiter):
    """A limiter that records the progress each caller gave."""

    def __init__(self, rate: float) -> None:
        super().__init__(rate)
        self.progress: list[float] = []

    def acquire(self, progress: float = 0.0) -> float:
        self.progress.append(progress)
        return super().acquire(progress)


def test_a_client_tells_the_limiter_how_far_through_its_window_it_is(start_simulator):
    simulator = start_simulator(messages_per_day=900, max_page_size=100)
    [window] = day_windows(simulator, 1)
    limiter = RecordingLimiter(1000)
    with DigitalEngagementClient(settings_for(simulator, page_size=100), limiter=limiter) as client:
        pages = list(client.provider_pages(window))
    assert len(pages) > 3
    # before each request: how far the last page reached (its last message's ts)
    reached = [(json.loads(page.body)[-1]["ts"] - window.start_ms) / window.span_ms for page in pages]
    assert limiter.progress == pytest.approx([0.0, *reached])  # and the `[]` that ends the day
    assert limiter.progress == sorted(limiter.progress)


def test_a_retry_after_pauses_every_worker(start_simulator):
    simulator = start_simulator(messages_per_day=600, max_page_size=50)
    simulator.script([ScriptedResponse(429, b'{"error": "slow down"}', {"Retry-After": "2"})])
    fetch_concurrently(simulator, day_windows(simulator, THREADS), page_size=50)

    [refused] = [r for r in simulator.requests if r.status == 429]
    # requests already on their way when the 429 came arrive at once; then none for 2 s
    assert not [r for r in simulator.requests if refused.at + 0.5 < r.at < refused.at + 1.9]
    assert [r for r in simulator.requests if r.at >= refused.at + 1.9]


def test_the_settings_are_read_once_and_named_when_wrong():
    config = simulator_config_from_env({"DE_SIM_LATENCY_MS": "250", "DE_SIM_RATE_LIMIT": "20"})
    assert (config.latency_ms, config.rate_limit) == (250, 20)
    assert ApiSettings.shared_from_env({"DE_MAX_IN_FLIGHT": "3"}).max_in_flight == 3
    for name, value in (("DE_SIM_LATENCY_MS", "-1"), ("DE_SIM_RATE_LIMIT", "fast")):
        with pytest.raises(SettingsError, match=name):
            simulator_config_from_env({name: value})
    with pytest.raises(SettingsError, match="DE_MAX_IN_FLIGHT"):
        ApiSettings.shared_from_env({"DE_MAX_IN_FLIGHT": "0"})


def test_simulate_checks_its_flags_as_the_settings_they_stand_for(capsys):
    assert main(["simulate", "--port", "0", "--rate-limit", "-1"]) == 1
    assert "DE_SIM_RATE_LIMIT=-1 must be in [0, 10000]" in capsys.readouterr().err


def test_the_simulator_answers_late_and_concurrently(start_simulator):
    simulator = start_simulator(messages_per_day=100, latency_ms=400)
    windows = day_windows(simulator, THREADS)
    started = time.monotonic()
    fetch_concurrently(simulator, windows)
    elapsed = time.monotonic() - started
    # each day is two requests (a page, then []): 16 in all, 6.4 s one at a time
    assert len(simulator.requests) == 2 * THREADS
    assert 0.8 <= elapsed < 4.0


def test_the_simulator_refuses_requests_past_its_rate_limit(start_simulator):
    simulator = start_simulator(messages_per_day=100, rate_limit=10)
    window = day_windows(simulator, 1)[0]
    statuses = []
    with requests.Session() as session:
        for _ in range(25):
            answer = session.post(
                simulator.base_url + simulator.config.provider_path,
                json={"start": window.start_ms // 1000, "end": window.end_ms // 1000, "limit": 10},
                headers={
                    "Authorization": f"Bearer {simulator.config.api_key}",
                    "providerid": simulator.config.provider_id,
                },  # fmt: skip
            )
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                assert answer.headers["Retry-After"] == "1"
    assert statuses.count(429) == simulator.rate_limited >= 5
    assert statuses.count(200) >= 10


def test_a_client_limit_below_the_servers_meets_no_429(start_simulator):
    simulator = start_simulator(messages_per_day=150, max_page_size=20, rate_limit=10)
    fetch_concurrently(simulator, day_windows(simulator, 4), page_size=20, max_requests_per_second=8)
    assert simulator.rate_limited == 0
    assert len(simulator.requests) >= 20  # over two seconds at 8 a second


@pytest.mark.dates
def test_429s_past_one_percent_are_counted_and_the_user_told_to_lower_the_rate(start_simulator, monkeypatch, capsys):
    # the key allows 4 a second (another client shares it, say), the setting says 20: the
    # day's 8 parts start at once, and some of their first requests are refused
    simulator = start_simulator(messages_per_day=200, max_page_size=20, rate_limit=4)
    point_at(monkeypatch, simulator)
    monkeypatch.setenv("DE_MAX_REQUESTS_PER_SECOND", "20")
    monkeypatch.setenv("DE_PAGE_SIZE", "20")
    day, _ = recent_days(1)
    metadata = run_metadata(run_range(day, day, log_level="WARNING"))

    assert metadata["api_429s"] == simulator.rate_limited > 0.01 * metadata["api_requests"]
    assert metadata["api_requests"] == len(simulator.requests)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "refused with 429" in line]
    assert len(warnings) == 1, warnings
    assert f" {simulator.rate_limited} of {len(simulator.requests)} requests " in warnings[0]
    assert "below DE_MAX_REQUESTS_PER_SECOND=20 a second, lower the setting" in warnings[0]


def run_metadata(results: list) -> dict[str, object]:
    """raw_messages' metadata of a one-run range (every partition carries the run's)."""
    [result] = results
    first = result.asset_materializations_for_node("raw_messages")[0]
    return {name: value.value for name, value in first.metadata.items()}


@pytest.mark.dates
def test_a_concurrent_backfill_stores_what_a_sequential_one_does(start_simulator, monkeypatch, tmp_path):
    simulator = start_simulator(hostile=True, messages_per_day=700, max_page_size=150)
    point_at(monkeypatch, simulator)
    first, last = recent_days(7)  # one run: its days are fetched at once
    tables = ("messages", "rejected_messages")
    dumps, metadata, windows = {}, {}, {}
    for in_flight in ("1", "8"):
        monkeypatch.setenv("DE_MAX_IN_FLIGHT", in_flight)
        monkeypatch.setenv("DE_DUCKDB_PATH", str(tmp_path / f"in_flight_{in_flight}.duckdb"))
        seen = len(simulator.requests)
        metadata[in_flight] = run_metadata(run_range(first, last))
        dumps[in_flight] = {name: dump(name) for name in tables}
        windows[in_flight] = [r.start_ms for r in simulator.requests[seen:] if r.start_ms is not None]

    assert windows["1"] == sorted(windows["1"])  # one day after the other
    assert windows["8"] != sorted(windows["8"])  # the days' requests interleaved

    assert dumps["8"] == dumps["1"]
    assert len(dumps["8"]["messages"]) == len(unique_messages(served(simulator, first, last))) > 0
    assert dumps["8"]["rejected_messages"]  # the hostile server sends malformed records
    assert metadata["8"]["records_fetched"] == metadata["1"]["records_fetched"]
    for run in metadata.values():
        assert run["api_retries"] > 0  # the hostile server failed requests; they were retried
        assert run["requests_per_second"] > 0
        assert 0 <= run["limiter_wait_share"] <= 1


@pytest.mark.dates
def test_a_one_day_run_fetches_its_day_in_parts_and_stores_what_one_window_does(start_simulator, monkeypatch, tmp_path):
    simulator = start_simulator(hostile=True, messages_per_day=900, max_page_size=50)
    point_at(monkeypatch, simulator)
    day, _ = recent_days(1)  # a daily run: one day, 8 requests in flight all the same
    start_ms, end_ms = simulator.dataset.day_bounds_ms(day)
    messages, rejected, windows, pages = {}, {}, {}, {}
    for in_flight in ("1", "8"):
        monkeypatch.setenv("DE_MAX_IN_FLIGHT", in_flight)
        monkeypatch.setenv("DE_DUCKDB_PATH", str(tmp_path / f"in_flight_{in_flight}.duckdb"))
        seen = len(simulator.requests)
        run_range(day, day)
        messages[in_flight] = dump("messages")
        rejected[in_flight] = set(dump("rejected_messages"))
        windows[in_flight] = sorted({(r.start_ms, r.end_ms) for r in simulator.requests[seen:] if r.start_ms})
        pages[in_flight] = page_spans(archive_file(WarehouseSettings.from_env().archive_dir, day), start_ms, end_ms)

    assert windows["1"] == [(start_ms, end_ms)]
    parts = windows["8"]
    assert len(parts) == 8  # the day in 8 consecutive parts that cover it exactly
    assert [part[1] for part in parts[:-1]] == [part[0] for part in parts[1:]]
    assert (parts[0][0], parts[-1][1]) == (start_ms, end_ms)

    assert messages["8"] == messages["1"]
    assert len(messages["8"]) == len(unique_messages(served(simulator, day, day))) > 0
    assert rejected["8"] == rejected["1"] != set()  # the hostile server sends malformed records
    for spans in pages.values():  # the archive's pages are numbered in the day's order
        assert len(spans) > 1  # pages to put in order, on any day (a weekend serves fewer)
        assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:], strict=False))


def page_spans(path: os.PathLike, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """The first and last ts (inside the day) of each page of an archive file, by page number."""
    with duckdb.connect() as connection:
        return connection.execute(
            "SELECT min(ts), max(ts) FROM (SELECT page, TRY_CAST(raw::JSON ->> 'ts' AS BIGINT) AS ts "
            "FROM read_parquet($p)) WHERE ts >= $start AND ts < $end GROUP BY page ORDER BY page",
            {"p": str(path), "start": start_ms, "end": end_ms},
        ).fetchall()


def archived_fetches(path: os.PathLike) -> tuple[int, tuple[object, ...]]:
    """An archive file's records, and the fetch times they carry (one for a whole day)."""
    with duckdb.connect() as connection:
        rows = connection.execute("SELECT raw, fetched_at FROM read_parquet($p)", {"p": str(path)}).fetchall()
    return len(rows), tuple(sorted({fetched_at for _, fetched_at in rows}))


@pytest.mark.slow
@pytest.mark.dates
def test_a_kill_during_a_concurrent_fetch_leaves_every_day_whole(start_simulator, monkeypatch):
    simulator = start_simulator(messages_per_day=1500, max_page_size=50)
    point_at(monkeypatch, simulator)
    first, last = recent_days(4)
    run_range(first, last)
    archive_dir = WarehouseSettings.from_env().archive_dir
    days = [first.fromordinal(n) for n in range(first.toordinal(), last.toordinal() + 1)]
    before = {day: archived_fetches(archive_file(archive_dir, day)) for day in days}

    # four days at once, slowly (30 pages a day at 20 requests a second): kill while staging
    env = {"DE_MAX_REQUESTS_PER_SECOND": "20", "DE_MAX_IN_FLIGHT": "8"}
    process = start_cli("backfill", "--start", str(first), "--end", str(last), env=env)
    kill_when_staged(process, archive_dir, pages=20, timeout=120)

    for day in days:  # its old file, whole (the kill came long before every day was in)
        records, fetches = archived_fetches(archive_file(archive_dir, day))
        assert (records, fetches) == before[day]
        assert records == len(served(simulator, day, day)) and len(fetches) == 1


def test_each_part_of_a_day_is_said_in_one_line(start_simulator, monkeypatch, capsys):
    """At DEBUG, as the UI shows a run's log: a day cut into 8 parts says each part once (the
    client also said "window 1 of 1" for every part)."""
    point_at(monkeypatch, start_simulator(messages_per_day=200))
    day, _ = recent_days(1)
    run_range(day, day, log_level="DEBUG")
    said = [line for line in capsys.readouterr().err.splitlines() if " - raw_messages - " in line and "window" in line]
    assert len(said) == 8, "\n".join(said)
    assert sorted(line.split("window ", 1)[1][:6] for line in said) == [f"{n} of 8" for n in range(1, 9)], said
