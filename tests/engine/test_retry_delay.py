"""Exponential retry delays: Kestra's formula, capped by maxInterval, never an overflow."""

from __future__ import annotations

from datetime import timedelta

from flowdeck.engine.runner import MAX_RETRY_DELAY_S, retry_delay
from flowdeck.engine.tasks.base import RetryPolicy


def test_exponential_delays_grow_and_stop_at_max_interval() -> None:
    policy = RetryPolicy.model_validate({"type": "exponential", "interval": "PT1S",
                                         "maxInterval": "PT5M", "delayFactor": 2,
                                         "maxAttempts": 50})
    assert [retry_delay(policy, n).total_seconds() for n in (1, 2, 3, 9, 10, 40)] == [
        1, 2, 4, 256, 300, 300]


def test_a_long_run_of_retries_does_not_overflow() -> None:
    policy = RetryPolicy.model_validate({"type": "exponential", "interval": "PT1S",
                                         "delayFactor": 100, "maxAttempts": 1000})
    assert retry_delay(policy, 3) == timedelta(seconds=10_000)
    assert retry_delay(policy, 999) == timedelta(seconds=MAX_RETRY_DELAY_S)
    capped = policy.model_copy(update={"maxInterval": timedelta(hours=1)})
    assert retry_delay(capped, 999) == timedelta(hours=1)
