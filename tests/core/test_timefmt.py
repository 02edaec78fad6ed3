from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowdeck.core.timefmt import format_duration, format_instant, parse_duration, parse_instant

# --- instants ---------------------------------------------------------------------------------

aware_datetimes = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone.min]),
)


@pytest.mark.parametrize(
    ("dt", "text"),
    [
        (datetime(2025, 6, 1, 10, 15, 30, 123456, tzinfo=UTC), "2025-06-01T10:15:30.123456Z"),
        (datetime(2025, 6, 1, 10, 15, 30), "2025-06-01T10:15:30.000000Z"),
        (
            datetime(2025, 6, 1, 12, 15, 30, 5, tzinfo=timezone(timedelta(hours=2))),
            "2025-06-01T10:15:30.000005Z",
        ),
        (datetime(5, 1, 1, tzinfo=UTC), "0005-01-01T00:00:00.000000Z"),
    ],
)
def test_format_instant(dt: datetime, text: str) -> None:
    assert format_instant(dt) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-06-01T10:15:30.123456Z", datetime(2025, 6, 1, 10, 15, 30, 123456, tzinfo=UTC)),
        ("2025-06-01T10:15:30Z", datetime(2025, 6, 1, 10, 15, 30, tzinfo=UTC)),
        ("2025-06-01T10:15:30+00:00", datetime(2025, 6, 1, 10, 15, 30, tzinfo=UTC)),
        ("2025-06-01T12:15:30+02:00", datetime(2025, 6, 1, 10, 15, 30, tzinfo=UTC)),
        ("2025-06-01T05:15:30-0500", datetime(2025, 6, 1, 10, 15, 30, tzinfo=UTC)),
        ("2025-06-01T10:15:30.1Z", datetime(2025, 6, 1, 10, 15, 30, 100000, tzinfo=UTC)),
        ("2025-06-01T10:15:30.123Z", datetime(2025, 6, 1, 10, 15, 30, 123000, tzinfo=UTC)),
        ("2025-06-01T10:15:30.123456789Z", datetime(2025, 6, 1, 10, 15, 30, 123456, tzinfo=UTC)),
        ("2025-06-01T10:15:30.999999999Z", datetime(2025, 6, 1, 10, 15, 30, 999999, tzinfo=UTC)),
        ("2025-06-01T10:15:30", datetime(2025, 6, 1, 10, 15, 30, tzinfo=UTC)),
        ("2025-06-01T10:15", datetime(2025, 6, 1, 10, 15, tzinfo=UTC)),
        ("2025-06-01", datetime(2025, 6, 1, tzinfo=UTC)),
    ],
)
def test_parse_instant(text: str, expected: datetime) -> None:
    parsed = parse_instant(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2025-13-01",
        "2025-02-30T00:00:00Z",
        "2025-06-01T25:00:00Z",
        "2025-06-01T10:15:30.1234567890Z",
        "2025-06-01T10:15:30.Z",
        "2025-06-01T10:15:30+25:00",
        "2025-06-01T10:15:30+02:75",
        "2025-06-01T10:15:30Z ",
        "20250601T101530Z",
        "2025-06-01Z",
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_parse_instant_rejects_with_text_in_message(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_instant(text)
    assert repr(text) in str(info.value)


@given(aware_datetimes)
def test_instant_round_trip(dt: datetime) -> None:
    assert parse_instant(format_instant(dt)) == dt


@given(aware_datetimes, aware_datetimes)
def test_instant_text_sorts_chronologically(a: datetime, b: datetime) -> None:
    assert (format_instant(a) < format_instant(b)) == (a < b)


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT1H", timedelta(hours=1)),
        ("PT30S", timedelta(seconds=30)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("PT0,5S", timedelta(milliseconds=500)),
        ("PT1H30M", timedelta(hours=1, minutes=30)),
        ("P1D", timedelta(days=1)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("P2W", timedelta(weeks=2)),
        ("pt1h", timedelta(hours=1)),
        ("p1dt2h3m4.5s", timedelta(days=1, hours=2, minutes=3, seconds=4.5)),
        ("-PT30S", timedelta(seconds=-30)),
        ("+PT30S", timedelta(seconds=30)),
        ("PT0S", timedelta(0)),
        ("PT90M", timedelta(minutes=90)),
        ("PT1.000000999S", timedelta(seconds=1)),
        ("PT-0.5S", timedelta(milliseconds=-500)),
        ("PT-1H-30M", timedelta(hours=-1, minutes=-30)),
        ("-PT-1H", timedelta(hours=1)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "P", "PT", "1H", "xyz", "P1DT", "PT1.5H", "PT.5S", "PT1H30", "PT 1H", "P-", "PT1S2M"],
)
def test_parse_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value) == f"invalid ISO-8601 duration {text!r} (expected e.g. PT30S, PT5M, P1D)"


@pytest.mark.parametrize("text", ["P1Y", "P1M", "P1Y2M3D", "p3m"])
def test_parse_duration_rejects_years_and_months(text: str) -> None:
    with pytest.raises(ValueError, match="years and months have no fixed length") as info:
        parse_duration(text)
    assert repr(text) in str(info.value)


def test_parse_duration_too_large() -> None:
    with pytest.raises(ValueError, match="too large"):
        parse_duration("P99999999999D")


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "PT0S"),
        (timedelta(seconds=1, microseconds=376954), "PT1.376954S"),
        (timedelta(milliseconds=500), "PT0.5S"),
        (timedelta(minutes=1), "PT1M"),
        (timedelta(hours=1, minutes=2, seconds=3.5), "PT1H2M3.5S"),
        (timedelta(hours=25), "PT25H"),
        (timedelta(days=2, seconds=1), "PT48H1S"),
        (timedelta(hours=1, seconds=5), "PT1H5S"),
        (timedelta(microseconds=1), "PT0.000001S"),
        # negative values, as java.time.Duration.toString() writes them
        (timedelta(seconds=-1.5), "PT-1.5S"),
        (timedelta(milliseconds=-500), "PT-0.5S"),
        (timedelta(seconds=-30), "PT-30S"),
        (timedelta(hours=-1, minutes=-30), "PT-1H-30M"),
        (timedelta(minutes=-1, seconds=-0.25), "PT-1M-0.25S"),
        (timedelta(hours=-25), "PT-25H"),
    ],
)
def test_format_duration_matches_java(delta: timedelta, text: str) -> None:
    assert format_duration(delta) == text


@given(st.timedeltas(min_value=timedelta(0)))
def test_duration_round_trip_non_negative(delta: timedelta) -> None:
    assert parse_duration(format_duration(delta)) == delta


@given(st.timedeltas())
def test_duration_round_trip_any_sign(delta: timedelta) -> None:
    assert parse_duration(format_duration(delta)) == delta
