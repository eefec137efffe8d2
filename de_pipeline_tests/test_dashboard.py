"""The dashboard: an asset after every daily table, a command, one offline HTML file whose
numbers are the warehouse's (checked against `de-pipeline sql`), drawn in a real browser."""

from __future__ import annotations

import base64
import json
import math
import re
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey

from de_pipeline.cli import main
from de_pipeline.dashboard.build import write_dashboard
from de_pipeline.dashboard.settings import DashboardSettings
from de_pipeline.dashboard.spec import Figure, scatter
from de_pipeline.defs.definitions import defs
from de_pipeline.defs.runner import run_range
from de_pipeline.warehouse.connection import writer
from de_pipeline.warehouse.settings import WarehouseSettings
from de_pipeline.warehouse.tables import DAILY_TABLES, TABLES
from de_pipeline_tests.browser import chromium_page
from de_pipeline_tests.conftest import point_at
from de_pipeline_tests.helpers import latest_outage_day, query, recent_days, served

REPO_ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO_ROOT / "screenshots" / "dashboard.png"  # git-ignored; copy to docs/images/ for the README
FIGURE = re.compile(r'<script type="application/json" class="figure" data-chart="(\w+)">(.*?)</script>', re.S)
DASHBOARD = AssetKey("dashboard")
DAILY_CHARTS = (  # the charts with a day on their x axis
    "sentiment_by_channel",
    "sentiment_by_sender",
    "handoffs_per_day",
    "top_topic_confidence",
    "redacted_entities",
    "data_health",
)


def figures(path: Path) -> dict[str, dict[str, Any]]:
    """The plotly figures embedded in the page, by chart name."""
    return {name: json.loads(text) for name, text in FIGURE.findall(path.read_text())}


def values(array: Any) -> list[Any]:
    """A trace's array as plotly wrote it: a JSON list, or a typed array in base64."""
    if isinstance(array, dict) and "bdata" in array:
        decoded = np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
        if "shape" in array:
            decoded = decoded.reshape([int(n) for n in str(array["shape"]).split(",")])
        return decoded.tolist()
    return list(array)


