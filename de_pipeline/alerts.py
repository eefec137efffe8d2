"""Failure alerts: a short message posted to a Slack-compatible webhook (DE_ALERT_WEBHOOK_URL).

Knows HTTP; the Dagster sensor that calls it is in defs/sensors.py. The webhook is not
trusted: the post follows no redirect, goes to no link-local or cloud metadata address,
and is cut after `timeout_seconds` in all, since a sensor's tick must end within 60 s.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

from de_pipeline.api.deadline import DeadlineAdapter, Watchdog
from de_pipeline.api.errors import scrub
from de_pipeline.api.settings import is_loopback_host
from de_pipeline.env import Env, SettingsError

MAX_ERROR_CHARS = 300
# Link-local addresses (where the clouds' metadata services answer: 169.254.169.254) and
# AWS's IPv6 metadata address: a post there could read or change the machine's credentials.
METADATA_NETWORKS = tuple(ipaddress.ip_network(net) for net in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128"))
METADATA_HOSTS = frozenset({"metadata.google.internal"})
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertSettings:
    """DE_ALERT_WEBHOOK_URL: where failure alerts go; unset, no alert is sent. The URL itself
    is a secret (a Slack webhook URL is its own credential): it is never printed."""

    webhook_url: str | None = field(default=None, repr=False)
    # the whole post, from connecting to the answer's status: well inside the 60 s of a sensor's tick
    timeout_seconds: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlertSettings:
        url = Env(environ).text("DE_ALERT_WEBHOOK_URL")
        if url is not None:
            _check_webhook_url(url)
        return cls(url)


def _check_webhook_url(url: str) -> None:
    """A SettingsError naming DE_ALERT_WEBHOOK_URL (never its value) unless it is an https
    URL, or http to this machine, and not to a link-local or metadata address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or not _has_valid_port(url):
        raise SettingsError("DE_ALERT_WEBHOOK_URL is not an http(s) URL such as https://hooks.slack.com/services/...")
    host = parts.hostname or ""
    if host.rstrip(".") in METADATA_HOSTS or _is_metadata_address(host):
        raise SettingsError(
            f"DE_ALERT_WEBHOOK_URL points at {host}, a link-local or cloud metadata address, not a webhook"
        )
    if parts.scheme == "http" and not is_loopback_host(host):
        raise SettingsError(
            f"DE_ALERT_WEBHOOK_URL uses plain http to {host}: the alert and the URL (its own credential) "
            "would travel unencrypted; use https (http only to this machine: localhost, 127.0.0.1, ::1)"
        )


def _has_valid_port(url: str) -> bool:
    try:
        urlsplit(url).port  # noqa: B018 - urlsplit checks the port when it is asked for it
    except ValueError:
        return False
    return True


def _is_metadata_address(host: str) -> bool:
    """Whether `host` is an IP address in METADATA_NETWORKS (an IPv4 one also written as IPv6)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a name
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in METADATA_NETWORKS)


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
    logged in one line, never raised."""
    if settings.webhook_url is None:
        return
    failure = _post(settings.webhook_url, text, settings.timeout_seconds)
    if failure is not None:
        _log.warning("could not deliver the failure alert to DE_ALERT_WEBHOOK_URL: %s", failure)


def _post(url: str, text: str, seconds: float) -> str | None:
    """Post once, within `seconds` in all; None if the webhook took it, else why not."""
    host = urlsplit(url).hostname or ""
    refused = _metadata_address_of(host)
    if refused is not None:
        return f"{host} resolves to {refused}, a link-local or cloud metadata address: not sent"
    watchdog = Watchdog(seconds)  # requests' timeout bounds each read; this, the whole post
    session = requests.Session()
    session.mount("http://", DeadlineAdapter(max_retries=0))
    session.mount("https://", DeadlineAdapter(max_retries=0))
    status: int | None = None
    failure = ""
    # no previews: a URL in an error would make the chat service fetch it
    message: dict[str, str | bool] = {"text": text, "unfurl_links": False, "unfurl_media": False}
    try:
        with watchdog:
            # only the status is read: a huge or dripping body costs nothing
            with session.post(url, json=message, timeout=seconds, allow_redirects=False, stream=True) as answer:
                status = answer.status_code
    except requests.RequestException as exc:
        failure = type(exc).__name__  # its text would show the URL, a secret
    finally:
        session.close()
        watchdog.close()
    if watchdog.expired:
        return f"no answer within {seconds:g}s; gave up"
    if status is None:
        return failure
    if 300 <= status < 400:
        return f"it answered HTTP {status}, a redirect, which is not followed; set the URL it redirects to"
    if status >= 400:
        return f"it answered HTTP {status}"
    return None


def _metadata_address_of(host: str) -> str | None:
    """The first address `host` resolves to that is link-local or a metadata address (a name,
    or a number such as 2852039166, can resolve to one), else None. A name that does not
    resolve here is left to the post (a proxy may resolve it)."""
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    return next((str(info[4][0]) for info in found if _is_metadata_address(str(info[4][0]))), None)
