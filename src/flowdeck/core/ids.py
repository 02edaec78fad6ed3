"""Identifiers for runs, tasks and everything else flowdeck stores.

Ids are UUID version 7 (RFC 9562): they start with a millisecond timestamp, so sorting ids as
plain strings sorts them by creation time, which keeps database indexes and listings in order.
Within one process a later id always sorts after an earlier one, even inside one millisecond
("monotonic random", RFC 9562 section 6.2 method 2). `DeterministicIds` gives tests and
snapshots the same valid ids on every run.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["DeterministicIds", "IdGenerator", "Uuid7Generator", "is_uuid", "new_id"]

# rand_a (12 bits) and rand_b (62 bits) together form one 74-bit counter.
_COUNTER_BITS = 74
_COUNTER_LIMIT = 1 << _COUNTER_BITS
_MAX_MS = (1 << 48) - 1

_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def _format(ms: int, counter: int) -> str:
    """Lay out unix_ts_ms | ver | rand_a | var | rand_b (counter = rand_a:rand_b)."""
    return "%08x-%04x-%04x-%04x-%012x" % (  # noqa: UP031 - measurably faster than f-strings
        ms >> 16,
        ms & 0xFFFF,
        0x7000 | (counter >> 62),
        0x8000 | ((counter >> 48) & 0x3FFF),
        counter & 0xFFFF_FFFF_FFFF,
    )


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class IdGenerator(Protocol):
    """Anything that returns a fresh id each time it is called."""

    def __call__(self) -> str: ...


class Uuid7Generator:
    """Thread-safe, strictly increasing UUIDv7 ids seeded from `os.urandom`.

    A new millisecond reseeds the 74 random bits (top bit clear, leaving room to count);
    another id in the same millisecond, or after the wall clock stepped back, adds a random
    1..2**32 to them. If that ever overflows, the timestamp moves one millisecond ahead.
    """

    def __init__(self, clock_ms: Callable[[], int] = _wall_clock_ms) -> None:
        self._clock_ms = clock_ms
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0

    def __call__(self) -> str:
        ms = self._clock_ms()
        rand = int.from_bytes(os.urandom(10))  # 80 bits: seed or increment, never both
        with self._lock:
            if ms > self._last_ms:
                self._last_ms = ms
                self._counter = rand >> 7  # 73 bits
            else:
                self._counter += (rand & 0xFFFF_FFFF) + 1
                if self._counter >= _COUNTER_LIMIT:
                    self._last_ms += 1
                    self._counter = rand >> 7
            ms, counter = self._last_ms, self._counter
        if not 0 <= ms <= _MAX_MS:
            raise ValueError(f"timestamp {ms} ms does not fit in a UUIDv7")
        return _format(ms, counter)


class DeterministicIds:
    """Valid, ascending UUIDv7 ids from a counter, identical on every run (for tests).

    The n-th id (1-based) has timestamp ``start_ms + n - 1`` and counter ``n``, so the tail
    of the text reads ``...-7000-8000-000000000001``, ``...-000000000002``, ...
    The default start is 2026-01-01T00:00:00Z.
    """

    def __init__(self, start_ms: int = 1767225600000) -> None:
        if not 0 <= start_ms <= _MAX_MS:
            raise ValueError(f"start_ms {start_ms} does not fit in a UUIDv7 timestamp")
        self._start_ms = start_ms
        self._n = 0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            self._n += 1
            n = self._n
        return _format(self._start_ms + n - 1, n)


_default = Uuid7Generator()


def new_id() -> str:
    """A fresh UUIDv7 in canonical lowercase form, sorting after every earlier one."""
    return _default()


def is_uuid(text: str) -> bool:
    """True for canonical UUID text (8-4-4-4-12 hex digits, any version, any case)."""
    return _UUID_RE.fullmatch(text) is not None
