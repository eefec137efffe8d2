"""Connection settings of the Digital Engagement data API: every gap the vendor's article leaves
is a setting here (docs/api.md)."""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import quote, urlsplit

from de_pipeline.env import DAY_SECONDS, Env, SettingsError

_log = logging.getLogger(__name__)

PROVIDER_PATH = "/api/v1/redacted/provider"
CUSTOMER_SESSION_PATH = "/api/v1/redacted/customersession"
DAY_MS = 86_400_000  # 24 hours; a calendar day in DE_TIMEZONE may have 23 or 25
MAX_WINDOW_MS = 7 * DAY_MS  # the API refuses windows longer than 7 days
RETENTION_DAYS = 365  # the vendor keeps message history for one year
HOUR_SECONDS = 3_600  # the bound of one request's timeouts: a longer wait only hides a dead server


# In DE_CUSTOMER_SESSION_PATH, where the id stands when it is part of the path
CUSTOMERSESSIONID_FIELD = "{customersessionid}"
AUTH_FORMS = ("bearer", "query", "header")  # DE_AUTH_IN: where the key goes
_TOKEN = re.compile(r"[A-Za-z0-9_.~-]+")  # a name safe as it is in a query string and as a header
# Names the requests use for something else (compared in lower case): the key's query
# parameter or header must have another
_TAKEN_PARAMS = {"start", "end", "limit", "offset", "interval", "customersessionid", "providerid", "partnerid"}
_TAKEN_HEADERS = {"content-type", "accept", "providerid", "partnerid", "host", "content-length"}


@dataclass(frozen=True)
class Endpoint:
    """How one endpoint is asked; a new endpoint is one more of these. Its method and path are
    the ApiSettings fields `method_setting` and `path_setting` (settings, since the vendor's
    article gives neither). A GET sends start/end/limit/offset (and `fixed`) in the query
    string, a POST in a JSON body."""

    method_setting: str
    path_setting: str
    fixed: tuple[tuple[str, str], ...] = ()  # fields sent as they are


# The bulk export of every message of the provider in a window. The article asks for
# "interval": "1d"; the server ignores it.
PROVIDER = Endpoint("provider_method", "provider_path", (("interval", "1d"),))
# The messages of one customer session: its id in the query string (GET) or the body (POST),
# or in the path where DE_CUSTOMER_SESSION_PATH holds {customersessionid}.
CUSTOMER_SESSION = Endpoint("customer_session_method", "customer_session_path")


def customer_session_target(path: str, customersessionid: str) -> tuple[str, dict[str, str]]:
    """The path that asks for one customer session, and the fields that name it: the id
    URL-quoted in the path where `path` holds {customersessionid}, otherwise a field."""
    if CUSTOMERSESSIONID_FIELD in path:
        return path.replace(CUSTOMERSESSIONID_FIELD, quote(customersessionid, safe="")), {}
    return path, {"customersessionid": customersessionid}


