"""Half-open time windows in epoch milliseconds, and their split into legal API windows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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


# A window whose sampled records lie mostly outside it (at least this many: one stray record
# is a rejection, not a mismatch), or all 1000 times off it, was read in another unit
MIN_OUTSIDE_SAMPLES = 2
EPOCH_FACTOR = 1000  # seconds to milliseconds


@dataclass
class TsSample:
    """The ts of a few records of each page (client.Page.ts_sampled) held against the window
    they were fetched for: a day, whose records parse_records.sql holds against it too. Most
    of them outside it, or all of them 1000 times off it, means the server read start/end in
    another unit than DE_EPOCH_UNIT sends them, writes ts in another unit, or ignores the
    window: the day would be stored empty, its records rejected one by one."""

    window: Window
    sampled: int = 0
    outside: int = 0
    earlier: int = 0  # outside, and ts * 1000 inside the window: ts in seconds, or the window read as ms
    later: int = 0  # outside, and ts / 1000 inside the window: the window read as seconds

    def add(self, ts_values: Iterable[int | None]) -> None:
        window = self.window
        for ts in ts_values:
            if ts is None:
                continue  # not a ts at all: parse_records.sql rejects the record, whatever the window
            self.sampled += 1
            if window.start_ms <= ts < window.end_ms:
                continue
            self.outside += 1
            self.earlier += window.start_ms <= ts * EPOCH_FACTOR < window.end_ms
            self.later += window.start_ms <= ts // EPOCH_FACTOR < window.end_ms

    def mismatch(self, epoch_unit: str) -> str | None:
        """What the samples say, as the problem of an error; None when they look right."""
        off = max(self.earlier, self.later)
        mostly_outside = self.outside >= MIN_OUTSIDE_SAMPLES and 2 * self.outside > self.sampled
        if not (mostly_outside or (self.sampled and off == self.sampled)):
            return None
        unit = "seconds" if epoch_unit == "s" else "milliseconds"
        earlier = self.earlier > self.later
        # the same records either way: a misread window is named where the unit can be it
        misread = {("s", True): "milliseconds (set DE_EPOCH_UNIT=ms)", ("ms", False): "seconds (set DE_EPOCH_UNIT=s)"}
        if 2 * off <= self.sampled:
            hint = "does the server ignore start/end, or read them in another unit?"
        else:
            reads = misread.get((epoch_unit, earlier))
            hint = (
                f"about 1000 times {'earlier' if earlier else 'later'}: "
                + (f"the server reads start/end as {reads}, or " if reads else "")
                + f"it writes ts in {'seconds' if earlier else 'microseconds'}, not milliseconds"
            )
        return (
            f"{self.outside} of the {self.sampled} records sampled have a ts outside the window asked for "
            f"({hint}); DE_EPOCH_UNIT={epoch_unit} sends start/end in {unit}. `de-pipeline check` "
            "compares the settings with the server"
        )


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
