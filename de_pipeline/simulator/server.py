"""An HTTP server on 127.0.0.1 that speaks the API as docs/api.md describes it, awkward parts included.

- 401/403 for a bad key or provider, 400 for a bad parameter or a window over 7 days,
  404 for an unknown path;
- half-open windows, a page-size cap below what is asked, `[]` at the end;
- `[]` past the 365-day retention and for an unknown customer session;
- a distant server: each answer `latency_ms` late (concurrently, one thread per request);
- a rate limit: 429 with Retry-After past `rate_limit` requests of one key in any 1-second
  window (the vendor limits each company's key);
- hostile mode: 429 with and without Retry-After, 5xx with HTML or text bodies, dropped
  connections, and a message repeated across page boundaries (as offset paging over
  live data does);
- by choice, each request form and field type the vendor's texts leave open (docs/api.md):
  epoch milliseconds, the key (and provider and partner id) as query parameters or a
  header, the customer-session call by POST or with its id in the path, `sessionid` as
  a JSON number, `ts` as a JSON string. The defaults serve the contract.
Pages are joined from pre-serialised messages, so the server is never the bottleneck.
"""

from __future__ import annotations

import io
import math
import re
import sys
import threading
import time
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from de_pipeline.api.settings import (
    CUSTOMER_SESSION_PATH,
    CUSTOMERSESSIONID_FIELD,
    DAY_MS,
    MAX_WINDOW_MS,
    PROVIDER_PATH,
    RETENTION_DAYS,
)
from de_pipeline.simulator.dataset import SyntheticDataset

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

# Hostile mode answers requests in this repeating order ("ok" = serve the page).
HOSTILE_CYCLE = (
    "ok", "429-retry-after", "ok", "ok", "503-html", "ok", "429", "ok",
    "500-text", "ok", "reset", "ok", "502-text", "ok",
)  # fmt: skip

SEQUENCE_CACHE = 16  # windows served at once: a concurrent fetch pages through up to DE_MAX_IN_FLIGHT days
# A message's own `sessionid` and `ts` in its serialised form (a string inside a value is
# JSON-escaped, so `"ts":` preceded by `{` or `,` can only be a member's name)
_SESSIONID_STRING = re.compile(rb'(?<=[{,])"sessionid":"(\d+\.\d+)"')
_TS_INTEGER = re.compile(rb'(?<=[{,])"ts":(-?\d+)(?=[,}])')


@dataclass(frozen=True)
class SimulatorConfig:
    seed: int = 7
    messages_per_day: int = 2000
    hostile: bool = False
    timezone: str = "UTC"
    # texts of a few hundred characters, like a real export's (benchmarks); off for tests
    long_texts: bool = False
    api_key: str = field(default="simulator-key", repr=False)
    provider_id: str = "simulator-provider"
    # more accounts on the same server, as (provider_id, api_key): each serves its own data
    other_providers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    epoch_unit: str = "s"
    max_page_size: int = 500
    default_page_size: int = 100
    retry_after_seconds: int = 1
    retention_days: int = RETENTION_DAYS
    provider_path: str = PROVIDER_PATH
    customer_session_path: str = CUSTOMER_SESSION_PATH
    latency_ms: int = 0  # every answer this late, as from a distant server
    rate_limit: int = 0  # data requests of one key answered in any 1-second window; 0: no limit
    # The request forms it takes. "bearer": Authorization: Bearer (the article's); "query":
    # the key as the query parameter `api_key_param` (an older help page's), the bearer form
    # then refused with 401; "header": the key in the header `api_key_header`.
    auth_in: str = "bearer"
    api_key_param: str = "apiKey"
    api_key_header: str = "apikey"
    providerid_in: str = "any"  # "any": header providerid or query providerId; "header" or "query": only there
    partner_id: str | None = None  # required when set: query partnerId with auth_in="query", else header partnerid
    customer_session_method: str = "GET"  # customer_session_path may hold {customersessionid}
    # The JSON types of its answers: "number" sends sessionid "12.10" as the number 12.10
    # (its digits as they are); "string" sends ts as a string of its digits
    sessionid_type: str = "string"
    ts_type: str = "integer"

    def serving(self, provider_id: str) -> SimulatorConfig:
        """The same simulator serving another provider, with that provider's own data."""
        seed = self.seed - provider_seed(self.provider_id) + provider_seed(provider_id)
        return replace(self, provider_id=provider_id, seed=seed)


@dataclass(frozen=True)
class ScriptedResponse:
    """An answer of the server; tests script them to replace the next data pages. A
    Content-Length header longer than the body makes the server drop the connection
    mid-body; `drip_seconds` sends the body (with `drip_headers`, the status line and
    headers too) one byte at a time, that many seconds apart."""

    status: int = 200
    body: bytes = b"[]"
    headers: dict[str, str] = field(default_factory=dict)
    drip_seconds: float = 0.0
    drip_headers: bool = False