def missing(value: Any) -> bool:
    """A value plotly draws as nothing: null in JSON, or NaN in a typed array."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def notes(figure: dict[str, Any]) -> dict[str, str]:
    """The notes written across a figure's (sub)plots, by the y axis they sit on (not the
    subplot titles, which are annotations too)."""
    return {
        a["yref"].removesuffix(" domain"): a["text"]
        for a in figure["layout"].get("annotations", [])
        if a.get("yref", "").endswith(" domain")
    }


def sql(capsys: pytest.CaptureFixture[str], query: str) -> list[dict[str, Any]]:
    """`de-pipeline sql QUERY --format json`, parsed."""
    capsys.readouterr()
    assert main(["sql", query, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def load(start_simulator, monkeypatch, days: int, messages_per_day: int = 200):
    """The last `days` days (no outage among them) from a simulator, through the runner."""
    point_at(monkeypatch, start_simulator(messages_per_day=messages_per_day))
    first, last = recent_days(days)
    return first, last, run_range(first, last, log_level="ERROR")


def test_the_dashboard_comes_after_every_daily_table_in_both_jobs():
    graph = defs().resolve_asset_graph()
    node = graph.get(DASHBOARD)
    assert not node.is_partitioned  # one file over the last days, not one per day
    upstream = {key.to_user_string() for key in node.parent_keys}
    assert {"messages", *(table.name for table in DAILY_TABLES)} <= upstream
    for job in ("all_assets", "rebuild_from_archive"):
        assert DASHBOARD in defs().resolve_job_def(job).asset_layer.executable_asset_keys, job
    # a journey refresh rewrites daily tables, then the dashboard
    refresh = defs().resolve_job_def("refresh_journey").graph.dependencies
    after = {node.name: {dep.node for dep in inputs.values()} for node, inputs in refresh.items()}
    assert after["refresh_dashboard_file"] == {"refresh_journey_rows"}


def test_loading_the_definitions_leaves_pandas_and_plotly_to_the_step_that_draws():
    # every run's process loads the definitions (each step's in the UI, each week of a
    # backfill): pandas, numpy and pyarrow add 40-75 MiB to its peak, before DuckDB's budget
    code = "import de_pipeline.defs.definitions as d, de_pipeline.defs.runner, de_pipeline.cli; d.defs()"
    assert modules_loaded_after(code, ("pandas", "numpy", "pyarrow", "plotly")) == []


def test_drawing_the_dashboard_leaves_plotlys_graph_objects_unloaded():
    # plotly's figure objects validate each change and copy their template: about a second
    # per dashboard for JSON the page only embeds; the figures are plain plotly.js dicts
    code = "import de_pipeline.dashboard.build, de_pipeline.dashboard.page as p; p.get_plotlyjs()"
    assert modules_loaded_after(code, ("plotly.graph_objects", "plotly.subplots", "plotly.io")) == []


def modules_loaded_after(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of `modules` a fresh Python process has loaded after running `code`."""
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {modules!r} if m in sys.modules))"
    return subprocess.run(
        [sys.executable, "-W", "ignore", "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()


def test_a_figures_json_is_strict_json_with_null_where_a_number_is_missing():
    figure = Figure(
        data=[
            scatter(
                x=[date(2026, 1, 2), pd.Timestamp("2026-01-03"), pd.NaT],
                y=np.array([1.5, np.nan, np.inf]),
                customdata=np.column_stack([np.array([1, 2, 3]), np.array([0.5, np.nan, -np.inf])]),
                text=[np.int64(7), pd.NA, np.float64("nan")],
            )
        ]
    )

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    (trace,) = json.loads(figure.to_json(), parse_constant=refuse)["data"]
    assert trace["x"] == ["2026-01-02", "2026-01-03T00:00:00", None]
    assert trace["y"] == [1.5, None, None]
    assert trace["customdata"] == [[1.0, 0.5], [2.0, None], [3.0, None]]
    assert trace["text"] == [7, None, None]


@pytest.mark.dates
def test_the_charts_show_the_numbers_of_the_sql(start_simulator, monkeypatch, tmp_path, capsys):
    first, last, results = load(start_simulator, monkeypatch, days=9)
    # two chunks (7 + 2 days), each a fetch and a build; only the last build makes the
    # dashboard, over every day
    assert len(results) == 4
    assert [bool(r.asset_materializations_for_node("dashboard")) for r in results] == [False, False, False, True]
    (done,) = results[-1].asset_materializations_for_node("dashboard")
    path = tmp_path / "dashboard.html"  # the default: beside the warehouse
    assert done.metadata["path"].value == str(path.resolve())
    assert done.metadata["days"].value == f"{first} .. {last}"
    drawn = figures(path)
    assert len(drawn) == done.metadata["charts_drawn"].value == 9

    health = drawn["data_health"]["data"][0]
    per_day = sql(capsys, "SELECT CAST(day AS VARCHAR) AS day, count(*) AS n FROM messages GROUP BY day ORDER BY day")
    assert dict(zip(health["x"], values(health["y"]))) == {r["day"]: r["n"] for r in per_day}
    assert len(per_day) == 9

    # customer sentiment per channel and day, recomputed from the messages themselves
    expected = {
        (r["channel"], r["day"]): r["sentiment"]
        for r in sql(
            capsys,
            "SELECT sessionchannel AS channel, CAST(day AS VARCHAR) AS day, avg(sentiment) AS sentiment "
            "FROM messages WHERE sendertype = 'customer' AND sentiment IS NOT NULL GROUP BY ALL",
        )
    }
    lines = [t for t in drawn["sentiment_by_channel"]["data"] if t.get("yaxis", "y") == "y"]
    shown = {(t["name"], day): y for t in lines for day, y in zip(t["x"], values(t["y"])) if not missing(y)}
    assert shown.keys() == expected.keys() and len({c for c, _ in shown}) > 1
    assert all(abs(shown[key] - expected[key]) < 1e-9 for key in expected)

    agents = drawn["agents"]["data"][0]
    segments = sql(capsys, "SELECT agent, sum(segments) AS n FROM agent_performance GROUP BY agent")
    assert dict(zip(agents["y"], values(agents["x"]))) == {r["agent"]: r["n"] for r in segments}

    entities = {
        (t["name"], day): y
        for t in drawn["redacted_entities"]["data"]
        for day, y in zip(t["x"], values(t["y"]))
        if not missing(y)
    }
    counted = sql(
        capsys,
        "SELECT entity_type, CAST(day AS VARCHAR) AS day, sum(occurrences) AS n "
        "FROM redaction_entity_counts GROUP BY ALL",
    )
    assert entities == {(r["entity_type"], r["day"]): r["n"] for r in counted}

    paths = drawn["journey_paths"]["data"][0]
    journeys = {
        r["path"]: r["n"] for r in sql(capsys, "SELECT path, count(*) AS n FROM customer_journeys GROUP BY path")
    }
    shown_paths = dict(zip((p.replace(" → ", ">") for p in paths["y"]), values(paths["x"])))
    assert shown_paths and all(journeys[p] == n for p, n in shown_paths.items())
    assert sorted(shown_paths.values(), reverse=True) == sorted(journeys.values(), reverse=True)[: len(shown_paths)]

    # aggregates only: no message text, no customer's or bot's name, no email
    page = path.read_text()
    private = sql(
        capsys,
        "SELECT DISTINCT text AS value FROM messages WHERE length(text) > 15 "
        "UNION SELECT DISTINCT sendername FROM messages WHERE sendertype <> 'agent' AND sendername <> '[PERSON]' "
        "UNION SELECT DISTINCT senderemail FROM messages",
    )
    leaked = [r["value"] for r in private if r["value"] and r["value"] in page]
    assert len(private) > 50 and not leaked


def test_a_backfill_ends_with_the_dashboards_path_and_the_command_rewrites_it(
    start_simulator, monkeypatch, tmp_path, capsys
):
    point_at(monkeypatch, start_simulator(messages_per_day=150))
    first, last = recent_days(2)
    assert main(["backfill", "--start", str(first), "--end", str(last)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("Dashboard") and out[-1].endswith(str((tmp_path / "dashboard.html").resolve()))
    assert (tmp_path / "dashboard.html").is_file()

    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    other = tmp_path / "elsewhere" / "today.html"
    assert main(["dashboard", "--out", str(other), "--days", "1", "--open"]) == 0
    assert opened == [other.resolve().as_uri()]
    assert f"dashboard of {last} .. {last} (9 charts" in capsys.readouterr().out
    assert values(figures(other)["data_health"]["data"][0]["x"]) == [str(last)]


def test_one_channel_and_no_journeys_draw_what_they_can(start_simulator, monkeypatch, tmp_path, capsys):
    load(start_simulator, monkeypatch, days=2, messages_per_day=150)
    with writer(WarehouseSettings.from_env()) as connection:
        connection.execute("DELETE FROM sentiment_trends WHERE sessionchannel <> 'webchat'")
        for table in ("conversation_segments", "customer_journeys", "agent_performance"):
            connection.execute(f"DELETE FROM {table}")
    assert main(["dashboard"]) == 0
    out = capsys.readouterr().out
    page = (tmp_path / "dashboard.html").read_text()
    drawn = figures(tmp_path / "dashboard.html")
    missing = {"journey_paths", "handoffs_per_day", "agents"}
    assert set(drawn) == {
        "sentiment_by_channel",
        "sentiment_by_sender",
        "top_topic_confidence",
        "least_confident_intents",
        "redacted_entities",
        "data_health",
    }
    assert [t["name"] for t in drawn["sentiment_by_channel"]["data"]] == ["webchat", "webchat"]
    assert "Only one channel in these days (webchat)" in page
    assert page.count('<p class="missing">No customer journeys in these days') == 2
    assert '<p class="missing">No agent segments in these days' in page
    assert all(f"  {name}: No " in out for name in missing)


def test_a_day_never_loaded_is_a_gap_in_every_daily_chart(start_simulator, monkeypatch, tmp_path):
    point_at(monkeypatch, start_simulator(messages_per_day=150))
    first, last = recent_days(5)
    gap = first + timedelta(days=2)
    run_range(first, gap - timedelta(days=1), log_level="ERROR")
    run_range(gap + timedelta(days=1), last, log_level="ERROR")
    drawn = figures(tmp_path / "dashboard.html")
    every_day = [str(first + timedelta(days=n)) for n in range(5)]
    lines = 0
    for name in DAILY_CHARTS:
        for trace in drawn[name]["data"]:
            x = values(trace["x"])
            assert set(x) - {None} <= set(every_day), name
            if trace.get("fill") == "toself":  # a band: a shape per run of days with data, none on the gap
                assert str(gap) not in x and None in x, (name, trace)
            elif "lines" in trace.get("mode", ""):  # a line per series: every day, broken at the gap
                lines += 1
                y = dict(zip(x, values(trace["y"])))
                assert x == every_day and missing(y[str(gap)]) and trace["connectgaps"] is False, (name, trace)
                assert not all(missing(y[day]) for day in every_day if day != str(gap)), (name, y)
            elif trace["type"] == "bar" and name != "data_health":  # every day, no bar on the gap
                assert x == every_day and missing(values(trace["y"])[2]), (name, trace)
        layout = drawn[name]["layout"]
        for axis in (key for key in layout if key.startswith("xaxis")):  # the x axis is every day
            start, end = layout[axis]["range"]
            assert start[:10] < every_day[0] and end[:10] >= every_day[-1], (name, axis, layout[axis]["range"])
    assert lines >= 10
    health = drawn["data_health"]["data"][0]
    assert dict(zip(values(health["x"]), values(health["y"])))[str(gap)] == 0


def test_a_fetched_day_without_messages_is_marked_red(start_simulator, monkeypatch, tmp_path):
    simulator = start_simulator(messages_per_day=150)
    point_at(monkeypatch, simulator)
    empty = latest_outage_day(simulator.config.seed)
    run_range(empty - timedelta(days=1), empty, log_level="ERROR")
    assert not served(simulator, empty, empty) and served(simulator, empty - timedelta(days=1), empty)
    health = figures(tmp_path / "dashboard.html")["data_health"]
    stored = health["data"][0]
    per_day = dict(zip(values(stored["x"]), values(stored["y"])))
    assert per_day[str(empty)] == 0 and per_day[str(empty - timedelta(days=1))] > 0
    marked = [t for t in health["data"] if t["type"] == "scatter" and t["marker"]["color"] == "#e45756"]
    assert [(values(t["x"]), values(t["y"]), t["yaxis"]) for t in marked] == [([str(empty)], [0], "y")]
    page = (tmp_path / "dashboard.html").read_text()
    # loaded, and empty; the day before is all the account's history, so no one expected it full
    assert (
        f"1 day(s) loaded without any message, like their weekday before, or without a history to tell: {empty}."
        in page
    )


def test_an_empty_panel_says_so_across_it(start_simulator, monkeypatch, tmp_path, capsys):
    load(start_simulator, monkeypatch, days=2, messages_per_day=150)
    assert sql(capsys, "SELECT count(*) AS n FROM rejected_messages") == [{"n": 0}]  # a clean simulation
    with writer(WarehouseSettings.from_env()) as connection:
        connection.execute("UPDATE customer_journeys SET sentiment_change = NULL")
    assert main(["dashboard"]) == 0
    drawn = figures(tmp_path / "dashboard.html")
    assert notes(drawn["data_health"]) == {"y2": "No rejected records in these days."}
    assert notes(drawn["handoffs_per_day"]) == {"y2": "No journey with a sentiment change in these days."}
    assert all(not notes(drawn[name]) for name in drawn if name not in ("data_health", "handoffs_per_day"))


def test_an_accounts_dashboard_shows_its_rows_and_all_accounts_both(start_simulator, monkeypatch, tmp_path):
    first, last, _ = load(start_simulator, monkeypatch, days=2, messages_per_day=150)
    settings = WarehouseSettings.from_env()
    with writer(settings) as connection:  # a second account: a copy of the last day's rows
        for table in TABLES:
            if table.name != "rejected_messages":
                connection.execute(
                    f"INSERT INTO {table.name} SELECT * REPLACE ('other' AS provider) FROM {table.name} "
                    "WHERE day = $last",
                    {"last": last},
                )
    stored = query("SELECT provider, count(*) AS n FROM messages GROUP BY ALL").to_dict("records")
    dashboard = DashboardSettings.from_env(settings)
    for account, days in (("other", [last]), ("default", [first, last]), (None, [first, last])):
        written = write_dashboard(settings, dashboard.for_account(account) if account else dashboard, account)
        page = written.path.read_text()
        assert ("Contact centre, account other" in page) == (account == "other")
        assert values(figures(written.path)["data_health"]["data"][0]["x"]) == [str(d) for d in days]
        expected = sum(row["n"] for row in stored if account in (None, row["provider"]))
        assert f'<div class="window">{expected:,} over the window</div>' in page  # the messages tile
    assert written.path == tmp_path / "dashboard.html"
    assert (tmp_path / "dashboard-other.html").is_file()


def test_an_empty_warehouse_says_no_data_yet(tmp_path, capsys):
    with writer(WarehouseSettings.from_env()):
        pass  # the tables, without a row
    assert main(["dashboard"]) == 0
    assert "no data yet" in capsys.readouterr().out
    page = (tmp_path / "dashboard.html").read_text()
    assert "<h1>No data yet</h1>" in page and "de-pipeline demo" in page and not figures(tmp_path / "dashboard.html")


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["dashboard"], {"DE_DASHBOARD_DAYS": "0"}, "DE_DASHBOARD_DAYS=0 must be in [1, 3660]"),
        (["dashboard"], {"DE_DASHBOARD_PATH": "."}, "DE_DASHBOARD_PATH=. is a directory"),
        (["dashboard"], {}, "no warehouse at"),
        (["dashboard", "--account", "nope"], {}, "no account 'nope'; the accounts are: default"),
    ],
)
def test_bad_settings_are_one_line(monkeypatch, capsys, args, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1


def test_the_page_draws_every_chart_offline_in_chromium(start_simulator, monkeypatch, tmp_path):
    """Headless Chromium with every request but file:// refused: each chart is drawn, no
    error; the full page is the README's screenshot."""
    load(start_simulator, monkeypatch, days=14, messages_per_day=300)
    path = tmp_path / "dashboard.html"
    charts = list(figures(path))
    assert len(charts) == 9

    with chromium_page() as page:
        refused: list[str] = []
        errors: list[str] = []

        def only_files(route) -> None:
            if route.request.url.startswith("file://"):
                route.continue_()
            else:
                refused.append(route.request.url)
                route.abort()

        page.route("**/*", only_files)
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(path.as_uri(), wait_until="load")
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length === {len(charts)}")
        plotted = page.eval_on_selector_all(
            ".js-plotly-plot",
            """plots => plots.map(plot => {
                const box = plot.querySelector('svg.main-svg, canvas').getBoundingClientRect();
                return [plot.id, box.width, box.height, plot.querySelectorAll('.trace').length];
            })""",
        )
        assert [p[0] for p in plotted] == [f"chart-{name}" for name in charts]
        assert all(width > 0 and height > 0 and traces > 0 for _, width, height, traces in plotted), plotted
        assert not errors and not refused, (errors, refused)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOT, full_page=True)
