"""The dashboard file from the warehouse: its charts, in page order, in one HTML page."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from de_pipeline.dashboard.figures import Chart
from de_pipeline.dashboard.intents import least_confident_intents, topic_confidence
from de_pipeline.dashboard.journeys import agents, handoffs_per_day, journey_paths
from de_pipeline.dashboard.page import empty_page, page
from de_pipeline.dashboard.sentiment import sentiment_by_channel, sentiment_by_sender
from de_pipeline.dashboard.settings import DashboardSettings
from de_pipeline.dashboard.volumes import data_health, redacted_entities
from de_pipeline.warehouse.connection import reader
from de_pipeline.warehouse.dashboard_queries import DashboardData, dashboard_data, empty_loaded_days
from de_pipeline.warehouse.files import write_text_durably
from de_pipeline.warehouse.settings import WarehouseSettings


@dataclass(frozen=True)
class WrittenDashboard:
    path: Path
    size_bytes: int
    first_day: date | None  # None: the warehouse held no message (the page says "no data yet")
    last_day: date | None
    drawn: tuple[str, ...] = ()  # the charts drawn
    missing: dict[str, str] = field(default_factory=dict)  # chart: why it is a note instead


def charts(data: DashboardData) -> list[Chart]:
    """Every chart of the dashboard, in page order (a wide one spans the page)."""
    frames = data.frames
    return [
        sentiment_by_channel(frames["sentiment_by_channel"], data.days),
        sentiment_by_sender(frames["sentiment_by_sender"], data.days),
        handoffs_per_day(frames["handoffs_per_day"], data.days),
        topic_confidence(frames["top_topic_confidence"], data.days),
        least_confident_intents(frames["least_confident_intents"]),
        journey_paths(frames["journey_paths"]),
        agents(frames["agents"]),
        redacted_entities(frames["redacted_entities"], data.days),
        data_health(frames["data_health"], data.last_day),
    ]


def write_dashboard(
    warehouse: WarehouseSettings, settings: DashboardSettings, account: str | None = None
) -> WrittenDashboard:
    """Build the dashboard of the last `settings.days` loaded days from the warehouse (read
    only), of every account or of `account`, and replace `settings.path` with it whole."""
    with reader(warehouse, sealed=True) as connection:
        data = dashboard_data(connection, settings.days, account)
        empty_days = empty_loaded_days(connection) if data is None else []
    built = datetime.now(ZoneInfo(warehouse.timezone)).strftime(f"%Y-%m-%d %H:%M ({warehouse.timezone})")
    if data is None:
        scope = warehouse.where if account is None else f"{warehouse.where} (account {account})"
        text = empty_page(built=built, warehouse=scope, empty_days=empty_days)
        drawn: tuple[str, ...] = ()
        missing: dict[str, str] = {}
    else:
        shown = charts(data)
        text = page(
            shown,
            data.frames["kpis"],
            first_day=data.first_day,
            last_day=data.last_day,
            built=built,
            source=data.source,
            account=account,
        )
        drawn = tuple(c.name for c in shown if c.figure is not None)
        missing = {c.name: " ".join(c.notes) for c in shown if c.figure is None}
    settings.path.parent.mkdir(parents=True, exist_ok=True)
    write_text_durably(settings.path, text)
    return WrittenDashboard(
        path=settings.path,
        size_bytes=settings.path.stat().st_size,
        first_day=data.first_day if data else None,
        last_day=data.last_day if data else None,
        drawn=drawn,
        missing=missing,
    )
