"""The Dagster catalog: row counts and table names per materialisation, freshness of
yesterday by DE_FRESH_BY, owners and tags, and failure alerts to a webhook."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import orjson
import pytest
from dagster import (
    DagsterInstance,
    MarkdownMetadataValue,
    TableMetadataValue,
    build_run_status_sensor_context,
)
from dagster._core.definitions.freshness_evaluator import CronFreshnessPolicyEvaluator
from dagster._core.loader import LoadingContextForTest

from de_pipeline.alerts import AlertSettings, failure_text
from de_pipeline.defs.build import pipeline
from de_pipeline.defs.catalog import CatalogSettings
from de_pipeline.defs.definitions import defs
from de_pipeline.defs.resources import DigitalEngagementApi
from de_pipeline.defs.runner import run_instance, run_range
from de_pipeline.env import SettingsError
from de_pipeline.orchestration.instance import open_instance
from de_pipeline.warehouse.tables import DAILY_TABLES
from de_pipeline_tests.conftest import TEST_KEY, point_at
from de_pipeline_tests.helpers import busy_day, query


def expected_partition() -> date:
    """Yesterday, as of the last DE_FRESH_BY: the day that should be loaded by now."""
    calendar = pipeline().settings.calendar
    now = datetime.now(ZoneInfo(calendar.timezone))
    tick = now.replace(hour=calendar.fresh_by.hour, minute=calendar.fresh_by.minute, second=0, microsecond=0)
    if tick > now:
        tick -= timedelta(days=1)
    return tick.date() - timedelta(days=1)


def freshness(instance: DagsterInstance) -> dict[str, str]:
    """Every table's freshness now, as the daemon judges it from its policy: {asset: state}."""
    graph = defs().resolve_asset_graph()
    tables = [key for key in graph.get_all_asset_keys() if graph.get(key).freshness_policy is not None]

    async def evaluate() -> list[str]:
        context = LoadingContextForTest(instance)  # its loaders belong to this event loop
        evaluator = CronFreshnessPolicyEvaluator()
        return [(await evaluator.evaluate_freshness(context, graph.get(key))).value for key in tables]

    return dict(zip((key.to_user_string() for key in tables), asyncio.run(evaluate())))


def test_each_materialisation_reports_row_counts_and_its_table(start_simulator, monkeypatch):
    simulator = start_simulator(messages_per_day=300)
    point_at(monkeypatch, simulator)
    day = expected_partition()
    (result,) = run_range(day, day)
    for asset in ("messages", "sentiment_trends", "agent_performance"):
        (materialisation,) = result.asset_materializations_for_node(asset)
        metadata = materialisation.metadata
        assert metadata["dagster/table_name"].value == f"warehouse.main.{asset}"
        assert metadata["dagster/row_count"].value == query(f"SELECT count(*) AS n FROM {asset}").n[0]


# What a hostile vendor could put in any text field; "!" sorts it before the simulator's own
# values, so that it is in the first rows every preview shows.
HOSTILE = "![x](http://evil.example/a.png) [click](http://evil.example) <img src=x>"
HOSTILE_AGENT = "!Eve | Mallory <b>x</b> [click](http://evil.example)"
# Markdown that a renderer would turn into an image, a link or HTML: an unescaped `](` or tag
LIVE_MARKDOWN = re.compile(r"(?<!\\)\]\(|(?<!\\)<[a-zA-Z/!]")


def _hostile_journey(simulator, day) -> list[tuple[int, bytes]]:
    """A bot segment handed to an agent, every text field of it the vendor's choice."""
    start = simulator.dataset.day_bounds_ms(day)[0] + 12 * 3_600_000
    common = {"customersessionid": HOSTILE, "sessionchannel": HOSTILE, "lang": HOSTILE, "sentiment": -0.5}
    records = [
        common | {"ts": start, "sessionid": "9100.1", "sendertype": "customer", "chattype": "bot",
                  "text": HOSTILE, "topic": HOSTILE, "score": 0.5, "sendername": HOSTILE_AGENT},
        common | {"ts": start + 1000, "sessionid": "9100.2", "sendertype": "agent", "chattype": "agent",
                  "text": HOSTILE, "sendername": HOSTILE_AGENT, "workflow": HOSTILE},
        common | {"ts": start + 2000, "sessionid": "9100.2", "sendertype": "customer", "chattype": "agent",
                  "text": HOSTILE, "topic": HOSTILE, "score": 0.5},
    ]  # fmt: skip
    return [(record["ts"], orjson.dumps(record)) for record in records]


