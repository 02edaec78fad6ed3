"""Go durations: exactly what Go's time.ParseDuration accepts, and nothing else."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowdeck.engine.flowctl.durations import (
    format_go_duration,
    parse_go_duration,
    parse_go_duration_ns,
)

S = 1_000_000_000
MAX = (1 << 63) - 1
#: Go's grammar: a sign, then "0" or one or more <number><unit>.
GRAMMAR = re.compile(r"[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h))+)")
UNITS = {"ns": 1, "us": 1000, "\u00b5s": 1000, "\u03bcs": 1000, "ms": 10**6, "s": S,
         "m": 60 * S, "h": 3600 * S}


@pytest.mark.parametrize(("text", "ns"), [
    ("0", 0), ("5s", 5 * S), ("+5s", 5 * S), ("-5s", -5 * S), ("1h30m", 5400 * S),
    ("1.5h", 5400 * S), ("300ms", 300_000_000), (".5s", S // 2), ("1.s", S),
    ("1h1m1s1ms1us1ns", 3661 * S + 1_001_001), ("1\u00b5s", 1000), ("1\u03bcs", 1000),
    ("1s1s", 2 * S),
    # from Go's own table (time_test.go)
    ("9223372036854775807ns", MAX), ("9223372036854775.807us", MAX),
    ("9223372036s854ms775us807ns", MAX), ("-9223372036854775808ns", -(1 << 63)),
    ("-9223372036s854ms775us808ns", -(1 << 63)),
    ("0.100000000000000000000h", 6 * 60 * S),
    ("0.830103483285477580700h", (49 * 60 + 48) * S + 372539827),
])
def test_go_values(text: str, ns: int) -> None:
    assert parse_go_duration_ns(text) == ns


@pytest.mark.parametrize("text", [
    "", "1", "s", "1x", " 1s", "1s ", "1 s", "1.5", ".s", "--1s", "1e3s", "1S", "1H",
    "9223372036854775808ns", "2562048h", "-", "+", "1h 30m", "P1D", "PT5M",
])
def test_go_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_go_duration_ns(text)


def test_timedelta_and_messages() -> None:
    assert parse_go_duration("1h30m").total_seconds() == 5400
    with pytest.raises(ValueError, match="unknown unit 'd'"):
        parse_go_duration_ns("1d")
    with pytest.raises(ValueError, match="missing unit"):
        parse_go_duration_ns("10")


components = st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(sorted(UNITS))),
                      min_size=1, max_size=6)


@settings(max_examples=200)
@given(components, st.sampled_from(["", "+", "-"]))
def test_sums_of_components(parts: list[tuple[int, str]], sign: str) -> None:
    text = sign + "".join(f"{value}{unit}" for value, unit in parts)
    total = sum(value * UNITS[unit] for value, unit in parts)
    if total > (MAX + 1 if sign == "-" else MAX):  # past int64 nanoseconds, as in Go
        with pytest.raises(ValueError, match="out of range"):
            parse_go_duration_ns(text)
    else:
        assert parse_go_duration_ns(text) == (-total if sign == "-" else total)


@settings(max_examples=300)
@given(st.integers(-MAX, MAX))
def test_format_round_trips(ns: int) -> None:
    assert parse_go_duration_ns(format_go_duration(ns)) == ns


@settings(max_examples=500)
@given(st.text(alphabet="0123456789.hmsun\u00b5+- xd", max_size=12))
def test_accepts_exactly_the_grammar(text: str) -> None:
    if GRAMMAR.fullmatch(text) is None:
        with pytest.raises(ValueError):
            parse_go_duration_ns(text)
    else:
        try:
            parse_go_duration_ns(text)
        except ValueError as exc:
            assert "out of range" in str(exc)


def test_format_like_go() -> None:
    assert format_go_duration(0) == "0s"
    assert format_go_duration(5400 * S) == "1h30m0s"
    assert format_go_duration(1500 * 10**6) == "1.5s"
    assert format_go_duration(300 * 10**6) == "300ms"
    assert format_go_duration(1500) == "1.5\u00b5s"
    assert format_go_duration(-S) == "-1s"
