"""The client of the Digital Engagement data API: both endpoints, paged, throttled and retried.

It yields pages as raw JSON bytes, one at a time, so that memory does not grow with the
range and the caller can hand the bytes to a bulk JSON reader.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import requests
import simdjson

from de_pipeline.api.deadline import DeadlineAdapter, Watchdog
from de_pipeline.api.errors import (
    ApiAuthError,
    ApiBadRequestError,
    ApiError,
    ApiNotFoundError,
    ApiRedirectError,
    ApiResponseError,
    ApiRetriesExhausted,
    ApiStatusError,
    scrub,
    server_message,
)
from de_pipeline.api.limiter import RateLimiter, shared_limiter
from de_pipeline.api.settings import CUSTOMER_SESSION, PROVIDER, ApiSettings, Endpoint, customer_session_target
from de_pipeline.api.windows import Window, split_window

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
TRANSIENT_EXCEPTIONS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
# requests' .content reads in 10 KiB chunks; one read per MiB is ~40% cheaper for a page
BODY_CHUNK_BYTES = 1 << 20
ERROR_BODY_BYTES = 64 << 10  # an error shows a few hundred characters of its body at most
MAX_REDIRECTS = 5  # same-origin ones; a loop stops here
DEFAULT_PORTS = {"http": 80, "https": 443}
SAME_PAGE_LIMIT = 3  # a server that ignores `offset` answers the same page forever
PREVIEW_CHARS = 120  # how much of a body that is not JSON an error shows
# simdjson's errors for a number beyond 64 bits or a double; JSON allows any number
SIMDJSON_NUMBER_ERRORS = ("NUMBER_ERROR", "BIGINT_ERROR")
# A ts as parse_records.sql reads it from a string: digits, maybe a fraction of zeros
TS_TEXT = re.compile(r"-?[0-9]+(?:\.0+)?")

_log = logging.getLogger(__name__)


class _KeysInUrls(logging.Filter):
    """Masks, in urllib3's log lines (its debug lines show each request's path and query
    string), the key of every client that sends it as a query parameter (DE_AUTH_IN=query)."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.keys:
            text = record.getMessage()
            for key in self.keys:
                text = scrub(text, key)
            record.msg, record.args = text, ()
        return True


_keys_in_urls = _KeysInUrls()
# A filter sees only the records of its own logger, not of its children: each module of
# urllib3 that may log a URL (a request, a retry, a redirect)
for _name in ("connectionpool", "poolmanager", "util.retry", "connection", "response"):
    logging.getLogger(f"urllib3.{_name}").addFilter(_keys_in_urls)


class _NotUtf8(Exception):
    """The body is not valid UTF-8 (it will be repaired)."""


class _TransientFailure(Exception):
    """A try failed in a way a retry may fix (a reset, a timeout, the deadline)."""


class Logger(Protocol):
    """What the client logs through: a `logging.Logger` or Dagster's `context.log`."""

    def info(self, msg: str, *args: Any) -> None: ...
    def warning(self, msg: str, *args: Any) -> None: ...
    def debug(self, msg: str, *args: Any) -> None: ...


@dataclass(frozen=True)
class Page:
    """One page of an answer: a JSON array of messages, as valid UTF-8 bytes."""

    body: bytes
    rows: int
    window: Window
    offset: int
    number: int
    repaired_utf8: bool = False
    # the epoch milliseconds of its first, middle and last records (None: no readable ts), for
    # windows.TsSample: the page check reads them anyway, no per-record work
    ts_sampled: tuple[int | None, ...] = ()


@dataclass(frozen=True)
class SentRequest:
    """A request as it was sent, the key masked (`***`): what a capture records."""

    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any] | None
    headers: dict[str, str]  # those that say who asks: the key's, providerid, partnerid


@dataclass(frozen=True)
class Answer:
    """The server's final answer to one request, whatever its status, the key masked in its
    headers and body; `retried` holds the status and headers of earlier answers to the same
    request that were retried (429, 5xx)."""

    request: SentRequest
    status: int
    headers: dict[str, str]
    body: bytes
    retried: tuple[tuple[int, dict[str, str]], ...] = ()