def _ui_texts(result) -> list[tuple[str, object]]:
    """Every metadata value and description that the UI shows of a run's events."""
    texts: list[tuple[str, object]] = []
    for event in result.get_asset_materialization_events():
        materialisation = event.step_materialization_data.materialization
        texts.append((f"{materialisation.asset_key.to_user_string()} description", materialisation.description))
        texts += [(f"{materialisation.asset_key.to_user_string()} {k}", v) for k, v in materialisation.metadata.items()]
    for evaluation in result.get_asset_check_evaluations():
        texts.append((f"{evaluation.check_name} description", evaluation.description))
        texts += [(f"{evaluation.check_name} {k}", v) for k, v in evaluation.metadata.items()]
    return texts


def test_vendor_text_reaches_the_ui_as_data_never_as_markdown(start_simulator, monkeypatch):
    """The previews once were Markdown: a served text became a remote image and a link in the
    UI. Vendor strings are table cells now, kept as sent, and nothing vendor-made is Markdown."""
    simulator = start_simulator(messages_per_day=100)
    point_at(monkeypatch, simulator)
    day = busy_day(7)
    simulator.dataset.inject(_hostile_journey(simulator, day))  # before any request
    (result,) = run_range(day, day)
    job = defs().resolve_job_def("refresh_journey")
    config = {"customersessionid": HOSTILE, "start": str(day), "end": str(day)}
    with run_instance() as instance:
        refresh = job.execute_in_process(
            run_config={"ops": {"refresh_journey_rows": {"config": config}}}, instance=instance
        )

    texts = _ui_texts(result) + _ui_texts(refresh)
    for label, value in texts:
        shown = value.value if isinstance(value, MarkdownMetadataValue) else value if isinstance(value, str) else ""
        if label.endswith("description") or isinstance(value, MarkdownMetadataValue):
            assert not LIVE_MARKDOWN.search(shown or ""), (label, shown)
    previews = {label: value for label, value in texts if label.endswith(" preview")}
    assert len(previews) == len(DAILY_TABLES)
    assert all(isinstance(preview, TableMetadataValue) for preview in previews.values())
    cells = {cell for preview in previews.values() for record in preview.records for cell in record.data.values()}
    assert {HOSTILE, HOSTILE_AGENT} <= cells  # kept exactly as sent, as plain data


def test_one_freshness_story_a_backfill_of_yesterday_is_fresh(start_simulator, monkeypatch, dagster_home):
    """Every table carries the freshness policy, and no freshness check stands beside it
    (they disagreed on one screen). Unknown before the first run; passing right after a
    backfill that loaded yesterday."""
    point_at(monkeypatch, start_simulator(messages_per_day=100))
    assert not [key for key in defs().resolve_asset_graph().asset_check_keys if "freshness" in key.name]
    with open_instance() as instance:
        before = freshness(instance)
        assert set(before) == {"messages", *(t.name for t in DAILY_TABLES)}
        assert set(before.values()) == {"UNKNOWN"}, before
        wanted = expected_partition()
        run_range(wanted - timedelta(days=1), wanted)
        after = freshness(instance)
        assert after.keys() == before.keys() and set(after.values()) == {"PASS"}, after


def test_owners_and_tags_are_set_by_the_team():
    settings = CatalogSettings.from_env({"DE_ASSET_OWNERS": "team:contact-centre, ana@example.com",
                                         "DE_ASSET_TAGS": "domain=support,tier=gold"})  # fmt: skip
    assert settings.owners == ("team:contact-centre", "ana@example.com")
    assert settings.tags == {"domain": "support", "tier": "gold"}
    with pytest.raises(SettingsError, match="DE_ASSET_OWNERS"):
        CatalogSettings.from_env({"DE_ASSET_OWNERS": "not an owner"})
    with pytest.raises(SettingsError, match="DE_ASSET_TAGS"):
        CatalogSettings.from_env({"DE_ASSET_TAGS": "no-equals-sign"})


