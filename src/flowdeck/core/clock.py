"""Injectable time source.

Code that needs "now" takes a `Clock` instead of calling `datetime.now()`, so tests can
freeze or step time with `ManualClock` and every timestamp is timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]

_DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)


def _as_utc(dt: datetime) -> datetime:
    """Naive datetimes are taken to be UTC; aware ones are converted to UTC."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


class Clock(Protocol):
    """Anything that can tell the current time."""

    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to (for tests)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = _DEFAULT_START if start is None else _as_utc(start)

    def now(self) -> datetime:
        return self._now

    def set(self, dt: datetime) -> None:
        """Jump to `dt` (naive means UTC)."""
        self._now = _as_utc(dt)

    def advance(self, delta: timedelta) -> None:
        """Move forward (or backward, for a negative `delta`)."""
        self._now = self._now + delta

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"
