"""Typed errors of the API client. Each names the request; none ever carries the API key."""

from __future__ import annotations

import functools
import json
import re

_TAGS = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
MAX_SERVER_MESSAGE = 300


class ApiError(Exception):
    """A request to the Digital Engagement API failed for good."""

    def __init__(self, request: str, problem: str, server_message: str = "") -> None:
        self.request = request
        self.problem = problem
        self.server_message = server_message
        said = f" (server said: {server_message})" if server_message else ""
        super().__init__(f"{request}: {problem}{said}")


class ApiBadRequestError(ApiError):
    """400: the server refused the request's parameters."""


class ApiAuthError(ApiError):
    """401 or 403: the key was refused, or the provider is not allowed for it."""


class ApiNotFoundError(ApiError):
    """404: nothing is served at that path; the base URL or a path setting is wrong."""


class ApiStatusError(ApiError):
    """Another status that retrying cannot fix."""


class ApiResponseError(ApiError):
    """A 200 whose body is not a JSON array."""


class ApiEpochUnitError(ApiError):
    """The records of a window lie mostly outside it: start/end, or ts, in another unit than
    DE_EPOCH_UNIT assumes, or a server that ignores the window (windows.TsSample)."""


class ApiRedirectError(ApiError):
    """A redirect the client does not follow: to another origin, or one too many."""


class ApiRetriesExhausted(ApiError):
    """A transient failure (429, 5xx, reset, timeout) outlasted the retry budget."""


def server_message(body: bytes | str, secret: str) -> str:
    """A short, single-line, secret-free rendering of an error body (JSON, text or HTML)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    match = re.search(r'"(?:error|message|detail)"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
    if match:
        text = _json_string(match.group(1))
    text = _SPACE.sub(" ", _TAGS.sub(" ", scrub(text, secret))).strip()
    if len(text) > MAX_SERVER_MESSAGE:
        text = text[:MAX_SERVER_MESSAGE] + "..."
    return text


def _json_string(escaped: str) -> str:
    """The text of a JSON string's inside, escapes decoded (as is if they are invalid)."""
    try:
        text = json.loads(f'"{escaped}"', strict=False)
    except ValueError:
        return escaped
    return text.encode("utf-8", "replace").decode("utf-8")  # a lone \ud800 becomes "?"


def scrub(text: str, secret: str) -> str:
    """`text` with every occurrence of `secret` masked: raw, JSON-escaped (any mix of `\\/`,
    `\\uXXXX` and the short escapes) or URL-encoded (`%XX` in either case, `+` for a space)."""
    return _secret_pattern(secret).sub("***", text) if secret else text


# Every character the JSON grammar may write as a short escape.
_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n",
                 "\r": "\\r", "\t": "\\t"}  # fmt: skip


@functools.lru_cache(maxsize=8)
def _secret_pattern(secret: str) -> re.Pattern[str]:
    """A pattern matching `secret` with each character in any of its encodings."""
    return re.compile("".join(_character_pattern(char) for char in secret))


def _character_pattern(char: str) -> str:
    utf16 = char.encode("utf-16-be", "surrogatepass")
    forms = {
        re.escape(char),
        "".join(r"\\u" + _any_case(utf16[i : i + 2].hex()) for i in range(0, len(utf16), 2)),
        "".join("%" + _any_case(f"{byte:02x}") for byte in char.encode("utf-8", "surrogatepass")),
    }
    if char in _JSON_ESCAPES:
        forms.add(re.escape(_JSON_ESCAPES[char]))
    if char == " ":
        forms.add(r"\+")
    return "(?:" + "|".join(sorted(forms)) + ")"


def _any_case(hex_digits: str) -> str:
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in hex_digits)