def test_fresh_by_is_a_time_of_day():
    from de_pipeline.defs.partitions import CalendarSettings

    assert CalendarSettings.from_env({"DE_FRESH_BY": "07:30"}).fresh_by_cron == "30 7 * * *"
    with pytest.raises(SettingsError, match="DE_FRESH_BY"):
        CalendarSettings.from_env({"DE_FRESH_BY": "25:00"})


def test_every_asset_has_a_description_and_a_group():
    for asset in defs().assets:
        for key in asset.keys:
            assert asset.descriptions_by_key.get(key), key
            assert asset.group_names_by_key[key] == "digital_engagement", key


class _Recorder(BaseHTTPRequestHandler):
    posts: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - the base class's name
        self.posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook():
    _Recorder.posts = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Recorder.posts
    server.shutdown()
    server.server_close()


def test_a_failed_run_posts_one_short_alert_without_the_key(start_simulator, monkeypatch, webhook):
    from de_pipeline.defs.sensors import alert_sensor

    url, posts = webhook
    simulator = start_simulator(messages_per_day=50)
    point_at(monkeypatch, simulator)
    monkeypatch.setenv("DE_API_KEY", TEST_KEY + "-wrong")  # refused: the run fails
    day = expected_partition()
    with DagsterInstance.ephemeral() as instance:
        result = (
            defs()
            .resolve_job_def("all_assets")
            .execute_in_process(instance=instance, partition_key=day.isoformat(), raise_on_error=False)
        )
        assert not result.success
        context = build_run_status_sensor_context(
            sensor_name="alert_on_run_failure",
            dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id),
            dagster_event=result.get_run_failure_event(),
            resources={"api": DigitalEngagementApi()},
        ).for_run_failure()
        alert_sensor(AlertSettings(url))(context)
    (post,) = posts
    text = post["text"]
    assert "raw_messages" in text and day.isoformat() in text and "HTTP 401" in text
    assert TEST_KEY not in text and "\n" not in text and len(text) < 600


def test_an_alert_never_carries_the_key_even_when_the_error_does():
    text = failure_text("0123456789", "all_assets", ["messages"], "2026-01-01", f"boom {TEST_KEY}\nline two", TEST_KEY)
    assert TEST_KEY not in text and "line two" not in text and "boom ***" in text


def test_an_alert_shows_the_vendors_words_as_typed():
    error = f"HTTP 502: {HOSTILE} <!channel> `code` & more"
    text = failure_text("0123456789", "all_assets", ["raw_messages"], "2026-01-01", error)
    before, code, after = text.split("`")  # the error is one code span: no link, image or mention
    assert after == "" and "HTTP 502: ![x](http://evil.example/a.png)" in code
    assert "<" not in text and "&lt;img src=x&gt;" in code and "&lt;!channel&gt;" in code and "&amp; more" in code


def test_without_a_webhook_the_alert_sensor_is_off_and_says_so():
    sensor = defs().resolve_sensor_def("alert_on_run_failure")
    assert sensor.default_status.value == "STOPPED"
    assert "Off: DE_ALERT_WEBHOOK_URL is not set" in sensor.description
    with pytest.raises(SettingsError, match="DE_ALERT_WEBHOOK_URL"):
        AlertSettings.from_env({"DE_ALERT_WEBHOOK_URL": "not a url"})


def test_a_ui_runs_hidden_job_is_named_by_what_launched_it():
    """Dagster names the job of a UI materialisation `__ASSET_JOB`; alerts, the readers'
    copy's `_published` and the CLI's lines say what it was instead."""
    from dagster import DagsterRun

    from de_pipeline.orchestration.runs import job_label

    assert job_label(DagsterRun(job_name="__ASSET_JOB", tags={"dagster/backfill": "xyzabc"})) == "backfill xyzabc"
    assert job_label(DagsterRun(job_name="__ASSET_JOB_0")) == "materialised in the UI"
    assert job_label(DagsterRun(job_name="all_assets")) == "all_assets"