@dataclass(frozen=True)
class RequestRecord:
    """What the server saw and answered, for tests to check."""

    method: str
    path: str
    status: int
    start_ms: int | None = None
    end_ms: int | None = None
    limit: int | None = None
    offset: int | None = None
    rows: int = 0
    customersessionid: str | None = None
    at: float = 0.0  # time.monotonic() when the request arrived
    provider: str | None = None  # the provider id asked for, once the key may ask for it


class _BadRequest(Exception):
    pass


class LoopbackServer:
    """Serves `answer()` over HTTP: `start()` in a background thread, `stop()` ends it."""

    latency_ms = 0  # every answer this late

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None

    def answer(self, method: str, target: str, headers: Any, body: bytes) -> ScriptedResponse:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)  # getsockname() gives an IP socket's host as text
        return f"http://{host}:{port}"

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; returns the base URL."""
        server = self._bind(host, port)
        # a short poll interval makes stop() quick
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="de-simulator", daemon=True
        ).start()
        return self.base_url

    def _bind(self, host: str, port: int) -> ThreadingHTTPServer:
        handler = type("Handler", (_Handler,), {"simulator": self})
        self._server = _Server((host, port), handler)
        return self._server

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class Simulator(LoopbackServer):
    """The simulated API. `start()` serves it in a background thread; `stop()` ends it."""

    def __init__(self, config: SimulatorConfig, now: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.config = config
        self.latency_ms = config.latency_ms
        self.now = now
        self.keys = {config.provider_id: config.api_key, **dict(config.other_providers)}
        self.datasets = {
            provider: SyntheticDataset(
                config.seed + (0 if provider == config.provider_id else provider_seed(provider)),
                config.messages_per_day,
                hostile=config.hostile,
                timezone=config.timezone,
                long_texts=config.long_texts,
            )
            for provider in self.keys
        }
        self.requests: list[RequestRecord] = []
        self._scripted: deque[Iterator[ScriptedResponse]] = deque()  # read one answer at a time
        self._data_requests = 0
        # per provider (its key), arrival times of the last second's answers
        self._answered: dict[str, deque[float]] = {provider: deque() for provider in self.keys}
        self.rate_limited = 0  # 429s sent for DE_SIM_RATE_LIMIT
        self._sequences: OrderedDict[tuple[Any, ...], list[bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def script(self, responses: Iterable[ScriptedResponse]) -> None:
        """Answer the next data requests with these responses, in order. They are read one
        at a time, so an endless generator makes a server that never stops answering so."""
        with self._lock:
            self._scripted.append(iter(responses))

    # ---- answering ----------------------------------------------------------------------

    def answer(self, method: str, target: str, headers: Any, body: bytes) -> ScriptedResponse:
        arrived = time.monotonic()
        parts = urlsplit(target)
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        path = parts.path
        config = self.config
        in_path = _id_in_path(config.customer_session_path, path)
        if path != config.provider_path and path != config.customer_session_path and in_path is None:
            return self._record(method, path, 404, _error(f"no such endpoint: {path}"))
        key = self._presented(config.auth_in, headers, query, config.api_key_header, config.api_key_param)
        if key not in self.keys.values():
            return self._record(method, path, 401, _error("invalid or missing API key"))
        provider = self._presented(config.providerid_in, headers, query, "providerid", "providerId")
        if provider is None or self.keys.get(provider) != key:
            return self._record(method, path, 403, _error("provider not allowed for this key"))
        if config.partner_id is not None:
            partner_in = "query" if config.auth_in == "query" else "header"
            if self._presented(partner_in, headers, query, "partnerid", "partnerId") != config.partner_id:
                return self._record(method, path, 403, _error("partner id missing or not allowed for this key"))
        expected = "POST" if path == config.provider_path else config.customer_session_method
        if method != expected:
            return self._record(method, path, 405, _error(f"use {expected} on {path}"))
        try:
            fields = self._fields(body if method == "POST" else None, query)
            start_ms, end_ms, page_size, offset = self._window(fields)
        except _BadRequest as exc:
            return self._record(method, path, 400, _error(str(exc)))
        csid = in_path if in_path is not None else _text(fields.get("customersessionid"))
        if path == config.provider_path:
            csid = None
        record = {"start_ms": start_ms, "end_ms": end_ms, "limit": page_size, "offset": offset,
                  "customersessionid": csid, "at": arrived, "provider": provider}  # fmt: skip
        wait = self._over_rate_limit(arrived, provider)
        if wait is not None:
            answer = ScriptedResponse(429, _error("rate limit exceeded"), {"Retry-After": str(wait)})
            self._record(method, path, 429, answer.body, **record)
            return answer
        fault = self._next_fault()
        if fault is not None:
            self._record(method, path, fault.status, fault.body, **record)
            return fault
        sequence = self._sequence(provider, path, csid, start_ms, end_ms)
        page = sequence[offset : offset + page_size]
        payload = b"[" + b",".join(page) + b"]"
        return self._record(method, path, 200, payload, rows=len(page), **record)

    @staticmethod
    def _presented(place: str, headers: Any, query: dict[str, str], header: str, param: str) -> str | None:
        """What a request gives in `place`: the header, the query parameter, the bearer token
        (`bearer`), or the header or else the query parameter (`any`)."""
        if place == "bearer":
            authorization = headers.get("Authorization") or ""
            return authorization[len("Bearer ") :] if authorization.startswith("Bearer ") else None
        if place == "header":
            return headers.get(header)
        if place == "query":
            return query.get(param)
        return headers.get(header) or query.get(param)

    def _fields(self, body: bytes | None, query: dict[str, str]) -> dict[str, Any]:
        if body is None:
            return query
        try:
            fields = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _BadRequest("the body must be a JSON object") from None
        if not isinstance(fields, dict):
            raise _BadRequest("the body must be a JSON object")
        return fields

    def _window(self, fields: dict[str, Any]) -> tuple[int, int, int, int]:
        """(start_ms, end_ms, page size, offset) of a request, or _BadRequest."""
        values = {}
        for name, default in (("start", None), ("end", None), ("limit", 0), ("offset", 0)):
            raw = fields.get(name, default)
            if raw is None:
                raise _BadRequest(f"'{name}' is required")
            try:
                value = int(raw) if isinstance(raw, (int, str)) and not isinstance(raw, bool) else None
            except ValueError:
                value = None
            if value is None or value < 0:
                raise _BadRequest(f"'{name}' must be a non-negative integer, got {raw!r}")
            values[name] = value
        scale = 1000 if self.config.epoch_unit == "s" else 1
        start_ms, end_ms = values["start"] * scale, values["end"] * scale
        if end_ms < start_ms:
            raise _BadRequest("'end' is before 'start'")
        if end_ms - start_ms > MAX_WINDOW_MS:
            raise _BadRequest("end - start must not be more than 7 days")
        limit = values["limit"] or self.config.default_page_size
        return start_ms, end_ms, min(limit, self.config.max_page_size), values["offset"]

    def _over_rate_limit(self, arrived: float, provider: str) -> int | None:
        """None if the request is within its key's rate limit (it is counted then); otherwise
        the whole seconds until the key's window has room again (a 429's Retry-After). A
        provider has one key: its requests are the key's."""
        if not self.config.rate_limit:
            return None
        with self._lock:
            answered = self._answered[provider]
            while answered and answered[0] <= arrived - 1.0:
                answered.popleft()
            if len(answered) < self.config.rate_limit:
                answered.append(arrived)
                return None
            self.rate_limited += 1
            return max(1, math.ceil(answered[0] + 1.0 - arrived))

    def _next_fault(self) -> ScriptedResponse | None:
        with self._lock:
            while self._scripted:
                scripted = next(self._scripted[0], None)
                if scripted is not None:
                    return scripted
                self._scripted.popleft()
            if not self.config.hostile:
                return None
            kind = HOSTILE_CYCLE[self._data_requests % len(HOSTILE_CYCLE)]
            self._data_requests += 1
        if kind == "ok":
            return None
        if kind == "reset":
            return ScriptedResponse(0, b"")
        if kind == "429-retry-after":
            return ScriptedResponse(429, _error("slow down"), {"Retry-After": str(self.config.retry_after_seconds)})
        if kind == "429":
            return ScriptedResponse(429, _error("rate limited"))
        status, style = int(kind[:3]), kind[4:]
        if style == "html":
            body = b"<html><head><title>Service Unavailable</title></head><body><h1>503</h1></body></html>"
            return ScriptedResponse(status, body, {"Content-Type": "text/html"})
        return ScriptedResponse(status, b"upstream error, try again", {"Content-Type": "text/plain"})

    @property
    def dataset(self) -> SyntheticDataset:
        """The data of the main provider (config.provider_id)."""
        return self.datasets[self.config.provider_id]

    def _sequence(self, provider: str, path: str, csid: str | None, start_ms: int, end_ms: int) -> list[bytes]:
        """The messages the window serves, in order: retention applied, hostile repeats added."""
        now_ms = int(self.now() * 1000)
        start_ms = max(start_ms, now_ms - self.config.retention_days * DAY_MS)
        end_ms = min(end_ms, now_ms)
        key = (provider, path, csid, start_ms, end_ms)
        with self._lock:
            if key in self._sequences:
                self._sequences.move_to_end(key)
                return self._sequences[key]
        if end_ms <= start_ms:
            sequence: list[bytes] = []
        elif path != self.config.provider_path:  # the customer-session endpoint
            sequence = self.datasets[provider].journey_payloads(csid or "", start_ms, end_ms)
        else:
            sequence = self.datasets[provider].payloads_between(start_ms, end_ms)
        if self.config.hostile:
            sequence = _with_repeats(sequence, self.config.max_page_size)
        if self.config.sessionid_type == "number":
            sequence = [_SESSIONID_STRING.sub(rb'"sessionid":\1', payload) for payload in sequence]
        if self.config.ts_type == "string":
            sequence = [_TS_INTEGER.sub(rb'"ts":"\1"', payload) for payload in sequence]
        with self._lock:
            self._sequences[key] = sequence
            while len(self._sequences) > SEQUENCE_CACHE:
                self._sequences.popitem(last=False)
        return sequence

    def _record(self, method: str, path: str, status: int, payload: bytes, **details: Any) -> ScriptedResponse:
        with self._lock:
            self.requests.append(RequestRecord(method, path, status, **details))
        return ScriptedResponse(status, payload)