@dataclass
class ClientStats:
    """Counters of one client's work, for run metadata."""

    requests: int = 0
    retries: int = 0
    refused_429: int = 0  # answers 429 (rate limited), retried like the other transient ones
    pages: int = 0
    rows: int = 0
    repaired_pages: int = 0
    limiter_wait_seconds: float = 0.0  # waiting for a turn of the shared rate limiter

    @classmethod
    def total(cls, parts: Iterable[ClientStats]) -> ClientStats:
        """The counters of several clients (the workers of one fetch), summed."""
        parts = list(parts)
        return cls(**{f.name: sum(getattr(part, f.name) for part in parts) for f in fields(cls)})


class DigitalEngagementClient:
    """Reads messages from the API. Use as a context manager, or call `close()`.

    One client sends one request at a time (its session and deadline watchdog are its own);
    run several, one per thread, to have more in flight. They share the account's rate
    limiter (`shared_limiter`), so the process as a whole keeps DE_MAX_REQUESTS_PER_SECOND.
    """

    def __init__(
        self,
        settings: ApiSettings,
        *,
        logger: Logger | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.settings = settings
        self.stats = ClientStats()
        self._log: Logger = logger or _log
        self._sleep = sleep
        self._clock = clock
        self._limiter = limiter or shared_limiter(settings.base_url, settings.api_key, settings.max_requests_per_second)
        self._json = simdjson.Parser()
        self._watchdog = Watchdog(settings.request_deadline_seconds)
        self._session = requests.Session()
        # requests re-reads proxy and CA settings from the environment on every request
        # (about 1 ms each, and a ~/.netrc would replace the bearer token): read them once
        self._session.trust_env = False
        self._session.proxies.update(requests.utils.get_environ_proxies(settings.base_url))
        ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if ca_bundle:
            self._session.verify = ca_bundle
        adapter = DeadlineAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update(
            _key_header(settings) | {"Content-Type": "application/json", "Accept": "application/json"}
        )
        if settings.providerid_in in ("header", "both"):
            self._session.headers["providerid"] = settings.provider_id
        if settings.partner_id is not None and settings.auth_in != "query":
            self._session.headers["partnerid"] = settings.partner_id
        self._query_auth = _query_auth(settings)  # what every request adds to its query string
        if settings.auth_in == "query":
            _keys_in_urls.keys.add(settings.api_key)

    def __enter__(self) -> DigitalEngagementClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()
        self._watchdog.close()

    def provider_pages(self, window: Window) -> Iterator[Page]:
        """Every message of the provider with `window.start_ms <= ts < window.end_ms`, by page."""
        windows = list(split_window(window))
        for number, legal_window in enumerate(windows, 1):
            if len(windows) > 1:  # a window the API's 7-day rule cut; one whole window is the caller's to say
                self._log.info("legal window %d of %d: %s", number, len(windows), legal_window)
            yield from self._pages(PROVIDER, legal_window)

    def customer_session_pages(self, customersessionid: str, window: Window) -> Iterator[Page]:
        """Every message of one customer session (journey) inside `window`, by page."""
        path, named = customer_session_target(self.settings.customer_session_path, customersessionid)
        for legal_window in split_window(window):
            yield from self._pages(CUSTOMER_SESSION, legal_window, path, named)

    def ask(self, method: str, path: str, fields: Mapping[str, Any]) -> Answer:
        """One request formed as the settings say (the key, provider and partner id in their
        places; `fields` in the query string of a GET, in the JSON body otherwise), throttled,
        retried only on a transient failure: the server's final answer, whatever its status.
        For probing a server (api/probe.py); an ApiError if no answer came at all."""
        fields = dict(fields)
        describe = f"{method} {path} " + " ".join(f"{name}={value}" for name, value in fields.items())
        params, json_body = (fields, None) if method == "GET" else (None, fields)
        earlier: list[tuple[int, dict[str, str]]] = []
        response, body = self._send(method, path, describe, params=params, json_body=json_body, answers=earlier)
        key = self.settings.api_key
        sent_query = {name: scrub(str(value), key) for name, value in ((params or {}) | self._query_auth).items()}
        who = {"authorization", self.settings.api_key_header.lower(), "providerid", "partnerid"}
        sent_headers = {name: scrub(value, key) for name, value in self._session.headers.items() if name.lower() in who}
        return Answer(
            SentRequest(method, path, sent_query, json_body, sent_headers),
            response.status_code,
            {name: scrub(value, key) for name, value in response.headers.items()},
            scrub(body.decode("utf-8", "replace"), key).encode("utf-8"),
            tuple(
                (status, {name: scrub(value, key) for name, value in headers.items()})
                for status, headers in earlier[:-1]
            ),
        )

    def _pages(
        self, endpoint: Endpoint, window: Window, path: str | None = None, named: dict[str, str] | None = None
    ) -> Iterator[Page]:
        """Pages of one legal window, advancing `offset` by the rows received until `[]`;
        `named` are the fields that name what is asked (a customer session's id)."""
        method = getattr(self.settings, endpoint.method_setting)
        path = path or getattr(self.settings, endpoint.path_setting)
        offset = 0
        number = 0
        progress = 0.0  # how far through the window the last page reached, for the limiter
        previous_body = b""
        same_body_count = 0
        while True:
            fields = self._window_fields(window, offset) | dict(endpoint.fixed)
            named = named or {}
            query_text = "".join(f" {name}={value}" for name, value in named.items())
            describe = f"{method} {path}{query_text} window {window} offset {offset}"
            if method == "GET":
                body = self._request(method, path, describe, progress, params=named | fields)
            else:
                body = self._request(method, path, describe, progress, json_body=fields | named)
            body, rows, ts_sampled, repaired = self._checked_array(body, describe)
            if rows == 0:
                return
            if number == self.settings.max_pages_per_window:
                raise ApiResponseError(
                    describe,
                    f"the window has more than {number} pages and the server still sends more; "
                    "raise DE_MAX_PAGES_PER_WINDOW if the account really holds that much",
                )
            same_body_count = same_body_count + 1 if body == previous_body else 1
            if same_body_count >= SAME_PAGE_LIMIT:
                raise ApiResponseError(
                    describe,
                    f"the server returned the same {rows}-row page {same_body_count} times in a "
                    "row while the offset advanced; it seems to ignore `offset`",
                )
            previous_body = body
            number += 1
            self.stats.pages += 1
            self.stats.rows += rows
            self.stats.repaired_pages += repaired
            _log.debug("%s: page %d, %d rows", describe, number, rows)  # not the run's event log
            yield Page(body, rows, window, offset, number, repaired, ts_sampled)
            offset += rows
            last_ts = ts_sampled[-1]
            progress = window.progress(last_ts) if last_ts is not None else progress

    def _window_fields(self, window: Window, offset: int) -> dict[str, int]:
        if self.settings.epoch_unit == "s":
            if window.start_ms % 1000 or window.end_ms % 1000:
                raise ValueError(f"window {window} is not in whole seconds (DE_EPOCH_UNIT=s)")
            start, end = window.start_ms // 1000, window.end_ms // 1000
        else:
            start, end = window.start_ms, window.end_ms
        return {"start": start, "end": end, "limit": self.settings.page_size, "offset": offset}

    def _checked_array(self, body: bytes, describe: str) -> tuple[bytes, int, tuple[int | None, ...], bool]:
        """The body as valid UTF-8, its number of elements, the `ts` of a few of them
        (_array_elements), and whether it was repaired; an error if not a JSON array."""
        try:
            return body, *self._count_elements(body, describe), False
        except _NotUtf8:
            pass
        try:
            body.decode("utf-8")
            reason = "rejected by the JSON parser"
        except UnicodeDecodeError as exc:
            reason = f"{exc.reason} at byte {exc.start}"
        self._log.warning(
            "%s: the body is not valid UTF-8 (%s); invalid bytes were replaced by U+FFFD",
            describe,
            reason,
        )
        body = body.decode("utf-8", "replace").encode("utf-8")
        return body, *self._count_elements(body, describe), True

    def _count_elements(self, body: bytes, describe: str) -> tuple[int, tuple[int | None, ...]]:
        """Validate the whole body (UTF-8 and JSON) and count the array's elements, without
        building Python objects: the count, and the `ts` of a few elements (_array_elements).
        _NotUtf8 if the body is not UTF-8."""
        try:
            document = self._json.parse(body)
        except UnicodeDecodeError:
            raise _NotUtf8 from None
        except (ValueError, RuntimeError) as exc:  # "TAPE_ERROR: ...", "DEPTH_ERROR: ..."
            if "UTF8" in str(exc):
                raise _NotUtf8 from None
            if str(exc).startswith(SIMDJSON_NUMBER_ERRORS) and (parsed := _with_any_number(body)) is not None:
                return _array_elements(parsed, describe)
            raise self._not_json(body, describe, exc) from None
        try:
            return _array_elements(document, describe)
        finally:
            del document  # the parser is reused for the next page

    def _not_json(self, body: bytes, describe: str, exc: Exception) -> ApiResponseError:
        reason = str(exc).split(":", 1)[-1].split(".")[0].strip() or str(exc)
        # scrub before cutting: a key straddling the cut must not leak its first characters.
        # An encoded key takes at most 12 bytes a character: scrubbing that much past the
        # preview's (at most 4-byte) characters is enough, however long the body.
        key = self.settings.api_key
        start = body[: 4 * PREVIEW_CHARS + 12 * len(key)].decode("utf-8", "replace")
        head = scrub(start, key)[:PREVIEW_CHARS]
        preview = server_message(head, key) or "(empty body)"
        return ApiResponseError(describe, f"the body is not valid JSON ({reason}); it begins: {preview}")

    def _request(
        self,
        method: str,
        path: str,
        describe: str,
        progress: float = 0.0,
        *,
        params: dict[str, Any] | None = None,
        json_body: dict[str, Any] | None = None,
    ) -> bytes:
        """The body of a 200 answer, after throttling and retrying transient failures."""
        response, body = self._send(method, path, describe, progress, params=params, json_body=json_body)
        if response.status_code != 200:
            raise self._status_error(response, body, describe, self.settings.base_url + path)
        return body

    def _send(
        self,
        method: str,
        path: str,
        describe: str,
        progress: float = 0.0,
        *,
        params: dict[str, Any] | None = None,
        json_body: dict[str, Any] | None = None,
        answers: list[tuple[int, dict[str, str]]] | None = None,
    ) -> tuple[requests.Response, bytes]:
        """The final answer and its body, after throttling and retrying transient failures;
        `answers` collects the status and headers of every answer, the retried ones too."""
        url = self.settings.base_url + path
        params = dict(params or {}) | self._query_auth
        data = json.dumps(json_body).encode() if json_body is not None else None
        started = self._clock()
        attempt = 0
        while True:
            self.stats.limiter_wait_seconds += self._limiter.acquire(progress)
            retry_after: float | None = None
            said = ""
            try:
                response, body = self._attempt(method, url, params or None, data, describe)
            except _TransientFailure as exc:
                failure = str(exc)
            else:
                if answers is not None:
                    answers.append((response.status_code, dict(response.headers)))
                if response.status_code not in RETRYABLE_STATUSES:
                    return response, body
                failure = f"HTTP {response.status_code}"
                self.stats.refused_429 += response.status_code == 429
                said = server_message(body, self.settings.api_key)
                retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            attempt += 1
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            spent = self._clock() - started
            if attempt > self.settings.max_retries or spent + delay > self.settings.retry_max_seconds:
                raise ApiRetriesExhausted(
                    describe,
                    f"gave up after {attempt} attempts in {spent:.1f}s; last failure: {failure}"
                    + (f" with Retry-After {retry_after:g}s" if retry_after is not None else ""),
                    said,
                )
            self.stats.retries += 1
            self._log.warning(
                "%s on %s; retry %d of %d in %.2fs",
                failure,
                describe,
                attempt,
                self.settings.max_retries,
                delay,
            )
            if retry_after is not None:  # the server's word is for the whole key: every worker waits
                self._limiter.pause(delay)
            else:
                self._sleep(delay)

    def _attempt(
        self, method: str, url: str, params: dict[str, Any] | None, data: bytes | None, describe: str
    ) -> tuple[requests.Response, bytes]:
        """One try, cut short after DE_REQUEST_DEADLINE_SECONDS: the answer and its body.
        _TransientFailure if it failed in a way a retry may fix."""
        key = self.settings.api_key
        with self._watchdog as watchdog:
            try:
                answer = self._exchange(method, url, params, data, describe)
            except requests.RequestException as exc:
                if not (watchdog.expired or isinstance(exc, TRANSIENT_EXCEPTIONS)):
                    raise ApiError(describe, f"the request failed: {scrub(str(exc), key)}") from None
                failure = f"{type(exc).__name__}: {scrub(str(exc), key)}"
            else:
                failure = ""
        if watchdog.expired:  # whatever the cut left, even a body that looks complete
            failure = f"no complete answer within {watchdog.seconds:g}s (DE_REQUEST_DEADLINE_SECONDS)"
        if failure:
            raise _TransientFailure(failure)
        return answer

    def _exchange(
        self, method: str, url: str, params: dict[str, Any] | None, data: bytes | None, describe: str
    ) -> tuple[requests.Response, bytes]:
        """The final answer and its body, through same-origin redirects.

        A redirect to another origin (scheme, host or port) is refused: the key must go only
        where DE_API_BASE_URL says (requests would follow it, and the other host's `[]` would
        empty the day). A same-origin one (a path moved) is followed, re-sending the same
        method and body: each endpoint answers one method, so turning a POST into a GET, as
        browsers do on 301-303, could only fail.
        """
        key = self.settings.api_key
        for _ in range(MAX_REDIRECTS + 1):
            self.stats.requests += 1
            response = self._session.request(
                method,
                url,
                params=params,
                data=data,
                timeout=(self.settings.connect_timeout, self.settings.read_timeout),
                stream=True,  # the body is read here, inside the caller's retry guard
                allow_redirects=False,
            )
            with response:
                target = self._session.get_redirect_target(response)
                if target is None:
                    return response, self._body(response, describe)
            target = urljoin(response.url, target)
            if not _same_origin(response.url, target):
                raise ApiRedirectError(
                    describe,
                    f"{scrub(response.url, key)} redirects (HTTP {response.status_code}) to "
                    f"{scrub(target, key)}, another origin; the key is only sent to the scheme, "
                    "host and port of DE_API_BASE_URL: if the API moved, set it there",
                )
            url, params = target, None  # the new URL holds the query already
        raise ApiRedirectError(describe, f"more than {MAX_REDIRECTS} redirects; the last to {scrub(url, key)}")

    def _body(self, response: requests.Response, describe: str) -> bytes:
        """The body, decoded (gzip and the like): a page's up to DE_MAX_PAGE_BYTES, an error
        past it; an error answer's cut at ERROR_BODY_BYTES. Reading stops one chunk past the
        limit, and urllib3 (>= 2.6) decodes no more than a chunk at a time: a gzip bomb costs
        a chunk or two of memory, not its decoded size."""
        limit = self.settings.max_page_bytes if response.status_code == 200 else ERROR_BODY_BYTES
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(BODY_CHUNK_BYTES):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                if response.status_code == 200:
                    raise ApiResponseError(
                        describe,
                        f"the body is over {limit} bytes once decoded (DE_MAX_PAGE_BYTES); raise "
                        "it, or lower DE_PAGE_SIZE, if pages of this account really are that big",
                    )
                break
        return b"".join(chunks)[:limit]

    def _status_error(self, response: requests.Response, body: bytes, describe: str, url: str) -> ApiError:
        status = response.status_code
        said = server_message(body, self.settings.api_key)
        if status == 400:
            return ApiBadRequestError(describe, "the server refused the request (HTTP 400)", said)
        if status == 401:
            return ApiAuthError(
                describe,
                "the API key was refused (HTTP 401); check DE_API_KEY, and DE_AUTH_IN "
                f"(sent as {self.settings.auth_in}; `de-pipeline check` finds the form the server takes)",
                said,
            )
        if status == 403:
            return ApiAuthError(
                describe,
                f"provider {self.settings.provider_id!r} is not allowed for this key (HTTP 403); check DE_PROVIDER_ID"
                " and DE_PROVIDERID_IN",
                said,
            )
        if status == 404:
            return ApiNotFoundError(
                describe,
                f"nothing is served at {url} (HTTP 404); check DE_API_BASE_URL and the path settings",
                said,
            )
        return ApiStatusError(describe, f"unexpected HTTP {status}", said)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with equal jitter: half fixed, half random."""
        ceiling = min(self.settings.backoff_max_seconds, self.settings.backoff_base_seconds * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def _array_elements(document: Any, describe: str) -> tuple[int, tuple[int | None, ...]]:
    """The number of elements of a parsed array (simdjson's or Python's), and the epoch
    milliseconds of its first, middle and last elements, the last one last (None where an
    element has no readable `ts`; none for an empty array); an error if it is not an array."""
    if not isinstance(document, simdjson.Array | list):
        kind = "dict" if isinstance(document, simdjson.Object | dict) else type(document).__name__
        raise ApiResponseError(describe, f"the body is a JSON {kind}, not an array of messages")
    count = len(document)
    picked = sorted({0, count // 2, count - 1}) if count else []
    return count, tuple(_ts_of(document[index]) for index in picked)


def _ts_of(element: Any) -> int | None:
    """An element's `ts` as parse_records.sql reads it: an integer, a number whose fraction
    is zeros, or a string of either; None for anything else."""
    ts = element.get("ts") if isinstance(element, simdjson.Object | dict) else None
    if type(ts) is float and ts.is_integer():
        return int(ts)
    if type(ts) is str and TS_TEXT.fullmatch(ts):
        return int(ts.split(".")[0])
    return ts if type(ts) is int else None


def _with_any_number(body: bytes) -> Any:
    """The body parsed by Python's json, which reads any JSON number (1e400, 2**64), or None
    if it is not JSON. simdjson refuses such numbers, which JSON allows and the archive keeps as
    sent (parse_records.sql rejects the record), so one odd number refused the whole page.
    Slower than simdjson, so only for the rare page that has one."""
    try:
        return json.loads(body, parse_int=_json_int, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return None


def _json_int(text: str) -> int | float:
    # a 64-bit-sized ts stays an int; a longer one would cost int()'s quadratic time (or its limit)
    return int(text) if len(text) <= 20 else float(text)


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: Python's json accepts them


def _key_header(settings: ApiSettings) -> dict[str, str]:
    """The header that carries the key, if the key goes in a header."""
    if settings.auth_in == "bearer":
        return {"Authorization": f"Bearer {settings.api_key}"}
    if settings.auth_in == "header":
        return {settings.api_key_header: settings.api_key}
    return {}


def _query_auth(settings: ApiSettings) -> dict[str, str]:
    """The query parameters every request carries: the provider id, and with DE_AUTH_IN=query
    the key and the partner id (the older help page's `apiKey`, `providerId`, `partnerId`)."""
    params = {"providerId": settings.provider_id} if settings.providerid_in in ("query", "both") else {}
    if settings.auth_in == "query":
        params[settings.api_key_param] = settings.api_key
        if settings.partner_id is not None:
            params["partnerId"] = settings.partner_id
    return params


def _same_origin(url: str, other: str) -> bool:
    """Whether both URLs have the same scheme, host and port (an unparseable one has none)."""
    try:
        return _origin(url) == _origin(other)
    except ValueError:  # a port that is not a number
        return False


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port or DEFAULT_PORTS.get(parts.scheme)


def _retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())
