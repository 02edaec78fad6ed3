"""Time text exactly as Kestra (Java) writes and reads it.

Instants are ISO-8601 UTC with a ``Z`` and always six fractional digits, so stored strings
sort chronologically; durations follow ``java.time.Duration`` (``PT1H30M``, ``PT0.5S``).
Everything here is timezone-aware UTC: naive input is taken to be UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

__all__ = ["format_duration", "format_instant", "parse_duration", "parse_instant"]

_INSTANT_RE = re.compile(
    r"""
    (?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})
    (?:[Tt\ ]
        (?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})
        (?::(?P<second>[0-9]{2})(?:[.,](?P<fraction>[0-9]{1,9}))?)?
        (?P<offset>[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?
    )?
    """,
    re.VERBOSE | re.ASCII,
)

# java.time.Duration.parse, plus weeks, plus years/months captured only to reject them.
_DURATION_RE = re.compile(
    r"""
    (?P<sign>[-+]?)P
    (?:(?P<years>[-+]?[0-9]+)Y)?
    (?:(?P<months>[-+]?[0-9]+)M)?
    (?:(?P<weeks>[-+]?[0-9]+)W)?
    (?:(?P<days>[-+]?[0-9]+)D)?
    (?P<time>T
        (?:(?P<hours>[-+]?[0-9]+)H)?
        (?:(?P<minutes>[-+]?[0-9]+)M)?
        (?:(?P<seconds>[-+]?[0-9]+)(?:[.,](?P<fraction>[0-9]{0,9}))?S)?
    )?
    """,
    re.VERBOSE | re.ASCII | re.IGNORECASE,
)
_DURATION_UNITS_S = {"weeks": 604_800, "days": 86_400, "hours": 3_600, "minutes": 60, "seconds": 1}


def _to_utc(dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def format_instant(dt: datetime) -> str:
    """``2025-06-01T10:15:30.123456Z``: UTC, fixed width, six fractional digits."""
    if dt.tzinfo is UTC:  # the hot path: every engine timestamp is already UTC
        return dt.isoformat(timespec="microseconds")[:-6] + "Z"
    u = _to_utc(dt)
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T"
        f"{u.hour:02d}:{u.minute:02d}:{u.second:02d}.{u.microsecond:06d}Z"
    )


def _offset(text: str | None) -> timezone:
    if text is None or text in "Zz":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if minutes >= 60:
        raise ValueError(f"offset minutes must be below 60, got {text}")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def parse_instant(text: str) -> datetime:
    """Read an ISO-8601 instant or date into an aware UTC datetime.

    Accepts ``Z`` or numeric offsets (none means UTC), 0-9 fractional digits (truncated to
    microseconds) and a bare date (midnight UTC).
    """
    if len(text) == 27 and text[26] == "Z" and text[10] == "T":
        # The hot path: what format_instant writes.
        try:
            return datetime.fromisoformat(text[:26]).replace(tzinfo=UTC)
        except ValueError:
            pass
    m = _INSTANT_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"invalid ISO-8601 instant {text!r} (expected e.g. 2025-06-01T10:15:30Z)")
    g = m.groupdict()
    try:
        dt = datetime(
            int(g["year"]),
            int(g["month"]),
            int(g["day"]),
            int(g["hour"] or 0),
            int(g["minute"] or 0),
            int(g["second"] or 0),
            int((g["fraction"] or "0")[:6].ljust(6, "0")),
            tzinfo=_offset(g["offset"]),
        )
        return dt.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"invalid ISO-8601 instant {text!r}: {exc}") from None


def parse_duration(text: str) -> timedelta:
    """Read an ISO-8601 duration the way ``java.time.Duration.parse`` does, plus weeks.

    Years and months are rejected: they have no fixed length. Sub-microsecond digits are
    truncated toward zero.
    """
    m = _DURATION_RE.fullmatch(text)
    g = m.groupdict() if m else {}
    if g.get("years") is not None or g.get("months") is not None:
        raise ValueError(
            f"invalid ISO-8601 duration {text!r}: years and months have no fixed length; "
            "use days or weeks instead (e.g. P30D, P4W)"
        )
    has_date = any(g.get(k) is not None for k in ("weeks", "days"))
    has_time = any(g.get(k) is not None for k in ("hours", "minutes", "seconds"))
    if m is None or not (has_date or has_time) or (g["time"] is not None and not has_time):
        raise ValueError(f"invalid ISO-8601 duration {text!r} (expected e.g. PT30S, PT5M, P1D)")

    total_ns = 0
    for unit, seconds in _DURATION_UNITS_S.items():
        if g[unit] is not None:
            total_ns += int(g[unit]) * seconds * 1_000_000_000
    if g["fraction"]:
        nanos = int(g["fraction"].ljust(9, "0"))
        total_ns += -nanos if g["seconds"].startswith("-") else nanos
    if g["sign"] == "-":
        total_ns = -total_ns
    micros = abs(total_ns) // 1000
    try:
        return timedelta(microseconds=-micros if total_ns < 0 else micros)
    except OverflowError:
        raise ValueError(f"ISO-8601 duration {text!r} is too large") from None


def format_duration(delta: timedelta) -> str:
    """Write ``delta`` exactly like Java's ``Duration.toString()``: ``PT1H2M3.5S``, ``PT25H``."""
    total_us = delta // timedelta(microseconds=1)
    seconds, micros = divmod(total_us, 1_000_000)  # floor seconds, 0 <= micros, as in Java
    if seconds == 0 and micros == 0:
        return "PT0S"
    effective = seconds + 1 if seconds < 0 and micros > 0 else seconds
    sign = -1 if effective < 0 else 1
    hours, rest = divmod(abs(effective), 3600)  # Java's / and % truncate toward zero
    minutes, secs = divmod(rest, 60)
    hours, minutes, secs = sign * hours, sign * minutes, sign * secs

    out = "PT"
    if hours:
        out += f"{hours}H"
    if minutes:
        out += f"{minutes}M"
    if secs == 0 and micros == 0 and len(out) > 2:
        return out
    out += "-0" if seconds < 0 and micros > 0 and secs == 0 else str(secs)
    if micros:
        fraction = 1_000_000 - micros if seconds < 0 else micros
        out += f".{fraction:06d}".rstrip("0")
    return out + "S"