@dataclass(frozen=True)
class ApiSettings:
    """Everything the client needs to talk to one account. `api_key` is never printed."""

    base_url: str
    api_key: str = field(repr=False)
    provider_id: str
    epoch_unit: str = "s"  # unit of `start`/`end` on the wire: "s" or "ms"
    page_size: int = 1000
    providerid_in: str = "header"  # "header", "query" or "both"
    # Where the key goes: "bearer" (Authorization: Bearer, the article's form), "query" (the
    # query parameter `api_key_param`, an older help page's form) or "header" (`api_key_header`)
    auth_in: str = "bearer"
    api_key_param: str = "apiKey"
    api_key_header: str = "apikey"
    partner_id: str | None = None  # sent where the key goes: query `partnerId`, else header `partnerid`
    provider_method: str = "POST"  # not a setting: the article shows the bulk export's JSON body
    provider_path: str = PROVIDER_PATH
    customer_session_method: str = "GET"
    customer_session_path: str = CUSTOMER_SESSION_PATH  # may hold {customersessionid}
    max_requests_per_second: float = 20.0  # for the whole process: all clients share it
    max_in_flight: int = 8  # DE_MAX_IN_FLIGHT: windows (days, or parts of days) fetched at once
    connect_timeout: float = 10.0
    read_timeout: float = 60.0  # DE_REQUEST_TIMEOUT: the longest silence while reading
    # DE_REQUEST_DEADLINE_SECONDS: the most one try may take, from connecting to the body's
    # last byte (redirects included); it bounds a server that drips its answer byte by byte
    request_deadline_seconds: float = 120.0
    max_retries: int = 8
    retry_max_seconds: float = 300.0
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    # A 7-day window of an account with a million messages a day, served 100 rows a page, is
    # 70,000 pages: no real account reaches this, and a server that never says `[]` stops here
    # instead of filling the disk.
    max_pages_per_window: int = 100_000
    max_page_bytes: int = 64 << 20  # decoded; 1000 simulated messages are about 0.5 MB

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings | None:
        """Settings for the real API, or None when DE_API_BASE_URL is unset (use the simulator)."""
        env = Env(environ)
        base_url = base_url_from_env(env)
        if base_url is None:
            if env.raw("DE_API_KEY") is not None:
                raise SettingsError(
                    "DE_API_KEY is set but DE_API_BASE_URL is not: set DE_API_BASE_URL to "
                    "use the real API, or unset DE_API_KEY to use the embedded simulator"
                )
            return None
        return replace(
            cls.shared_from_env(environ),
            base_url=base_url,
            api_key=env.required("DE_API_KEY", "the API key is needed with DE_API_BASE_URL"),
            provider_id=env.required("DE_PROVIDER_ID", "the provider (account) id is needed with DE_API_BASE_URL"),
        )

    @classmethod
    def shared_from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        """The settings every account shares, real API or simulator, with the account's own
        (base URL, key, provider id) empty: an account's settings are a copy with those
        replaced. Each number has an upper bound too: a huge timeout overflows the timers of
        the socket and of the deadline's watchdog, and a huge count never ends."""
        env = Env(environ)
        default = cls(base_url="", api_key="", provider_id="")  # the declared defaults
        return replace(
            default,
            epoch_unit=env.choice("DE_EPOCH_UNIT", default.epoch_unit, ("s", "ms")),
            page_size=env.integer("DE_PAGE_SIZE", default.page_size, minimum=0, maximum=100_000),
            providerid_in=env.choice("DE_PROVIDERID_IN", default.providerid_in, ("header", "query", "both")),
            provider_path=checked_path(env, "DE_PROVIDER_PATH", default.provider_path),
            customer_session_path=checked_path(
                env, "DE_CUSTOMER_SESSION_PATH", default.customer_session_path, customer_session=True
            ),
            # where the key, the partner id and the customer-session id go, and with which
            # method: the vendor's texts disagree on each (docs/api.md), `de-pipeline check` finds out
            auth_in=env.choice("DE_AUTH_IN", default.auth_in, AUTH_FORMS),
            api_key_param=_checked_name(env, "DE_API_KEY_PARAM", default.api_key_param, _TAKEN_PARAMS),
            api_key_header=_checked_name(env, "DE_API_KEY_HEADER", default.api_key_header, _TAKEN_HEADERS),
            partner_id=_checked_header_value(env, "DE_PARTNER_ID"),
            customer_session_method=env.choice(
                "DE_CUSTOMER_SESSION_METHOD", default.customer_session_method.lower(), ("get", "post")
            ).upper(),
            max_requests_per_second=env.number(
                "DE_MAX_REQUESTS_PER_SECOND", default.max_requests_per_second, minimum=0.1, maximum=10_000
            ),
            max_in_flight=env.integer("DE_MAX_IN_FLIGHT", default.max_in_flight, minimum=1, maximum=64),
            read_timeout=env.number("DE_REQUEST_TIMEOUT", default.read_timeout, minimum=0.1, maximum=HOUR_SECONDS),
            request_deadline_seconds=env.number(
                "DE_REQUEST_DEADLINE_SECONDS", default.request_deadline_seconds, minimum=0.1, maximum=HOUR_SECONDS
            ),
            # past 1023 retries the backoff's 2**n no longer fits a float
            max_retries=env.integer("DE_MAX_RETRIES", default.max_retries, minimum=0, maximum=100),
            retry_max_seconds=env.number(
                "DE_RETRY_MAX_SECONDS", default.retry_max_seconds, minimum=0, maximum=DAY_SECONDS
            ),
            # a longer base than the backoff's ceiling would wait the ceiling anyway
            backoff_base_seconds=env.number(
                "DE_RETRY_BACKOFF_SECONDS",
                default.backoff_base_seconds,
                minimum=0,
                maximum=default.backoff_max_seconds,
            ),
            max_pages_per_window=env.integer(
                "DE_MAX_PAGES_PER_WINDOW", default.max_pages_per_window, minimum=1, maximum=10_000_000
            ),
            max_page_bytes=env.integer("DE_MAX_PAGE_BYTES", default.max_page_bytes, minimum=1, maximum=1 << 30),
        )

    @property
    def source(self) -> str:
        """Where data comes from, as recorded in the warehouse: base URL plus provider id."""
        return f"{self.base_url} provider={self.provider_id}"


