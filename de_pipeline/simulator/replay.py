"""Serves a capture of `de-pipeline check --record` again: `de-pipeline simulate --replay DIR`.

A request gets the recorded answer of the recorded request that has the same method, path,
query parameters, JSON body and identifying headers (the key's, providerid, partnerid). The
key was masked in the capture, so any key is taken where the recorded request carried one.
The probe asks about days before the day it runs: replayed on another day, `start` and `end`
are read as moved by the days between, and the answers' `ts` are moved back by as much, so
`de-pipeline check` against a replay finds what it found against the server.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from de_pipeline.api.capture import Capture, RecordedAnswer
from de_pipeline.simulator.server import LoopbackServer, ScriptedResponse

MASK = "***"
_TS = re.compile(r'(?<=[{,])"ts":("?)(\d{1,19})("?)(?=[,}])')


class Replay(LoopbackServer):
    """A server that answers what a capture recorded."""

    def __init__(self, capture: Capture, now: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.capture = capture
        # (where, lower-case name) -> the recorded value, e.g. ("header", "authorization") -> "Bearer ***"
        self._key_carriers: dict[tuple[str, str], str] = {}
        self._header_names: set[str] = set()
        for answer in capture.answers:
            for place, values in (("query", answer.query), ("header", answer.headers)):
                for name, value in values.items():
                    if MASK in value:
                        self._key_carriers[(place, name.lower())] = value
            self._header_names |= {name.lower() for name in answer.headers}
        self._answers: dict[tuple[Any, ...], RecordedAnswer] = {}
        for answer in capture.answers:
            if answer.method:
                shape = self._shape(answer.method, answer.path, answer.query, answer.body, answer.headers)
                self._answers.setdefault(shape, answer)
        today = datetime.fromtimestamp(now(), UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        self.shift_ms = capture.anchor_ms - int(today.timestamp()) * 1000  # recorded minus today
        self.answered = 0
        self.unmatched = 0

    def answer(self, method: str, target: str, headers: Any, body: bytes) -> ScriptedResponse:
        parts = urlsplit(target)
        query = {name: values[-1] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
        try:
            fields = json.loads(body) if body else None
        except ValueError:
            fields = None
        sent = {name.lower(): value for name, value in headers.items()}
        for shift in dict.fromkeys((0, self.shift_ms)):
            for scale in (1, 1000) if shift else (1,):
                moved_query, moved_body = _moved(query, shift // scale), _moved(fields, shift // scale)
                recorded = self._answers.get(self._shape(method, parts.path, moved_query, moved_body, sent))
                if recorded is not None:
                    self.answered += 1
                    return _served(recorded, -shift)
        self.unmatched += 1
        message = f"no recorded answer to {method} {parts.path} (a replay of {self.capture.base_url})"
        return ScriptedResponse(404, json.dumps({"error": message}).encode())

    def _shape(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any],
        body: Any,
        headers: Mapping[str, str],
    ) -> tuple[Any, ...]:
        """What identifies a request: the key's value masked, the headers that say who asks."""
        masked_query = tuple(sorted((name, self._masked("query", name, str(value))) for name, value in query.items()))
        masked_headers = tuple(
            sorted(
                (name.lower(), self._masked("header", name, value))
                for name, value in headers.items()
                if name.lower() in self._header_names
            )
        )
        return method, path, masked_query, json.dumps(body, sort_keys=True), masked_headers

    def _masked(self, place: str, name: str, value: str) -> str:
        recorded = self._key_carriers.get((place, name.lower()))
        if recorded is None:
            return value
        before = recorded.split(MASK, 1)[0]  # "Bearer " of "Bearer ***"
        return recorded if value.startswith(before) else value


def _moved(fields: Any, shift: int) -> Any:
    """`fields` with `start` and `end` moved by `shift` (strings of a query stay strings)."""
    if not shift or not isinstance(fields, dict):
        return fields
    moved = dict(fields)
    for name in ("start", "end"):
        value = moved.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            moved[name] = value + shift
        elif isinstance(value, str) and value.isdigit():
            moved[name] = str(int(value) + shift)
    return moved


def _served(recorded: RecordedAnswer, shift_ms: int) -> ScriptedResponse:
    if recorded.status is None:  # no answer came: the connection drops
        return ScriptedResponse(0, b"")
    body = recorded.answer_body
    if shift_ms and recorded.status == 200:
        body = _TS.sub(lambda m: f'"ts":{m[1]}{int(m[2]) + shift_ms}{m[3]}', body)
    headers = {("Content-Type" if name.lower() == "content-type" else name): value
               for name, value in recorded.answer_headers.items()}  # fmt: skip
    return ScriptedResponse(recorded.status, body.encode("utf-8"), headers)
