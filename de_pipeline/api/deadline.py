"""A total time limit per HTTP request, headers and body included.

requests' timeouts bound each socket read, not the request: a server that sends one byte
every few seconds, in its headers or its body, holds a request for ever. Here every
connection registers with the watchdog of the request in flight on its thread; when the
deadline passes, the watchdog shuts the connection's socket down, so the blocked read
returns at once and the request fails as a dropped connection would.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import time
from typing import Any

import requests
from urllib3 import PoolManager
from urllib3.connectionpool import HTTPConnectionPool

_in_flight = threading.local()  # .watchdog: the Watchdog of this thread's request, if any


class Watchdog:
    """Cuts a request that takes longer than `seconds`. Use as a context manager around each
    request; then `expired` says whether it was cut (its body may even look complete).

    One per client: its thread waits for every deadline in turn (starting a thread for each
    request would cost about 0.4 ms a request)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._due: float | None = None  # time.monotonic() at which the request is cut
        self._connection: Any = None
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None  # started by the first request

    def __enter__(self) -> Watchdog:
        with self._condition:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="de-api-deadline", daemon=True)
                self._thread.start()
            self.expired = False
            self._connection = None
            self._due = time.monotonic() + self.seconds
            self._condition.notify_all()
        _in_flight.watchdog = self
        return self

    def __exit__(self, *exc_info: object) -> None:
        _in_flight.watchdog = None
        with self._condition:
            self._due = None
            self._connection = None

    def watch(self, connection: Any) -> None:
        """Shut `connection` down when the deadline passes, or now if it has passed."""
        with self._condition:
            self._connection = connection
            if self.expired:
                _shut_down(connection)

    def close(self) -> None:
        """End the waiting thread (another starts if a request follows)."""
        with self._condition:
            self._thread = None
            self._condition.notify_all()

    def _run(self) -> None:
        with self._condition:
            while self._thread is threading.current_thread():
                remaining = None if self._due is None else self._due - time.monotonic()
                if remaining is None or remaining > 0:
                    self._condition.wait(remaining)
                    continue
                self.expired = True
                self._due = None
                if self._connection is not None:
                    _shut_down(self._connection)


class DeadlineAdapter(requests.adapters.HTTPAdapter):
    """An HTTPAdapter whose connections, direct or through a proxy, a Watchdog can cut."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _watch_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        _watch_pools(manager)
        return manager


class _WatchedConnection:
    """Mixed into a urllib3 connection class: registers with the request's Watchdog."""

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _watch(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)  # a kept-alive connection does not connect again
        super().request(*args, **kwargs)  # type: ignore[misc]


def _watch(connection: Any) -> None:
    watchdog = getattr(_in_flight, "watchdog", None)
    if watchdog is not None:
        watchdog.watch(connection)


def _shut_down(connection: Any) -> None:
    sock = connection.sock
    if sock is None:  # not connected yet: connect() registers again and is shut down then
        return
    # TLS through an https proxy is an SSLTransport around a socket. socket.shutdown, not
    # SSLSocket.shutdown: the reading thread is still using the TLS state.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(getattr(sock, "socket", sock), socket.SHUT_RDWR)


def _watch_pools(manager: PoolManager) -> None:
    """Make `manager` open watched subclasses of its connection classes (SOCKS ones too)."""
    manager.pool_classes_by_scheme = {
        scheme: _watched_pool(pool_class) for scheme, pool_class in manager.pool_classes_by_scheme.items()
    }


@functools.cache
def _watched_pool(pool_class: type[HTTPConnectionPool]) -> type[HTTPConnectionPool]:
    connection_class = pool_class.ConnectionCls
    if issubclass(connection_class, _WatchedConnection):  # a proxy manager is reused
        return pool_class
    watched = type(connection_class.__name__, (_WatchedConnection, connection_class), {})
    return type(pool_class.__name__, (pool_class,), {"ConnectionCls": watched})
