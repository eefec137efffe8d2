"""Typed errors of the API client. Each names the request; none ever carries the API key."""

from __future__ import annotations

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


class ApiRetriesExhausted(ApiError):
    """A transient failure (429, 5xx, reset, timeout) outlasted the retry budget."""


def server_message(body: bytes | str, secret: str) -> str:
    """A short, single-line, secret-free rendering of an error body (JSON, text or HTML)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    match = re.search(r'"(?:error|message|detail)"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
    if match:
        text = match.group(1)
    text = _SPACE.sub(" ", _TAGS.sub(" ", scrub(text, secret))).strip()
    if len(text) > MAX_SERVER_MESSAGE:
        text = text[:MAX_SERVER_MESSAGE] + "..."
    return text


def scrub(text: str, secret: str) -> str:
    """`text` with every occurrence of `secret` masked."""
    return text.replace(secret, "***") if secret else text
