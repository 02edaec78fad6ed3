from datetime import UTC, datetime, timedelta, timezone

from flowdeck.core.clock import Clock, ManualClock, SystemClock


def test_system_clock_is_aware_utc_and_current() -> None:
    clock: Clock = SystemClock()
    before = datetime.now(UTC)
    now = clock.now()
    after = datetime.now(UTC)
    assert now.tzinfo is UTC
    assert before <= now <= after


def test_manual_clock_default_start() -> None:
    assert ManualClock().now() == datetime(2026, 1, 1, tzinfo=UTC)
    assert ManualClock().now().tzinfo is UTC


def test_manual_clock_stays_put_until_moved() -> None:
    clock = ManualClock()
    assert clock.now() == clock.now()


def test_manual_clock_advance_and_set() -> None:
    clock: Clock = ManualClock(datetime(2025, 6, 1, 10, 0, tzinfo=UTC))
    assert isinstance(clock, ManualClock)
    clock.advance(timedelta(minutes=5, microseconds=7))
    assert clock.now() == datetime(2025, 6, 1, 10, 5, 0, 7, tzinfo=UTC)
    clock.advance(timedelta(seconds=-1))
    assert clock.now() == datetime(2025, 6, 1, 10, 4, 59, 7, tzinfo=UTC)
    clock.set(datetime(2030, 1, 1, tzinfo=UTC))
    assert clock.now() == datetime(2030, 1, 1, tzinfo=UTC)


def test_manual_clock_naive_input_is_utc() -> None:
    clock = ManualClock(datetime(2025, 6, 1, 12, 0))
    assert clock.now() == datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    assert clock.now().tzinfo is UTC
    clock.set(datetime(2025, 7, 1))
    assert clock.now() == datetime(2025, 7, 1, tzinfo=UTC)
    assert clock.now().tzinfo is UTC


def test_manual_clock_aware_input_is_converted_to_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    clock = ManualClock(datetime(2025, 6, 1, 12, 0, tzinfo=plus2))
    assert clock.now().tzinfo is UTC
    assert clock.now().hour == 10
    clock.set(datetime(2025, 6, 1, 0, 30, tzinfo=plus2))
    assert clock.now() == datetime(2025, 5, 31, 22, 30, tzinfo=UTC)
    assert clock.now().tzinfo is UTC