def provider_seed(provider_id: str) -> int:
    """What a provider adds to the simulator's seed, so that each serves its own data, the
    same on every run: 0 for the default provider id, whose data stays what it always was."""
    return 0 if provider_id == SimulatorConfig.provider_id else zlib.crc32(provider_id.encode()) % 100_000


def _id_in_path(template: str, path: str) -> str | None:
    """The customer-session id that `path` holds where `template` has {customersessionid}."""
    prefix, found, suffix = template.partition(CUSTOMERSESSIONID_FIELD)
    if not found or len(path) <= len(prefix) + len(suffix) or not path.startswith(prefix) or not path.endswith(suffix):
        return None
    middle = path[len(prefix) : len(path) - len(suffix)]
    return None if "/" in middle else unquote(middle)


def _text(value: Any) -> str | None:
    return None if value is None else value if isinstance(value, str) else orjson.dumps(value).decode()


def _with_repeats(sequence: list[bytes], every: int) -> list[bytes]:
    """The sequence with the message before each multiple of `every` served twice, as when a
    message is inserted behind an offset cursor: the page boundary repeats a row, none is lost."""
    repeated: list[bytes] = []
    for start in range(0, len(sequence), every):
        chunk = sequence[start : start + every]
        repeated.extend(chunk)
        if len(chunk) == every:
            repeated.append(chunk[-1])
    return repeated


