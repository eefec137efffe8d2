"""One request rate per account, shared by every client and thread of the process.

The vendor limits requests per company key, not per connection: all clients of one base URL
and key take their turns from one RateLimiter, and a 429's Retry-After pauses all of them.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections.abc import Callable

_shared: dict[tuple[str, str], RateLimiter] = {}
_shared_lock = threading.Lock()

# Grants are spaced by (1 + JITTER_MARGIN) / rate, so any `rate + 1` of them in a row span
# 1.03 s: a vendor that counts arrivals in a sliding 1-second window sees at most `rate`,
# even when a request's way from its grant to the vendor takes up to 30 ms longer or shorter
# than another's. With grants spaced by exactly 1 / rate, a limit equal to the vendor's drew
# about one 429 every 150 to 200 requests (on loopback, 250 ms a request, 20 a second), and
# each 429's Retry-After (at least 1 s) stops every worker: one 429 costs a second of fetching
# (20 requests at 20/s), the margin 3% of the rate (0.6 requests a second).
JITTER_MARGIN = 0.03

# How long a caller that is not first in line sleeps when the turn has come, before it looks
# again (the first in line takes the turn meanwhile)
_RECHECK_SECONDS = 0.002


class RateLimiter:
    """Grants requests at most `rate` a second to any number of threads: a grant is given
    under the lock only once `(1 + JITTER_MARGIN) / rate` has passed since the previous one
    was given, so no 1-second window holds more than `rate` grants, and arrivals jittered
    by up to 3% of a second still keep a vendor's count at `rate` (a token bucket of burst 1:
    a quiet spell does not allow a burst after it). `pause` (a Retry-After) holds every
    caller back until it ends, including those already waiting.

    Among waiting callers, the one furthest behind goes first: each says how far through its
    work it is (`progress`, 0 to 1: how far through its day window the last page reached),
    ties in the order they came. Days fetched at once then end together: with every caller
    served in turn, the largest day was left alone at the end, paging at one request per
    round trip (4 a second at 250 ms), far below the rate, for a second or more a week."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self._interval = interval(rate)
        self._next = float("-inf")  # the earliest moment of the next grant
        self._resume_at = float("-inf")  # the end of the latest pause
        self._waiting: set[tuple[float, int]] = set()  # (progress, arrival) of those waiting
        self._arrivals = itertools.count()

    def set_rate(self, rate: float) -> None:
        with self._lock:
            self._interval = interval(rate)

    def acquire(self, progress: float = 0.0) -> float:
        """Wait for this caller's turn (`progress`: see the class); returns the seconds waited."""
        started = self._clock()
        with self._lock:
            place = (progress, next(self._arrivals))
            self._waiting.add(place)
        try:
            while True:
                with self._lock:
                    now = self._clock()
                    turn = max(self._next, self._resume_at)
                    if now >= turn and min(self._waiting) == place:
                        self._next = now + self._interval
                        self._waiting.remove(place)
                        return now - started
                # everyone sleeps until the turn; the others look again after the first took it
                self._sleep(turn - now if now < turn else _RECHECK_SECONDS)
        except BaseException:
            with self._lock:
                self._waiting.discard(place)
            raise

    def pause(self, seconds: float) -> None:
        """No grant to anyone for `seconds` from now (a longer pause already set stays)."""
        with self._lock:
            self._resume_at = max(self._resume_at, self._clock() + seconds)


def interval(rate: float) -> float:
    """The seconds between two grants at `rate` requests a second (see JITTER_MARGIN)."""
    return (1.0 + JITTER_MARGIN) / rate


def shared_limiter(base_url: str, api_key: str, rate: float) -> RateLimiter:
    """The process's limiter of one account (base URL and key), at `rate` requests a second.
    The key is held only as a digest."""
    account = (base_url, hashlib.sha256(api_key.encode()).hexdigest())
    with _shared_lock:
        limiter = _shared.get(account)
        if limiter is None:
            limiter = _shared[account] = RateLimiter(rate)
        else:
            limiter.set_rate(rate)
        return limiter
