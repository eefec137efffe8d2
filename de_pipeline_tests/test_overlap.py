"""`de-pipeline backfill` fetches the next chunk while the chunk before builds, and stores
exactly what a sequential backfill does; a failed fetch lets the build before it commit,
a failed build stops the backfill once the fetch beside it has ended."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest
from dagster import DagsterEventType, DagsterInstance

from de_pipeline.defs import assets
from de_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from de_pipeline.defs.runner import RunChunk, RunFailedError, run_range
from de_pipeline.env import parse_size
from de_pipeline.orchestration.pool_slots import PID_TAG
from de_pipeline.simulator import ScriptedResponse
from de_pipeline.warehouse.archive import ArchiveWriter, archive_file
from de_pipeline.warehouse.connection import writer
from de_pipeline.warehouse.settings import WarehouseSettings
from de_pipeline.warehouse.tables import TABLES
from de_pipeline_tests.conftest import point_at
from de_pipeline_tests.helpers import dump, one_at_a_time, overlap, query, recent_days, run_cli, served, unique_messages

FETCH = "raw_messages"


@dataclass(frozen=True)
class Run:
    """One run of the CLI's backfill, from the DAGSTER_HOME instance: its days and steps."""

    run_id: str
    first: str
    last: str
    tags: dict[str, str]
    steps: dict[str, tuple[float, float]]  # step key: (STEP_START, STEP_SUCCESS) timestamps

    @property
    def fetches(self) -> bool:
        return FETCH in self.steps

    @property
    def span(self) -> tuple[float, float]:
        """From its first step's start to its last step's success."""
        return min(start for start, _ in self.steps.values()), max(end for _, end in self.steps.values())


def backfill_runs(instance: DagsterInstance) -> list[Run]:
    """Every run of the instance, in chunk order, a chunk's fetch before its build."""
    runs = []
    for run in instance.get_runs():
        kinds = {DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}
        starts, ends = {}, {}
        for record in instance.get_records_for_run(run.run_id, of_type=kinds).records:
            entry = record.event_log_entry
            moments = starts if entry.dagster_event_type == DagsterEventType.STEP_START else ends
            moments[entry.step_key] = entry.timestamp
        steps = {key: (starts[key], ends[key]) for key in starts}
        runs.append(Run(run.run_id, run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG], dict(run.tags), steps))
    return sorted(runs, key=lambda r: (r.first, not r.fetches))


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


@pytest.mark.slow
@pytest.mark.dates
def test_the_next_chunk_is_fetched_while_the_one_before_builds(start_simulator, dagster_home, monkeypatch, tmp_path):
    # a distant server: a week's fetch pages each day on its own, 7 sequential pages of
    # 1 s: it takes over 7 s. The last chunk's one day is cut into parts, and takes ~2 s.
    simulator = start_simulator(messages_per_day=120, max_page_size=20, latency_ms=1000)
    point_at(monkeypatch, simulator)
    first, last = recent_days(15)  # three chunks: 7 + 7 + 1 days
    done = run_cli("backfill", "--start", str(first), "--end", str(last), env={"DE_PAGE_SIZE": "20"})
    assert done.returncode == 0, done.stderr[-3000:]

    with DagsterInstance.get() as instance:
        runs = backfill_runs(instance)
    chunks = [(first, first + timedelta(days=6)), (first + timedelta(days=7), last - timedelta(days=1)), (last, last)]
    assert [(r.first, r.last, r.fetches) for r in runs] == [
        (str(a), str(b), fetches) for a, b in chunks for fetches in (True, False)
    ]
    fetches, builds = runs[0::2], runs[1::2]
    for fetch, build in zip(fetches, builds):
        assert set(fetch.steps) == {FETCH}
        assert FETCH not in build.steps and "messages" in build.steps
        assert fetch.tags[PID_TAG] == build.tags[PID_TAG]  # tagged with the CLI's process
    assert ["dashboard" in build.steps for build in builds] == [False, False, True]  # the last chunk only

    # chunk N+1's fetch starts beside chunk N's build, not after it, and chunk N's build
    # ends before chunk N+2's fetch starts: fetching runs one chunk ahead, never more
    for built, fetched in zip(builds, fetches[1:]):
        assert fetched.steps[FETCH][0] < built.span[1], (fetched.first, fetched.steps, built.steps)
    for built, after_next in zip(builds, fetches[2:]):
        assert built.span[1] <= after_next.steps[FETCH][0], (after_next.first, after_next.steps, built.steps)
    # and the two really run at once: the second week's fetch outlasts the first week's
    # start of build (1-3.5 s of Dagster's run start, on a loaded machine); the last
    # day's fetch may not, so it is not asked to
    assert overlap(fetches[1].steps[FETCH], builds[0].span), (fetches[1].steps, builds[0].steps)
    # one fetch at a time, one build at a time
    one_at_a_time([(*fetch.steps[FETCH], fetch.run_id) for fetch in fetches])
    one_at_a_time([(*span, f"{build.run_id} {key}") for build in builds for key, span in build.steps.items()])
    assert f"run 2 of 3: fetching {chunks[1][0]} .. {chunks[1][1]}" in done.stderr
    assert "while run 1 builds" in done.stderr and "while run 2 fetches" in done.stderr

    # nothing lost or doubled: messages are what was served, and every table equals a
    # sequential build of the same archive
    stored = query("SELECT day, count(*) AS n, count(DISTINCT message_key) AS distinct_keys FROM messages GROUP BY day")
    assert sorted(stored.day.dt.date) == days(first, last)
    assert (stored.n == stored.distinct_keys).all()
    assert stored.n.sum() == len(unique_messages(served(simulator, first, last))) > 0
    overlapped = {table.name: dump(table.name) for table in TABLES}
    monkeypatch.setenv("DE_ARCHIVE_DIR", str(WarehouseSettings.from_env().archive_dir))
    monkeypatch.setenv("DE_DUCKDB_PATH", str(tmp_path / "sequential.duckdb"))
    run_range(first, last, job_name="rebuild_from_archive", log_level="ERROR")
    assert {table.name: dump(table.name) for table in TABLES} == overlapped