def base_url_from_env(env: Env) -> str | None:
    """DE_API_BASE_URL, checked; None when unset (the embedded simulator)."""
    base_url = env.text("DE_API_BASE_URL")
    return None if base_url is None else checked_base_url(base_url, env.flag("DE_ALLOW_INSECURE_HTTP"))


def checked_base_url(
    value: str, allow_insecure_http: bool, setting: str = "DE_API_BASE_URL", key_setting: str = "DE_API_KEY"
) -> str:
    """The base URL; plain http only to this machine, or when DE_ALLOW_INSECURE_HTTP says so
    (the key would travel in clear text). `setting` names it in the error (an account's
    `base_url` in DE_PROVIDERS_FILE is checked here too)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{setting}={value!r} is not an http(s) URL such as https://api.example.com")
    if parts.username or parts.password:
        raise SettingsError(f"{setting} must not carry credentials; use {key_setting}")
    base_url = value.rstrip("/")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname or ""):
        if not allow_insecure_http:
            raise SettingsError(
                f"{setting}={value!r} would send the API key unencrypted to another "
                "machine: use https, or set DE_ALLOW_INSECURE_HTTP=1 to accept that"
            )
        _warn_insecure_http(base_url)
    return base_url


def is_loopback_host(host: str) -> bool:
    """Whether a URL's host (as urlsplit gives it) is this machine: localhost, 127.0.0.0/8, ::1."""
    if host == "localhost":  # urlsplit gives the host in lower case
        return True
    try:
        return ipaddress.ip_address(host).is_loopback  # 127.0.0.0/8 and ::1
    except ValueError:
        return False


@functools.cache  # settings are read for every run and asset: say it once per process and URL
def _warn_insecure_http(base_url: str) -> None:
    _log.warning("DE_ALLOW_INSECURE_HTTP=1: the API key goes unencrypted over plain http to %s", base_url)


def _checked_name(env: Env, name: str, default: str, taken: set[str]) -> str:
    """The name of a query parameter or header: URL- and header-safe, not one the request uses."""
    value = env.text(name, default)
    if not _TOKEN.fullmatch(value):
        raise SettingsError(f"{name}={value!r} must be a name of letters, digits and _ . ~ -")
    if value.lower() in taken:
        raise SettingsError(f"{name}={value!r} is a name the request already uses for something else")
    return value


def _checked_header_value(env: Env, name: str) -> str | None:
    value = env.raw(name)
    if value is not None and not value.isprintable():
        raise SettingsError(f"{name} holds a control character; it is sent in a header or query string")
    return value


def checked_path(env: Env, name: str, default: str, customer_session: bool = False) -> str:
    """An endpoint's path; a customer session's may hold {customersessionid}, once."""
    value = env.text(name, default)
    if not value.startswith("/"):
        raise SettingsError(f"{name}={value!r} must be a path starting with '/'")
    rest = value.replace(CUSTOMERSESSIONID_FIELD, "", 1) if customer_session else value
    if any(char in rest for char in "{}?#"):
        allowed = f" ({CUSTOMERSESSIONID_FIELD} may stand in it once)" if customer_session else ""
        raise SettingsError(f"{name}={value!r} must be a plain path, without braces, '?' or '#'{allowed}")
    return value
