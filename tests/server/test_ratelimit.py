"""The rate limiters dialects declare, with a clock the test controls."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from flowdeck.server.ratelimit import FixedWindow, RateLimit, TokenBucket


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_fixed_window_counts_per_key_and_resets_at_the_window_end() -> None:
    clock = Clock(1_000_020.0)  # 20 s into a window that ends at 1_000_080
    window = FixedWindow(3, 60.0, clock=clock)
    answers = [window.hit("1.2.3.4") for _ in range(4)]
    assert [a.allowed for a in answers] == [True, True, True, False]
    assert [a.remaining for a in answers] == [2, 1, 0, 0]
    assert {a.reset_at for a in answers} == {1_000_080.0}
    assert answers[-1].retry_after == 60.0
    assert window.hit("5.6.7.8").allowed  # another key, its own count
    clock.now = 1_000_080.0
    assert window.hit("1.2.3.4").remaining == 2  # a new window


def test_token_bucket_bursts_then_refills_at_its_rate() -> None:
    clock = Clock(500.0)
    bucket = TokenBucket(10, 1.0, clock=clock)
    answers = [bucket.hit("key") for _ in range(15)]
    assert sum(a.allowed for a in answers) == 10  # 15 rapid calls: exactly the burst passes
    refused = answers[-1]
    assert refused.remaining == 0 and refused.retry_after == 1.0
    assert refused.reset_at == 510.0  # full again after 10 s
    clock.now += 2.5
    assert [bucket.hit("key").allowed for _ in range(3)] == [True, True, False]


def test_headers_name_the_reset_in_the_unit_asked_for() -> None:
    clock = Clock(1_700_000_000.25)
    decision = FixedWindow(5, 60.0, clock=clock).hit("k")
    seconds = RateLimit(FixedWindow(5, 60.0), reset_unit="epoch_s").headers(decision)
    millis = RateLimit(FixedWindow(5, 60.0), reset_unit="epoch_ms").headers(decision)
    delta = RateLimit(FixedWindow(5, 60.0), reset_unit="delta_s", clock=clock).headers(decision)
    assert seconds == {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "4",
                       "X-RateLimit-Reset": "1700000040"}
    assert millis["X-RateLimit-Reset"] == "1700000040000"
    assert delta["X-RateLimit-Reset"] == "40"
    assert "Retry-After" not in seconds


def test_memory_is_bounded_by_forgetting_the_least_recent_key() -> None:
    clock = Clock(0.0)
    window = FixedWindow(1, 60.0, clock=clock, max_keys=2)
    window.hit("a")
    window.hit("b")
    assert not window.hit("a").allowed  # "a" is now the most recent
    window.hit("c")  # evicts "b"
    assert window.hit("b").allowed
    assert len(window._counts) == 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=1, max_size=60))
def test_a_bucket_never_passes_more_than_burst_plus_refill(gaps: list[float]) -> None:
    clock = Clock(0.0)
    bucket = TokenBucket(4, 0.5, clock=clock)
    passed = 0
    for gap in gaps:
        clock.now += gap
        passed += bucket.hit("k").allowed
    assert passed <= 4 + 0.5 * clock.now + 1e-9