@pytest.mark.dates
def test_a_failed_fetch_lets_the_build_before_it_commit_then_stops(start_simulator, monkeypatch):
    simulator = start_simulator(messages_per_day=60)
    point_at(monkeypatch, simulator)
    first, last = recent_days(9)  # two chunks: 7 + 2 days

    def second_fetch_refused(chunk: RunChunk) -> None:
        if chunk.number == 2:  # chunk 1's build is under way; the API refuses chunk 2's fetch
            simulator.script([ScriptedResponse(401, b'{"error": "invalid or missing API key"}')])

    with pytest.raises(RunFailedError) as failed:
        run_range(first, last, log_level="ERROR", on_chunk=second_fetch_refused)

    second = first + timedelta(days=7)
    assert str(failed.value).startswith(f"run for {second} .. {last} failed: {FETCH}: ")
    stored = query("SELECT day, count(*) AS n FROM messages GROUP BY day ORDER BY day")
    assert list(stored.day.dt.date) == days(first, second - timedelta(days=1))  # chunk 1, committed
    assert stored.n.sum() == len(unique_messages(served(simulator, first, second - timedelta(days=1))))
    for table in ("sentiment_trends", "intent_confidence"):
        built = query(f"SELECT DISTINCT day FROM {table} ORDER BY day")
        assert list(built.day.dt.date) == days(first, second - timedelta(days=1)), table


@pytest.mark.dates
def test_a_failed_build_stops_the_backfill_after_the_fetch_beside_it(start_simulator, monkeypatch):
    simulator = start_simulator(messages_per_day=60)
    point_at(monkeypatch, simulator)
    first, last = recent_days(9)  # two chunks: 7 + 2 days
    second = first + timedelta(days=7)
    load = assets.load_messages

    def disk_full_in_the_first_week(connection, days, settings):
        if days[0].day == first:
            raise OSError("No space left on device")
        return load(connection, days, settings)

    monkeypatch.setattr(assets, "load_messages", disk_full_in_the_first_week)
    with pytest.raises(RunFailedError) as failed:
        run_range(first, last, log_level="ERROR")

    assert str(failed.value).startswith(f"run for {first} .. {second - timedelta(days=1)} failed: messages: ")
    assert "No space left on device" in str(failed.value)
    archive_dir = WarehouseSettings.from_env().archive_dir
    assert all(archive_file(archive_dir, day).exists() for day in days(first, last))  # both weeks fetched
    assert query("SELECT count(*) AS n FROM messages").n[0] == 0  # and neither built


def test_a_fetch_beside_a_build_keeps_to_one_memory_budget(monkeypatch):
    # each DuckDB used to take the whole DE_DUCKDB_MEMORY_LIMIT: a fetch beside a build held twice it
    monkeypatch.setenv("DE_DUCKDB_MEMORY_LIMIT", "200MB")
    settings = WarehouseSettings.from_env()

    def budget(connection: duckdb.DuckDBPyConnection) -> int:
        text = connection.execute("SELECT current_setting('memory_limit')").fetchone()[0]  # e.g. '95.3 MiB'
        size = parse_size(text.replace(" ", ""))
        assert size, text
        return size

    with ArchiveWriter(settings, datetime.now(UTC)) as archive, writer(settings) as build:
        fetching, building = budget(archive._connection), budget(build)
    assert fetching > 0 and building > 0
    assert fetching + building <= 200_000_000, (fetching, building)
    assert fetching + building >= 199_000_000, "the split leaves part of the budget unused"