def _error(message: str) -> bytes:
    return orjson.dumps({"error": message})


class _Drip(io.BufferedIOBase):
    """A writer that sends one byte at a time, `seconds` apart: a slow or hostile server. It
    stands in for the handler's `wfile`, of which the handler only calls write()."""

    def __init__(self, stream: Any, seconds: float) -> None:
        self._stream = stream
        self._seconds = seconds

    def write(self, data: ReadableBuffer, /) -> int:
        payload = bytes(data)
        for index in range(len(payload)):
            self._stream.write(payload[index : index + 1])
            self._stream.flush()
            time.sleep(self._seconds)
        return len(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (dlt's parallel extract does, as its threads end) is not
        the server's error: no traceback for it."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart
    simulator: LoopbackServer

    def do_GET(self) -> None:
        self._handle(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._handle(self.rfile.read(length) if length else b"")

    def _handle(self, body: bytes) -> None:
        answer = self.simulator.answer(self.command, self.path, self.headers, body)
        if self.simulator.latency_ms:  # in this request's own thread: others go on
            time.sleep(self.simulator.latency_ms / 1000)
        if answer.status == 0:  # a dropped connection
            self.close_connection = True
            return
        headers = dict(answer.headers)
        payload = answer.body
        declared_length = int(headers.pop("Content-Length", len(payload)))
        stream = self.wfile
        try:
            if answer.drip_headers:
                self.wfile = _Drip(stream, answer.drip_seconds)
            self.send_response(answer.status)
            self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
            self.send_header("Content-Length", str(declared_length))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            (_Drip(stream, answer.drip_seconds) if answer.drip_seconds else stream).write(payload)
        except OSError:  # the client hung up on a dripping answer
            self.close_connection = True
        finally:
            self.wfile = stream
        if declared_length > len(payload):  # the body is cut short: drop the connection
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass
