"""Finds out how a Digital Engagement server wants to be asked (`de-pipeline check`).

The vendor's texts disagree on where the key goes, on the unit of `start`/`end` and on the
customer-session call (docs/api.md). The probe asks the server a bounded number of questions
(MAX_ASKS, each retried at most twice on a transient failure) through the project's client and
its shared rate limiter, and returns what it found, each finding with the answers that show
it, and the settings that worked. It knows HTTP only: the caller matches the placeholder
forms it saw against the warehouse's DE_REDACTION_PATTERN.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from de_pipeline.api.client import Answer, DigitalEngagementClient
from de_pipeline.api.errors import ApiError, server_message
from de_pipeline.api.settings import (
    CUSTOMERSESSIONID_FIELD,
    DAY_MS,
    PROVIDER,
    ApiSettings,
    customer_session_target,
    is_loopback_host,
)
from de_pipeline.api.windows import Window

MAX_ASKS = 20  # questions to the server in one probe (retries of a 429 or 5xx not counted)
PROBE_RETRIES = 2  # retries of one question after a transient failure
PAGE_ASKED = 1000  # `limit` of the paging questions: a page cap below it shows
FAR_OFFSET = 10_000_000  # past any window's rows: the answer shows how an exhausted window ends
MORE_PAGES = 2  # pages asked after the second before asking at FAR_OFFSET
TYPED_FIELDS = ("ts", "sessionid", "customersessionid", "score", "topmatches")
CONTRACT_TYPES = {"ts": "integer", "sessionid": "string", "customersessionid": "string", "score": "number",
                  "topmatches": "array"}  # fmt: skip
RATE_HEADERS = re.compile(r"^(retry-after|x-ratelimit-.*|ratelimit(-.*)?)$", re.IGNORECASE)
COMMON_KEY_HEADER = "x-api-key"  # tried besides DE_API_KEY_HEADER
# the wrapping characters a placeholder may have on each side, and the closing one of each
_MIRROR = {"[": "]", "(": ")", "{": "}", "<": ">"}


class _BudgetSpent(Exception):
    """MAX_ASKS questions were asked."""


class JsonNumber(str):
    """A JSON number as its literal text: `12.10` stays `12.10` (a float would say 12.1)."""


@dataclass(frozen=True)
class Finding:
    """One line of the probe's table: what was looked at, what was found, and the answers that show it."""

    topic: str
    verdict: str
    evidence: str
    ok: bool = True  # False: a problem, or something that differs from the contract


@dataclass(frozen=True)
class Setting:
    """A setting the probe found: its value, its default, and what the environment said."""

    name: str
    value: str
    default: str | None
    configured: str | None

    @property
    def differs_from_default(self) -> bool:
        return self.value != self.default


@dataclass(frozen=True)
class Exchange:
    """One question and its answer (None when none came: `error` says why)."""

    why: str
    answer: Answer | None
    error: str = ""

    @property
    def status(self) -> int | None:
        return None if self.answer is None else self.answer.status

    @property
    def rows(self) -> list[Any] | None:
        """The answer's elements when it is a 200 with a JSON array, else None."""
        if self.answer is None or self.answer.status != 200:
            return None
        parsed = _parsed(self.answer.body)
        return parsed if isinstance(parsed, list) else None

    def said(self) -> str:
        """The answer in a few words: its status and the server's message, or the failure."""
        if self.answer is None:
            return f"no answer ({self.error})"
        rows = self.rows
        if rows is not None:
            return f"HTTP 200, {len(rows)} rows"
        message = server_message(self.answer.body, "")
        return f"HTTP {self.answer.status}" + (f" ({message})" if message else "")


@dataclass
class ProbeResult:
    """What the probe found. `failure` is one line when no working configuration was found."""

    base_url: str
    simulated: bool
    findings: list[Finding] = field(default_factory=list)
    settings: list[Setting] = field(default_factory=list)
    failure: str | None = None
    exchanges: list[Exchange] = field(default_factory=list)
    placeholders: Counter[str] = field(default_factory=Counter)  # e.g. "[PERSON]": how often seen
    messages_seen: int = 0
    anchor_ms: int = 0  # midnight UTC of the probe's day: its windows are days before it

    @property
    def ok(self) -> bool:
        return self.failure is None


def probe(
    settings: ApiSettings,
    *,
    labels: Sequence[str],
    simulated: bool = False,
    now: datetime | None = None,
    max_asks: int = MAX_ASKS,
) -> ProbeResult:
    """Ask the server of `settings` how it wants to be asked; see the module docstring.
    `labels` are the redaction labels to look for in the texts."""
    return _Prober(settings, labels, simulated, now or datetime.now(UTC), max_asks).run()


class _Prober:
    def __init__(
        self, settings: ApiSettings, labels: Sequence[str], simulated: bool, now: datetime, max_asks: int
    ) -> None:
        self.configured = settings
        self.base = replace(settings, max_retries=min(settings.max_retries, PROBE_RETRIES))
        self.labels = labels
        self.max_asks = max_asks
        midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        self.result = ProbeResult(settings.base_url, simulated, anchor_ms=int(midnight.timestamp()) * 1000)
        self.yesterday = Window(self.result.anchor_ms - DAY_MS, self.result.anchor_ms)
        # the 7 days up to the end of today: the most one request may ask
        self.recent = Window(self.result.anchor_ms - 6 * DAY_MS, self.result.anchor_ms + DAY_MS)
        self._clients: dict[ApiSettings, DigitalEngagementClient] = {}
        self.rows: list[Any] = []  # every element seen once, for the types and the placeholders
        self._seen: set[str] = set()
        self.session_form: tuple[str, str] | None = None  # (method, path) of the customer-session call

    def run(self) -> ProbeResult:
        try:
            self._steps()
        except _BudgetSpent:
            self._note("budget", "stopped", f"the probe asks at most {self.max_asks} questions", ok=False)
            self.result.failure = self.result.failure or f"the probe spent its {self.max_asks} questions"
        finally:
            for client in self._clients.values():
                client.close()
        return self.result

    def _steps(self) -> None:
        accepted = self._auth()
        if accepted is None:
            return
        form, first = accepted
        found = self._epoch_unit(form, first)
        if found is None:
            return
        form, window = found
        self._paging(form, window)
        self._types()
        self._placeholders()
        self._rate_headers()
        self._customer_session(form, window)
        self._settings(form)

    # ---- asking -------------------------------------------------------------------------

    def _ask(self, settings: ApiSettings, method: str, path: str, fields: dict[str, Any], why: str) -> Exchange:
        if len(self.result.exchanges) >= self.max_asks:
            raise _BudgetSpent
        client = self._clients.get(settings)
        if client is None:
            client = self._clients[settings] = DigitalEngagementClient(settings)
        try:
            exchange = Exchange(why, client.ask(method, path, fields))
        except ApiError as exc:
            exchange = Exchange(
                why, None, f"{exc.problem}" + (f" ({exc.server_message})" if exc.server_message else "")
            )
        self.result.exchanges.append(exchange)
        for row in exchange.rows or ():
            identity = json.dumps(row, sort_keys=True)
            if identity not in self._seen:
                self._seen.add(identity)
                self.rows.append(row)
        return exchange

    def _provider(self, settings: ApiSettings, window: Window, unit: str, why: str, **paging: int) -> Exchange:
        fields = _window_fields(window, unit) | {"limit": paging.get("limit", 1), "offset": paging.get("offset", 0)}
        return self._ask(settings, settings.provider_method, settings.provider_path, fields | dict(PROVIDER.fixed), why)

    def _note(self, topic: str, verdict: str, evidence: str, *, ok: bool = True) -> None:
        self.result.findings.append(Finding(topic, verdict, evidence, ok))

    def _fail(self, topic: str, verdict: str, evidence: str, failure: str) -> None:
        self._note(topic, verdict, evidence, ok=False)
        self.result.failure = failure

    # ---- reachability and the key's form -----------------------------------------------

    def _auth(self) -> tuple[ApiSettings, Exchange] | None:
        """The first form whose question about yesterday (in seconds: a valid window in either
        unit) gets a 200 with an array; a 400 means the key passed but the question did not."""
        tried: list[tuple[str, Exchange]] = []
        passed_400: tuple[ApiSettings, Exchange] | None = None
        for label, form in _auth_forms(self.base):
            exchange = self._provider(form, self.yesterday, "s", f"key form: {label}")
            if exchange.answer is None and not tried:  # the server cannot be reached: no form does better
                self._fail("reachable", "no", f"{self.base.base_url}: {exchange.error}", _unreachable(exchange))
                return None
            if not tried:
                self._note("reachable", "yes", _transport(self.base.base_url, exchange))
            if exchange.rows is not None:
                refused = f"; refused before: {_said(tried)}" if tried else ""
                self._note("key and provider", label, f"{exchange.said()}{refused}")
                return form, exchange
            tried.append((label, exchange))
            if exchange.status == 400 and passed_400 is None:
                passed_400 = (form, exchange)
        if passed_400 is not None:
            form, exchange = passed_400
            self._note("key and provider", _auth_label(form), f"taken (HTTP 400 is about the question): {_said(tried)}")
            return passed_400
        statuses = sorted({exchange.said().split(" (")[0] for _, exchange in tried})
        self._fail(
            "key and provider",
            "refused in every form",
            _said(tried),
            f"the server refused the key in all {len(tried)} forms tried ({', '.join(statuses)}); "
            "check DE_API_KEY, DE_PROVIDER_ID and DE_PARTNER_ID",
        )
        return None

    # ---- the epoch unit ------------------------------------------------------------------

    def _epoch_unit(self, form: ApiSettings, first: Exchange) -> tuple[ApiSettings, Window] | None:
        """The form with the unit whose answers carry messages with `ts` inside the window
        asked for, and that window (yesterday, or the last 7 days when yesterday is empty)."""
        tried = []
        for window, asked_s in ((self.yesterday, first), (self.recent, None)):
            answers = {
                "s": asked_s or self._provider(form, window, "s", f"epoch unit: {window} in seconds"),
                "ms": self._provider(form, window, "ms", f"epoch unit: {window} in milliseconds"),
            }
            inside = {unit: _all_inside(exchange.rows, window) for unit, exchange in answers.items()}
            said = ", ".join(
                f"{unit}: {exchange.said()}{_ts_note(exchange.rows, window)}" for unit, exchange in answers.items()
            )
            winners = [unit for unit, ok in inside.items() if ok]
            if len(winners) == 1:
                unit = winners[0]
                self._note("epoch unit of start/end", unit, f"{window}: {said}")
                return replace(form, epoch_unit=unit), window
            if len(winners) == 2:
                self._fail(
                    "epoch unit of start/end",
                    "not told apart",
                    f"{window}: {said}; both answers hold the same messages",
                    "the server answered the same messages for a window in seconds and in milliseconds; "
                    "it seems to ignore start/end",
                )
                return None
            tried.append(f"{window}: {said}")
        self._fail(
            "epoch unit of start/end",
            "unknown: no messages",
            "; ".join(tried),
            f"no messages in {self.recent} (UTC) in seconds or milliseconds: DE_EPOCH_UNIT cannot be told; "
            "run check again once the account has messages",
        )
        return None

    # ---- paging ----------------------------------------------------------------------------

    def _paging(self, form: ApiSettings, window: Window) -> None:
        """The page cap (pages asked with limit PAGE_ASKED), the answer past the last row,
        and what `offset` counts."""
        unit = form.epoch_unit
        first = self._provider(form, window, unit, "paging: first page", limit=PAGE_ASKED)
        page = first.rows
        if page is None:
            self._note("paging", "not probed", f"limit {PAGE_ASKED}, offset 0: {first.said()}", ok=False)
            return
        pages, offset, broke = [len(page)], len(page), None
        for _ in range(1 + MORE_PAGES):
            if pages[-1] == 0:
                break
            following = self._provider(form, window, unit, f"paging: offset {offset}", limit=PAGE_ASKED, offset=offset)
            if following.rows is None:
                broke = following
                break
            pages.append(len(following.rows))
            offset += len(following.rows)
        self._note("paging: page cap", *_page_cap(pages))
        self._exhausted(form, window, pages, offset, broke)
        self._offset_unit(form, window, page)

    def _exhausted(
        self, form: ApiSettings, window: Window, pages: list[int], offset: int, broke: Exchange | None
    ) -> None:
        """Whether the offset past a window's last row answers `[]`, the only end of paging."""
        if broke is None and pages[-1] == 0:
            self._note("paging: past the last row", "[]", f"offset {offset}: [] after {len(pages) - 1} pages")
            return
        if broke is None:
            broke = self._provider(
                form, window, form.epoch_unit, f"paging: offset {FAR_OFFSET}", limit=PAGE_ASKED, offset=FAR_OFFSET
            )
            offset = FAR_OFFSET
        if broke.rows == []:
            self._note("paging: past the last row", "[]", f"offset {offset}: []")
            return
        self._fail(
            "paging: past the last row",
            "not []",
            f"offset {offset}: {broke.said()}",
            f"asked past the last row (offset {offset}), the server did not answer []: {broke.said()}",
        )

    def _offset_unit(self, form: ApiSettings, window: Window, page: list[Any]) -> None:
        """Offset 1 with limit 2 answers rows 2-3 when offset counts rows, 3-4 when it counts
        pages, 1-2 when it is ignored."""
        if len(page) < 4:
            self._note("paging: offset counts", "not told", f"the first page held {len(page)} rows; 4 are needed")
            return
        exchange = self._provider(form, window, form.epoch_unit, "paging: offset 1, limit 2", limit=2, offset=1)
        got = exchange.rows
        meanings = {"rows": page[1:3], "pages": page[2:4], "nothing (ignored)": page[0:2]}
        meaning = next((name for name, rows in meanings.items() if got == rows), None)
        evidence = f"offset 1, limit 2: {exchange.said()}" + (
            f", rows {_rows_of(got, page)} of the first page" if got else ""
        )
        if meaning == "rows":
            self._note("paging: offset counts", "rows", evidence)
        else:
            self._fail(
                "paging: offset counts",
                meaning or "unclear",
                evidence,
                f"offset counts {meaning or 'something else than rows'}: de-pipeline advances it by the rows received",
            )

    # ---- what the answers hold -------------------------------------------------------------

    def _types(self) -> None:
        messages = [row for row in self.rows if isinstance(row, dict)]
        self.result.messages_seen = len(messages)
        for name in TYPED_FIELDS:
            kinds: Counter[str] = Counter()
            samples: dict[str, Any] = {}
            for message in messages:
                kind = _json_type(message.get(name, _MISSING))
                kinds[kind] += 1
                samples.setdefault(kind, message.get(name))
            present = [kind for kind, _ in kinds.most_common() if kind not in ("missing", "null")]
            if not present:
                self._note(f"type of {name}", "never present", f"in {len(messages)} messages")
                continue
            ok = all(kind == CONTRACT_TYPES[name] for kind in present)
            shown = ", ".join(f"{kind} x{count}" for kind, count in kinds.most_common())
            examples = "; ".join(f"{kind} e.g. {_shown(samples[kind])}" for kind in present)
            evidence = f"{shown} in {len(messages)} messages; {examples}"
            self._note(f"type of {name}", " and ".join(present), evidence, ok=ok)

    def _placeholders(self) -> None:
        found: Counter[str] = Counter()
        for row in self.rows:
            if isinstance(row, dict) and isinstance(row.get("text"), str):
                found.update(placeholder.group() for placeholder in placeholders_in(row["text"], self.labels))
        self.result.placeholders = found

    def _rate_headers(self) -> None:
        seen: dict[str, Counter[str]] = {}
        answers = [exchange.answer for exchange in self.result.exchanges if exchange.answer is not None]
        for answer in answers:
            for _, headers in (*answer.retried, (answer.status, answer.headers)):
                for name, value in headers.items():
                    if RATE_HEADERS.match(name):
                        seen.setdefault(name, Counter())[value] += 1
        if not seen:
            self._note("rate-limit headers", "none", f"in {len(answers)} answers")
            return
        shown = "; ".join(f"{name}: {', '.join(values)}" for name, values in sorted(seen.items()))
        self._note("rate-limit headers", ", ".join(sorted(seen)), shown)

    # ---- the customer-session call ---------------------------------------------------------

    def _customer_session(self, form: ApiSettings, window: Window) -> None:
        """The first of the forms that answers the messages of a journey seen in the window."""
        csid = next(
            (
                str(row["customersessionid"])
                for row in self.rows
                if isinstance(row, dict) and row.get("customersessionid")
            ),
            None,
        )
        if csid is None:
            self._note("customer-session call", "not probed", "no message with a customersessionid", ok=False)
            return
        tried: list[str] = []
        for method, template in _session_forms(form):
            path, named = customer_session_target(template, csid)
            asked = _window_fields(window, form.epoch_unit) | {"limit": PAGE_ASKED, "offset": 0}
            fields = {**named, **asked} if method == "GET" else {**asked, **named}
            exchange = self._ask(form, method, path, fields, f"customer session: {method} {template}")
            rows = exchange.rows
            label = f"{method} {template}" + (" (id in the query)" if method == "GET" and named else "")
            label += " (id in the body)" if method != "GET" and named else ""
            if rows and all(isinstance(r, dict) and str(r.get("customersessionid")) == csid for r in rows):
                others = f"; before: {'; '.join(tried)}" if tried else ""
                self._note("customer-session call", label, f"journey {csid}: {exchange.said()}{others}")
                self.session_form = (method, template)
                return
            tried.append(f"{label}: {exchange.said()}")
        self._note(
            "customer-session call",
            "no form answered",
            f"journey {csid}: {'; '.join(tried)} (`de-pipeline session` needs DE_CUSTOMER_SESSION_PATH)",
            ok=False,
        )

    # ---- the settings --------------------------------------------------------------------

    def _settings(self, form: ApiSettings) -> None:
        values: dict[str, str | None] = {
            "DE_AUTH_IN": form.auth_in,
            "DE_API_KEY_PARAM": form.api_key_param if form.auth_in == "query" else None,
            "DE_API_KEY_HEADER": form.api_key_header if form.auth_in == "header" else None,
            "DE_PROVIDERID_IN": form.providerid_in,
            "DE_PARTNER_ID": form.partner_id,
            "DE_EPOCH_UNIT": form.epoch_unit,
        }
        if self.session_form is not None:
            values["DE_CUSTOMER_SESSION_METHOD"], values["DE_CUSTOMER_SESSION_PATH"] = self.session_form
        if not self.result.simulated:
            values = {"DE_API_BASE_URL": form.base_url, "DE_PROVIDER_ID": form.provider_id, **values}
        defaults = {name: spec.default for name, spec in ApiSettings.__dataclass_fields__.items()}
        for name, value in values.items():
            if value is None:
                continue
            attribute = _ATTRIBUTES[name]
            default = defaults.get(attribute)
            default = None if not isinstance(default, str) else default
            configured = getattr(self.configured, attribute)
            self.result.settings.append(Setting(name, value, default, None if configured is None else str(configured)))


_ATTRIBUTES = {
    "DE_API_BASE_URL": "base_url",
    "DE_PROVIDER_ID": "provider_id",
    "DE_AUTH_IN": "auth_in",
    "DE_API_KEY_PARAM": "api_key_param",
    "DE_API_KEY_HEADER": "api_key_header",
    "DE_PROVIDERID_IN": "providerid_in",
    "DE_PARTNER_ID": "partner_id",
    "DE_EPOCH_UNIT": "epoch_unit",
    "DE_CUSTOMER_SESSION_METHOD": "customer_session_method",
    "DE_CUSTOMER_SESSION_PATH": "customer_session_path",
}


# ---- the forms tried ------------------------------------------------------------------------


def _auth_forms(settings: ApiSettings) -> list[tuple[str, ApiSettings]]:
    """The configured form of the key and provider id first, then the others, each once."""
    forms = [
        settings,
        replace(settings, auth_in="bearer", providerid_in="header"),
        replace(settings, auth_in="bearer", providerid_in="query"),
        replace(settings, auth_in="query", providerid_in="query"),
        replace(settings, auth_in="query", providerid_in="header"),
        replace(settings, auth_in="header", providerid_in="header"),
        replace(settings, auth_in="header", providerid_in="header", api_key_header=COMMON_KEY_HEADER),
    ]
    unique: dict[str, ApiSettings] = {}
    for form in forms:
        unique.setdefault(_auth_label(form), form)
    return list(unique.items())


