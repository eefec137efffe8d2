"""Failure alerts: a short message posted to a Slack-compatible webhook (DE_ALERT_WEBHOOK_URL).

Knows HTTP; the Dagster sensor that calls it is in defs/sensors.py.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

from de_pipeline.api.errors import scrub
from de_pipeline.env import Env, SettingsError

MAX_ERROR_CHARS = 300
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertSettings:
    """DE_ALERT_WEBHOOK_URL: where failure alerts go; unset, no alert is sent. The URL itself
    is a secret (a Slack webhook URL is its own credential): it is never printed."""

    webhook_url: str | None = field(default=None, repr=False)
    timeout_seconds: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlertSettings:
        url = Env(environ).text("DE_ALERT_WEBHOOK_URL")
        if url is not None and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc):
            raise SettingsError(
                "DE_ALERT_WEBHOOK_URL is not an http(s) URL such as https://hooks.slack.com/services/..."
            )
        return cls(url)


def failure_text(run_id: str, job: str, assets: list[str], days: str, error: str, secret: str = "") -> str:
    """One short message: which run, assets and days failed, and the error's first line
    (never the API key, `secret`)."""
    first_line = next((line.strip() for line in error.splitlines() if line.strip()), "no error message")
    if len(first_line) > MAX_ERROR_CHARS:
        first_line = first_line[:MAX_ERROR_CHARS] + "..."
    failed = ", ".join(assets) or "the run"
    return f"de-pipeline: run {run_id[:8]} of {job} failed in {failed} for {days}: {_inert(scrub(first_line, secret))}"


def _inert(text: str) -> str:
    """`text` as a chat shows it, typed: the error can quote the vendor's reply, so it goes in
    a code span (no link, image or mention), with the three characters Slack asks to escape."""
    escaped = text.replace("`", "'").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"`{escaped}`"


def post_alert(settings: AlertSettings, text: str) -> None:
    """Post {"text": ...} to the webhook, without link previews; a failure to deliver is
    logged, never raised."""
    if settings.webhook_url is None:
        return
    try:
        # no previews: a URL in an error would make the chat service fetch it
        message = {"text": text, "unfurl_links": False, "unfurl_media": False}
        response = requests.post(settings.webhook_url, json=message, timeout=settings.timeout_seconds)
        response.raise_for_status()
    except requests.RequestException as exc:
        _log.warning("could not deliver the failure alert to DE_ALERT_WEBHOOK_URL: %s", type(exc).__name__)
