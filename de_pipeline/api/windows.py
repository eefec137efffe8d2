"""Half-open time windows in epoch milliseconds, and their split into legal API windows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from de_pipeline.api.settings import MAX_WINDOW_MS


@dataclass(frozen=True, order=True)
class Window:
    """The half-open interval `start_ms <= ts < end_ms`."""

    start_ms: int
    end_ms: int

    def __post_init__(self) -> None:
        if self.end_ms < self.start_ms:
            raise ValueError(f"window ends before it starts: {self}")

    @property
    def span_ms(self) -> int:
        return self.end_ms - self.start_ms

    def progress(self, ts_ms: int) -> float:
        """How far through the window `ts_ms` is, from 0 to 1 (clamped: a server may answer
        a message outside the window)."""
        return min(max((ts_ms - self.start_ms) / self.span_ms, 0.0), 1.0) if self.span_ms else 1.0

    def __str__(self) -> str:
        return f"[{format_epoch_ms(self.start_ms)}, {format_epoch_ms(self.end_ms)})"


def format_epoch_ms(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if epoch_ms % 1000:
        text += f".{epoch_ms % 1000:03d}"
    return text + "Z"


def window_parts(window: Window, count: int) -> list[Window]:
    """`window` cut into `count` consecutive parts of about equal length, on whole seconds
    (the API may take seconds), that together cover it exactly."""
    if count < 1:
        raise ValueError("count must be at least 1")
    cuts = [window.start_ms + (window.span_ms * n // count) // 1000 * 1000 for n in range(1, count)]
    edges = [window.start_ms, *sorted({c for c in cuts if window.start_ms < c < window.end_ms}), window.end_ms]
    return [Window(start, end) for start, end in zip(edges, edges[1:], strict=False)]


def split_window(window: Window, max_span_ms: int = MAX_WINDOW_MS) -> Iterator[Window]:
    """Consecutive windows of at most `max_span_ms` that together cover `window` exactly."""
    if max_span_ms <= 0:
        raise ValueError("max_span_ms must be positive")
    start = window.start_ms
    while start < window.end_ms:
        end = min(start + max_span_ms, window.end_ms)
        yield Window(start, end)
        start = end