def _auth_label(form: ApiSettings) -> str:
    key = {
        "bearer": "Authorization: Bearer",
        "query": f"query {form.api_key_param}",
        "header": f"header {form.api_key_header}",
    }[form.auth_in]
    provider = {"header": "header providerid", "query": "query providerId", "both": "header and query providerid"}
    partner = ""
    if form.partner_id is not None:
        partner = ", query partnerId" if form.auth_in == "query" else ", header partnerid"
    return f"{key}, {provider[form.providerid_in]}{partner}"


def _session_forms(form: ApiSettings) -> list[tuple[str, str]]:
    """(method, path template) of the customer-session call: the configured one first, then
    GET and POST with the id in the query string or body, and in the path."""
    configured = form.customer_session_path
    plain = configured.replace("/" + CUSTOMERSESSIONID_FIELD, "").replace(CUSTOMERSESSIONID_FIELD, "") or "/"
    in_path = plain.rstrip("/") + "/" + CUSTOMERSESSIONID_FIELD
    forms = [(form.customer_session_method, configured)]
    forms += [("GET", plain), ("GET", in_path), ("POST", plain), ("POST", in_path)]
    return list(dict.fromkeys(forms))


# ---- reading answers --------------------------------------------------------------------


class _Missing:
    pass


_MISSING = _Missing()


