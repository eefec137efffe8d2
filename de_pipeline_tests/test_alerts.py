"""The alert webhook is not trusted: it cannot redirect an alert to another host, be an
unencrypted or a cloud metadata address, or hold the sensor past its deadline. Each case
against real servers on 127.0.0.1 (the delivery itself: test_catalog.py)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from de_pipeline.alerts import AlertSettings, post_alert
from de_pipeline.env import SettingsError

SECRET_PATH = "/services/T000/B000/secret-token-of-the-hook"


class _Hook(BaseHTTPRequestHandler):
    """Records each post's body, then lets its server's `answer` reply."""

    protocol_version = "HTTP/1.1"
    server: _HookServer

    def do_POST(self) -> None:  # noqa: N802 - the base class's name
        self.server.posts.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.answer(self)

    def log_message(self, *args: object) -> None:
        pass


class _HookServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, answer: Callable[[_Hook], None]) -> None:
        super().__init__(("127.0.0.1", 0), _Hook)
        self.answer = answer
        self.posts: list[bytes] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{SECRET_PATH}"


@pytest.fixture
def hook_server() -> Iterator[Callable[[Callable[[_Hook], None]], _HookServer]]:
    """Start webhook servers on 127.0.0.1 that reply with `answer`; stops them after."""
    started: list[_HookServer] = []

    def start(answer: Callable[[_Hook], None]) -> _HookServer:
        server = _HookServer(answer)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def reply(status: int, **headers: str) -> Callable[[_Hook], None]:
    def answer(handler: _Hook) -> None:
        handler.send_response(status)
        for name, value in {"Content-Length": "0", **headers}.items():
            handler.send_header(name, value)
        handler.end_headers()

    return answer


def alert_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "de_pipeline.alerts" and r.levelno == logging.WARNING]


def test_an_answered_post_is_delivered_and_says_nothing(hook_server, caplog):
    hook = hook_server(reply(200))
    post_alert(AlertSettings(hook.url), "a run failed")
    assert [orjson.loads(post) for post in hook.posts] == [
        {"text": "a run failed", "unfurl_links": False, "unfurl_media": False}  # no link previews
    ]
    assert alert_warnings(caplog) == []


def test_a_redirect_to_another_host_is_not_followed(hook_server, caplog):
    """A 307 made requests post the alert again, to wherever the webhook pointed."""
    elsewhere = hook_server(reply(200))
    hook = hook_server(reply(307, Location=elsewhere.url))
    post_alert(AlertSettings(hook.url), "a run failed")
    assert len(hook.posts) == 1
    assert elsewhere.posts == []
    (warning,) = alert_warnings(caplog)
    assert "DE_ALERT_WEBHOOK_URL" in warning and "HTTP 307, a redirect, which is not followed" in warning
    assert SECRET_PATH not in caplog.text


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("http://hooks.example.com/services/x", "uses plain http to hooks.example.com"),
        ("http://10.0.0.7:8080/hook", "uses plain http to 10.0.0.7"),
        ("https://169.254.169.254/latest/meta-data/", "points at 169.254.169.254, a link-local"),
        ("http://169.254.169.254/latest/meta-data/", "points at 169.254.169.254, a link-local"),
        ("https://[fe80::1]/hook", "points at fe80::1"),
        ("https://[fd00:ec2::254]/latest/meta-data/", "points at fd00:ec2::254"),
        ("https://[::ffff:169.254.169.254]/", "points at ::ffff:169.254.169.254"),
        ("https://metadata.google.internal/computeMetadata/v1/", "points at metadata.google.internal"),
        ("https://hooks.example.com:port/x", "is not an http(s) URL"),
    ],
)
def test_an_unencrypted_or_metadata_webhook_is_refused_when_settings_are_read(url, refusal):
    with pytest.raises(SettingsError) as refused:
        AlertSettings.from_env({"DE_ALERT_WEBHOOK_URL": url + SECRET_PATH})
    text = str(refused.value)
    assert text.startswith("DE_ALERT_WEBHOOK_URL ") and refusal in text and "\n" not in text, text
    assert SECRET_PATH not in text


@pytest.mark.parametrize(
    "url", ["https://hooks.slack.com/services/x", "http://127.0.0.1:9000/hook", "http://[::1]:9000/hook",
            "http://localhost:9000/hook", "http://127.8.9.10/hook"]
)  # fmt: skip
def test_https_anywhere_and_http_to_this_machine_are_accepted(url):
    assert AlertSettings.from_env({"DE_ALERT_WEBHOOK_URL": url}).webhook_url == url


@pytest.fixture
def only_loopback(monkeypatch) -> list[Any]:
    """Connections to anything but loopback are refused and recorded (no traffic leaves)."""
    attempts: list[Any] = []
    connect = socket.socket.connect

    def guarded(sock: socket.socket, address: Any) -> None:
        if address[0] not in ("127.0.0.1", "::1"):
            attempts.append(address)
            raise OSError("the test lets no connection leave this machine")
        connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return attempts


def test_a_name_that_resolves_to_a_metadata_address_is_refused_when_sending(only_loopback, caplog):
    """The host passes the settings' check (it is not written as an address), but the
    resolver reads 2852039166 as 169.254.169.254."""
    settings = AlertSettings.from_env({"DE_ALERT_WEBHOOK_URL": "https://2852039166" + SECRET_PATH})
    post_alert(settings, "a run failed")
    assert only_loopback == []  # nothing was sent, not even a connection
    (warning,) = alert_warnings(caplog)
    assert "2852039166 resolves to 169.254.169.254, a link-local or cloud metadata address: not sent" in warning


class _Drip:
    """Answers one byte at a time, `seconds` apart (status line and headers too), and says
    whether it sent the whole answer or the client hung up first."""

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.finished = threading.Event()
        self.aborted = threading.Event()

    def __call__(self, handler: _Hook) -> None:
        try:
            for index in range(len(self.ANSWER)):
                handler.wfile.write(self.ANSWER[index : index + 1])
                handler.wfile.flush()
                time.sleep(self.seconds)
        except OSError:
            self.aborted.set()
            handler.close_connection = True
            return
        self.finished.set()


def test_a_webhook_dripping_its_answer_is_abandoned_at_the_deadline(hook_server, caplog):
    """One byte every 2 s held the post for over 90 s, past the sensor's 60 s; the post is
    now cut after timeout_seconds in all."""
    drip = _Drip(seconds=0.1)  # its answer takes about 7 s
    hook = hook_server(drip)
    post_alert(AlertSettings(hook.url, timeout_seconds=1), "a run failed")
    assert not drip.finished.is_set()  # the post returned before the answer was sent
    assert drip.aborted.wait(5)  # and it hung up on it
    assert not drip.finished.is_set()
    (warning,) = alert_warnings(caplog)
    assert "no answer within 1s; gave up" in warning
    assert len(hook.posts) == 1
