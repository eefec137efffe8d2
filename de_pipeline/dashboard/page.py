"""The dashboard as one self-contained HTML page: plotly.js inlined once, each chart's figure
as JSON beside its place, no request to any server."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from html import escape

import pandas as pd
from plotly.offline import get_plotlyjs

from de_pipeline.dashboard.figures import Chart

STYLE = """
body { margin: 0; font-family: system-ui, sans-serif; background: #f4f5f7; color: #1f2328; }
header, main, .kpis { max-width: 1500px; margin: 0 auto; padding: 0 20px; }
header h1 { margin: 20px 0 4px; font-size: 24px; }
header p { margin: 0 0 14px; color: #57606a; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); gap: 12px; margin-bottom: 16px; }
.kpi { background: #fff; border-radius: 8px; padding: 12px 16px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.kpi .label { color: #57606a; font-size: 13px; }
.kpi .value { font-size: 26px; font-weight: 600; margin: 2px 0; }
.kpi .window { color: #57606a; font-size: 13px; }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 16px; padding-bottom: 24px; }
.card { background: #fff; border-radius: 8px; padding: 12px 16px; box-shadow: 0 1px 2px rgba(0,0,0,.08); min-width: 0; }
.card.wide { grid-column: 1 / -1; }
.card h2 { font-size: 16px; margin: 0 0 2px; }
.card .source { margin: 0; color: #57606a; font-size: 12px; }
.card .note { margin: 6px 0 0; padding: 6px 10px; background: #fff8c5; border-radius: 6px; font-size: 13px; }
.card .missing { margin: 16px 0; padding: 28px 16px; background: #f6f8fa; border-radius: 6px; color: #57606a; }
.empty { max-width: 720px; margin: 80px auto; background: #fff; border-radius: 8px; padding: 24px 32px; }
"""

RENDER = """
document.querySelectorAll('script.figure').forEach(function (node) {
  var spec = JSON.parse(node.textContent);
  Plotly.newPlot('chart-' + node.dataset.chart, spec.data, spec.layout, {responsive: true, displaylogo: false});
});
"""


def page(
    charts: Sequence[Chart],
    kpis: pd.DataFrame,
    *,
    first_day: date,
    last_day: date,
    built: str,
    source: str | None,
    account: str | None = None,
) -> str:
    """The dashboard of first_day..last_day (of one account, or all): headline numbers,
    then a card per chart."""
    drawn = [chart for chart in charts if chart.figure is not None]
    figures = "".join(
        f'<script type="application/json" class="figure" data-chart="{chart.name}">'
        f"{_script_safe(chart.figure.to_json())}</script>\n"
        for chart in charts
        if chart.figure is not None
    )
    scripts = f"<script>{get_plotlyjs()}</script>\n{figures}<script>{RENDER}</script>" if drawn else ""
    origin = f" · source: {escape(source)}" if source else ""
    whose = f", account {escape(account)}" if account else ""
    return _document(
        f"Contact centre{whose} {first_day} … {last_day}",
        f"<header><h1>Contact centre{whose}: {first_day} … {last_day}</h1>"
        f"<p>Last loaded day <strong>{last_day}</strong> · built {escape(built)}{origin} · "
        "aggregates of the warehouse only, no message text</p></header>\n"
        f'<section class="kpis">{_kpis(kpis)}</section>\n'
        f"<main>\n{''.join(_card(chart) for chart in charts)}</main>\n{scripts}",
    )


def empty_page(*, built: str, warehouse: str, empty_days: Sequence[date] = ()) -> str:
    """What the dashboard says before the warehouse holds any message; `empty_days`: days
    that runs loaded and that came back without one."""
    loaded = (
        f"<p><strong>{len(empty_days)} day(s) were loaded and came back empty</strong> "
        f"({empty_days[0]} … {empty_days[-1]}): if those days had messages, a setting is wrong. "
        "Check <code>DE_EPOCH_UNIT</code>, <code>DE_PROVIDER_ID</code>, <code>DE_PROVIDERID_IN</code> and "
        "<code>DE_API_BASE_URL</code>, and run <code>de-pipeline check</code>.</p>"
        if empty_days
        else ""
    )
    return _document(
        "Contact centre: no data yet",
        '<div class="empty"><h1>No data yet</h1>'
        f"<p>The warehouse <code>{escape(warehouse)}</code> holds no messages yet (built {escape(built)}).</p>"
        f"{loaded}<p>Load some days, then build the dashboard again:</p>"
        "<pre>de-pipeline demo                      # 14 days from the embedded simulator\n"
        "de-pipeline backfill --start YYYY-MM-DD --end YYYY-MM-DD\n"
        "de-pipeline dashboard --open</pre></div>",
    )


def _document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _card(chart: Chart) -> str:
    notes = "".join(f'<p class="note">{escape(note)}</p>' for note in chart.notes if chart.figure is not None)
    if chart.figure is None:
        place = "".join(f'<p class="missing">{escape(note)}</p>' for note in chart.notes)
    else:
        place = f'<div class="chart" id="chart-{chart.name}"></div>'
    return (
        f'<article class="card{" wide" if chart.wide else ""}" id="card-{chart.name}">'
        f'<h2>{escape(chart.title)}</h2><p class="source">From {escape(chart.source)}.</p>{notes}{place}</article>\n'
    )


KPI_FORMATS = {  # column of the kpis query: (label, format)
    "messages": ("Messages", "{:,.0f}"),
    "journeys": ("Customer journeys", "{:,.0f}"),
    "handoff_rate": ("Handed from bot to agent", "{:.1%}"),
    "customer_sentiment": ("Customer sentiment (−1 … 1)", "{:+.3f}"),
    "low_confidence_share": ("Intents with low confidence", "{:.1%}"),
}


def _kpis(kpis: pd.DataFrame) -> str:
    """A tile per headline number: the last loaded day, and the whole window below it."""
    periods = kpis.set_index("period")
    tiles = []
    for column, (label, form) in KPI_FORMATS.items():
        last, whole = (_formatted(periods.at[period, column], form) for period in ("last day", "window"))
        tiles.append(
            f'<div class="kpi"><div class="label">{label}, last day</div><div class="value">{last}</div>'
            f'<div class="window">{whole} over the window</div></div>'
        )
    return "".join(tiles)


def _formatted(value: object, form: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "–"
    return form.format(value)


def _script_safe(json_text: str) -> str:
    """JSON that cannot end its <script> element early, whatever a label says."""
    return json_text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
