"""Go durations (`1s`, `5m`, `1h30m`, `1.5h`, `300ms`), parsed exactly as Go's
`time.ParseDuration` does and written as Go's `Duration.String()` writes them.

The spec's clients are Go programs, so a duration they accept is accepted here and one they
refuse is refused: a sign, then one or more `<number><unit>` with units ns, us (µs, μs), ms,
s, m, h; "0" alone; nothing else (no spaces, no missing unit, nothing beyond ±2^63-1 ns).
"""

from __future__ import annotations

from datetime import timedelta

__all__ = ["format_go_duration", "parse_go_duration", "parse_go_duration_ns", "to_timedelta"]

UNITS: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # µ (micro sign)
    "\u03bcs": 1_000,  # μ (Greek mu)
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MAX = 1 << 63
HINT = "use Go's form, e.g. 1s, 5m, 1h30m"


def _invalid(text: str, why: str = "invalid duration") -> ValueError:
    return ValueError(f"{why} {text!r} ({HINT})")


def _leading_int(s: str) -> tuple[int, str] | None:
    """Digits at the start of `s` and the rest; None on overflow (as Go's leadingInt)."""
    x, i = 0, 0
    while i < len(s) and "0" <= s[i] <= "9":
        if x > _MAX // 10:
            return None
        x = x * 10 + ord(s[i]) - 48
        if x > _MAX:
            return None
        i += 1
    return x, s[i:]


def _leading_fraction(s: str) -> tuple[int, float, str]:
    """Go's leadingFraction: digits after the dot, their scale, the rest (excess ignored)."""
    x, scale, i, overflow = 0, 1.0, 0, False
    while i < len(s) and "0" <= s[i] <= "9":
        if not overflow:
            if x > (_MAX - 1) // 10:
                overflow = True
            else:
                y = x * 10 + ord(s[i]) - 48
                if y > _MAX:
                    overflow = True
                else:
                    x = y
                    scale *= 10
        i += 1
    return x, scale, s[i:]


def parse_go_duration_ns(text: str) -> int:
    """Nanoseconds of a Go duration; ValueError (saying what is wrong) otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"a duration must be a string like '5m', not {type(text).__name__}")
    s = text
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise _invalid(text)
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise _invalid(text)
        before = len(s)
        lead = _leading_int(s)
        if lead is None:
            raise _invalid(text, "duration out of range:")
        value, s = lead
        pre = before != len(s)
        frac, scale, post = 0, 1.0, False
        if s and s[0] == ".":
            s = s[1:]
            before = len(s)
            frac, scale, s = _leading_fraction(s)
            post = before != len(s)
        if not pre and not post:
            raise _invalid(text)
        i = 0
        while i < len(s) and not (s[i] == "." or "0" <= s[i] <= "9"):
            i += 1
        if i == 0:
            raise _invalid(text, "missing unit in duration")
        unit_text, s = s[:i], s[i:]
        unit = UNITS.get(unit_text)
        if unit is None:
            raise ValueError(f"unknown unit {unit_text!r} in duration {text!r} "
                             "(units: ns, us, ms, s, m, h)")
        if value > _MAX // unit:
            raise _invalid(text, "duration out of range:")
        value *= unit
        if frac > 0:
            value += int(float(frac) * (float(unit) / scale))
            if value > _MAX:
                raise _invalid(text, "duration out of range:")
        total += value
        if total > _MAX:
            raise _invalid(text, "duration out of range:")
    if neg:
        return -total
    if total > _MAX - 1:
        raise _invalid(text, "duration out of range:")
    return total


def to_timedelta(ns: int) -> timedelta:
    """Nanoseconds as a timedelta (sub-microsecond parts truncated toward zero)."""
    micros = abs(ns) // 1000
    return timedelta(microseconds=-micros if ns < 0 else micros)


def parse_go_duration(text: str) -> timedelta:
    return to_timedelta(parse_go_duration_ns(text))


def _frac(v: int, prec: int) -> tuple[str, int]:
    """Go's fmtFrac: the fraction of v / 10**prec without trailing zeros, and v's integer part."""
    digits = ""
    printing = False
    for _ in range(prec):
        digit = v % 10
        printing = printing or digit != 0
        if printing:
            digits = str(digit) + digits
        v //= 10
    return ("." + digits if printing else ""), v


def format_go_duration(ns: int) -> str:
    """`Duration.String()`: 1h30m0s, 1.5s, 300ms, 0s."""
    neg = ns < 0
    u = -ns if neg else ns
    if u < 1_000_000_000:
        if u == 0:
            return "0s"
        if u < 1_000:
            unit, prec = "ns", 0
        elif u < 1_000_000:
            unit, prec = "\u00b5s", 3
        else:
            unit, prec = "ms", 6
        frac, whole = _frac(u, prec)
        out = f"{whole}{frac}{unit}"
    else:
        frac, whole = _frac(u, 9)
        out = f"{whole % 60}{frac}s"
        whole //= 60
        if whole > 0:
            out = f"{whole % 60}m{out}"
            whole //= 60
            if whole > 0:
                out = f"{whole}h{out}"
    return "-" + out if neg else out