def _parsed(body: bytes) -> Any:
    """The body as JSON, numbers kept as their literal text (JsonNumber); None if it is not JSON."""
    try:
        return json.loads(body, parse_int=JsonNumber, parse_float=JsonNumber, parse_constant=JsonNumber)
    except (ValueError, RecursionError):
        return None


def _json_type(value: Any) -> str:
    if value is _MISSING:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, JsonNumber):
        return "integer" if re.fullmatch(r"-?\d+", value) else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    containers: dict[type, str] = {list: "array", dict: "object"}
    return containers.get(type(value), type(value).__name__)


def ts_ms(value: Any) -> int | None:
    """A message's `ts` as epoch milliseconds, whether a JSON integer or a string of digits."""
    if isinstance(value, str) and re.fullmatch(r"\d{1,19}", value):
        return int(value)
    return None


def _times(rows: list[Any] | None) -> list[int | None]:
    """The `ts` of each message (JSON object) of an answer, None where it is not readable."""
    return [ts_ms(row.get("ts")) for row in rows or () if isinstance(row, dict)]


def _all_inside(rows: list[Any] | None, window: Window) -> bool:
    """Whether the answer holds messages, each with a `ts` inside the window (elements that
    are not messages are left to the parser of records)."""
    times = _times(rows)
    return bool(times) and all(ts is not None and window.start_ms <= ts < window.end_ms for ts in times)


