"""A probe's questions and the server's answers as a file, for a bug report (`check --record`).

The capture holds every question as sent, the server's status, the headers that matter and
the body, with the key masked (`***`) wherever it stood. Message content is blanked: in each
`text`, `sendername` and `senderemail` (at any depth, so topmatches' phrases too), every letter
and digit becomes `x`, except inside the redaction placeholders, which are the vendor's labels,
not anyone's words. Each string keeps its length in characters, and its spaces and
punctuation, so lengths and placeholder counts stay true. Numbers keep their literal digits
(`12.10`), since the body is kept as the text the server sent, not re-serialised.
`de-pipeline simulate --replay DIR` serves a capture again (de_pipeline/simulator/replay.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from de_pipeline.api.probe import RATE_HEADERS, ProbeResult, placeholders_in
from de_pipeline.env import SettingsError

CAPTURE_FILE = "capture.json"
FORMAT = 1
BLANKED_MEMBERS = frozenset({"text", "sendername", "senderemail"})
HEADERS_KEPT = re.compile(r"^(content-type|location|www-authenticate)$", re.IGNORECASE)
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


@dataclass(frozen=True)
class RecordedAnswer:
    """One question of a capture, as sent (the key masked), and the answer to it."""

    why: str
    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any] | None
    headers: dict[str, str]
    status: int | None  # None: no answer came (`error` says why)
    answer_headers: dict[str, str]
    answer_body: str
    error: str = ""


@dataclass(frozen=True)
class Capture:
    base_url: str
    anchor_ms: int  # midnight UTC of the day the probe ran: its windows are days before it
    configured: dict[str, str]  # the settings the probe started from (never the key)
    answers: list[RecordedAnswer]


def write_capture(result: ProbeResult, directory: Path, configured: Mapping[str, str], labels: Iterable[str]) -> Path:
    """Write the probe's questions and answers to DIRECTORY/capture.json; returns the file."""
    labels = tuple(labels)
    answers: list[dict[str, object]] = []
    for exchange in result.exchanges:
        answer = exchange.answer
        if answer is None:
            answers.append({"why": exchange.why, "status": None, "error": exchange.error})
            continue
        request = answer.request
        answers.append(
            {
                "why": exchange.why,
                "request": {
                    "method": request.method,
                    "path": request.path,
                    "query": request.query,
                    "body": request.body,
                    "headers": request.headers,
                },
                "status": answer.status,
                "headers": {n: v for n, v in answer.headers.items() if RATE_HEADERS.match(n) or HEADERS_KEPT.match(n)},
                "body": blank_messages(answer.body.decode("utf-8", "replace"), labels),
            }
        )
    document = {
        "format": FORMAT,
        "written_by": "de-pipeline check --record",
        "base_url": result.base_url,
        "anchor_ms": result.anchor_ms,
        "configured": dict(configured),
        "blanked": "every letter and digit of each text, sendername and senderemail is x, placeholders kept",
        "answers": answers,
    }
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / CAPTURE_FILE
        path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"--record {directory}: cannot write the capture ({exc.strerror or exc})") from None
    return path


def read_capture(directory: Path) -> Capture:
    """The capture in DIRECTORY (or the file itself); a SettingsError naming what is wrong."""
    path = directory / CAPTURE_FILE if directory.is_dir() else directory
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"--replay {directory}: cannot read {path} ({exc.strerror or exc})") from None
    except ValueError:
        raise SettingsError(f"--replay {directory}: {path} is not JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SettingsError(f"--replay {directory}: {path} is not a capture of `de-pipeline check --record`")
    try:
        answers = [_recorded(entry) for entry in document["answers"]]
        return Capture(str(document["base_url"]), int(document["anchor_ms"]), dict(document["configured"]), answers)
    except (KeyError, TypeError, ValueError) as exc:
        raise SettingsError(f"--replay {directory}: {path} is damaged ({type(exc).__name__}: {exc})") from None


def _recorded(entry: dict[str, Any]) -> RecordedAnswer:
    request = entry.get("request") or {}
    return RecordedAnswer(
        why=str(entry["why"]),
        method=str(request.get("method", "")),
        path=str(request.get("path", "")),
        query={str(k): str(v) for k, v in (request.get("query") or {}).items()},
        body=request.get("body"),
        headers={str(k): str(v) for k, v in (request.get("headers") or {}).items()},
        status=entry["status"],
        answer_headers={str(k): str(v) for k, v in (entry.get("headers") or {}).items()},
        answer_body=str(entry.get("body", "")),
        error=str(entry.get("error", "")),
    )


def blank_messages(body: str, labels: Iterable[str]) -> str:
    """`body` (JSON text) with the value of every `text`, `sendername` and `senderemail`
    member blanked (see the module docstring); anything else as it was."""
    labels = tuple(labels)
    pieces: list[str] = []
    done = 0
    tokens = list(_JSON_STRING.finditer(body))  # outside strings JSON has no `"`: each match is a string
    for name, value in zip(tokens, tokens[1:], strict=False):
        if body[name.end() : value.start()].strip() != ":" or _decoded(name.group()) not in BLANKED_MEMBERS:
            continue
        text = _decoded(value.group())
        if not isinstance(text, str):
            continue
        pieces += [body[done : value.start()], json.dumps(_blanked(text, labels))]
        done = value.end()
    return "".join(pieces) + body[done:]


def _decoded(token: str) -> str | None:
    try:
        return json.loads(token)
    except ValueError:
        return None


def _blanked(text: str, labels: tuple[str, ...]) -> str:
    kept = [match.span() for match in placeholders_in(text, labels)]
    characters = ["x" if char.isalnum() else char for char in text]
    for start, end in kept:
        characters[start:end] = text[start:end]
    return "".join(characters)
