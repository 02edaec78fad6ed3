"""Request rate limits a dialect declares: a fixed window or a token bucket, per IP, user or key.

Both limiters answer every hit with a `Decision` that becomes the `X-RateLimit-Limit`,
`X-RateLimit-Remaining` and `X-RateLimit-Reset` headers of the response (and `Retry-After` on a
429). APIs disagree on the unit of `X-RateLimit-Reset`, so it is the policy's choice: epoch
seconds (`epoch_s`), epoch milliseconds (`epoch_ms`) or seconds from now (`delta_s`).

Memory is bounded: each limiter keeps at most `max_keys` keys and forgets the least recently
seen one first (a forgotten key starts afresh, which errs on the caller's side).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

ResetUnit = Literal["epoch_s", "epoch_ms", "delta_s"]
KeyKind = Literal["ip", "user", "key"]
DEFAULT_MAX_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    #: When the caller is back at full allowance (fixed window: the window's end), epoch s.
    reset_at: float
    #: Seconds to wait before the next call can pass (0 when this one passed).
    retry_after: float


class Limiter(Protocol):
    def hit(self, key: str) -> Decision:
        """Count one request of `key` and say whether it may pass."""
        ...


class FixedWindow:
    """At most `limit` requests per key in each window of `window_s` seconds (aligned to the
    epoch, so every key's window ends at the same moment)."""

    def __init__(self, limit: int, window_s: float, *, clock: Callable[[], float] = time.time,
                 max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("a fixed window needs limit >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.max_keys = max_keys
        self._counts: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def hit(self, key: str) -> Decision:
        now = self.clock()
        start = math.floor(now / self.window_s) * self.window_s
        end = start + self.window_s
        window, count = self._counts.get(key, (start, 0))
        if window != start:
            count = 0
        allowed = count < self.limit
        if allowed:
            count += 1
        self._counts[key] = (start, count)
        self._counts.move_to_end(key)
        while len(self._counts) > self.max_keys:
            self._counts.popitem(last=False)
        return Decision(allowed, self.limit, self.limit - count, end,
                        0.0 if allowed else end - now)


class TokenBucket:
    """A bucket of `capacity` tokens per key, refilled at `rate` tokens a second; a request
    takes one (bursts up to `capacity`, then `rate` a second)."""

    def __init__(self, capacity: int, rate: float, *, clock: Callable[[], float] = time.time,
                 max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if capacity < 1 or rate <= 0:
            raise ValueError("a token bucket needs capacity >= 1 and rate > 0")
        self.capacity = capacity
        self.rate = rate
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def hit(self, key: str) -> Decision:
        now = self.clock()
        tokens, stamp = self._buckets.get(key, (float(self.capacity), now))
        tokens = min(float(self.capacity), tokens + max(0.0, now - stamp) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        full_at = now + (self.capacity - tokens) / self.rate
        wait = 0.0 if allowed else (1.0 - tokens) / self.rate
        return Decision(allowed, self.capacity, math.floor(tokens), full_at, wait)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A dialect's policy: which limiter, keyed by what, and how the reset is written."""

    limiter: Limiter
    key: KeyKind = "ip"
    reset_unit: ResetUnit = "epoch_s"
    message: str = "rate limit exceeded; retry later"
    #: A clock for `delta_s` resets (the limiters' own clock is used for the decision).
    clock: Callable[[], float] = time.time

    def headers(self, decision: Decision) -> dict[str, str]:
        if self.reset_unit == "epoch_ms":
            reset = str(math.ceil(decision.reset_at * 1000))
        elif self.reset_unit == "epoch_s":
            reset = str(math.ceil(decision.reset_at))
        else:
            reset = str(max(0, math.ceil(decision.reset_at - self.clock())))
        out = {"X-RateLimit-Limit": str(decision.limit),
               "X-RateLimit-Remaining": str(max(0, decision.remaining)),
               "X-RateLimit-Reset": reset}
        if not decision.allowed:
            out["Retry-After"] = str(max(1, math.ceil(decision.retry_after)))
        return out