def _ts_note(rows: list[Any] | None, window: Window) -> str:
    if not rows:
        return ""
    inside = sum(ts is not None and window.start_ms <= ts < window.end_ms for ts in _times(rows))
    return f" ({inside} with ts inside)"


def _window_fields(window: Window, unit: str) -> dict[str, int]:
    scale = 1000 if unit == "s" else 1
    return {"start": window.start_ms // scale, "end": window.end_ms // scale}


def _page_cap(pages: list[int]) -> tuple[str, str]:
    """(verdict, evidence) of the page cap, from the rows of consecutive pages asked
    with limit PAGE_ASKED."""
    shown = ", ".join(map(str, pages))
    first = pages[0]
    if len(pages) > 1 and pages[1] and first < PAGE_ASKED:
        return f"{first} rows", f"asked {PAGE_ASKED} a page, got {shown}: a short page, and more followed"
    if first >= PAGE_ASKED:
        return f"at least {PAGE_ASKED}", f"asked {PAGE_ASKED} a page, got {shown}"
    return f"not reached ({first} rows)", f"asked {PAGE_ASKED}, got {shown}: the window held no more"


def _rows_of(got: list[Any] | None, page: list[Any]) -> str:
    places = [str(page.index(row) + 1) if row in page else "?" for row in got or []]
    return "-".join(places)


def _shown(value: Any, width: int = 40) -> str:
    """A value as JSON text, numbers with their literal digits, cut to `width` characters."""
    text = _json_text(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _json_text(value: Any) -> str:
    if isinstance(value, JsonNumber):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(_json_text, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(name)}: {_json_text(item)}" for name, item in value.items()) + "}"
    return json.dumps(value, ensure_ascii=False)


def _said(tried: list[tuple[str, Exchange]]) -> str:
    return "; ".join(f"{label}: {exchange.said()}" for label, exchange in tried)


def _transport(base_url: str, exchange: Exchange) -> str:
    parts = urlsplit(base_url)
    if parts.scheme == "https":
        tls = "https, its certificate verified"
    elif is_loopback_host(parts.hostname or ""):
        tls = "plain http to this machine"
    else:
        tls = "plain http: the key travels unencrypted (DE_ALLOW_INSECURE_HTTP)"
    return f"{base_url} answered ({exchange.said().split(' (')[0]}); {tls}"


def _unreachable(exchange: Exchange) -> str:
    error = exchange.error
    if "CERTIFICATE" in error.upper() or "SSL" in error.upper():
        return f"the TLS handshake failed: {error}"
    return f"the server cannot be reached: {error}"


def placeholders_in(text: str, labels: Iterable[str]) -> Iterable[re.Match[str]]:
    """The redaction placeholders in a text: a known label wrapped on both sides by the same
    run of punctuation (`[PERSON]`, `****GPE****`, `#ID#`, `__EMAIL__`), bracket pairs mirrored."""
    return _placeholder_pattern(tuple(labels)).finditer(text)


def _placeholder_pattern(labels: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(label) for label in sorted(labels, key=len, reverse=True))
    openings = []
    for opening in "[({<#*_%@$|~":
        closing = _MIRROR.get(opening, opening)
        openings.append(f"{re.escape(opening)}{{1,4}}(?:{alternatives}){re.escape(closing)}{{1,4}}")
    return re.compile(f"(?<![A-Za-z0-9])(?:{'|'.join(openings)})(?![A-Za-z0-9])")
