"""The public API's token bucket over real HTTP: a burst of 10 per key, then 1 a second;
`X-RateLimit-Limit`, `-Remaining` and `-Reset` (epoch milliseconds) on every answer, refusals
included; 429 in the documented body with `Retry-After`. With the limiter's clock in the
test's hands the counts are exact; with the real clock, 15 rapid calls still let exactly 10
through (plus whatever refilled meanwhile, which the test measures)."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import httpx

from flowdeck.server.app import ServerOptions
from public.http_support import API, RATE_HEADERS, RateClock, bearer, public_server

UNKNOWN = f"{API}/executions/0193a7e4-0000-7000-8000-000000000000/status"


def limit_headers(answer: httpx.Response) -> tuple[int, int, int]:
    assert all(name in answer.headers for name in RATE_HEADERS), answer.headers
    return (int(answer.headers["x-ratelimit-limit"]),
            int(answer.headers["x-ratelimit-remaining"]),
            int(answer.headers["x-ratelimit-reset"]))


def assert_refused(answer: httpx.Response, retry_after: int) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.json() == {"statusCode": 429, "message": "Rate limit exceeded",
                             "error": "Too Many Requests", "retryAfter": retry_after}
    assert list(answer.json()) == ["statusCode", "message", "error", "retryAfter"]
    assert answer.headers["retry-after"] == str(retry_after)
    assert limit_headers(answer)[:2] == (10, 0)


async def test_fifteen_rapid_calls_let_exactly_ten_through(tmp_path: Path) -> None:
    clock = RateClock()
    async with public_server(tmp_path, options=ServerOptions(
            extra={"public_rate_clock": clock})) as api:
        secret, other = await api.key("one"), await api.key("two")
        answers = [await api.client.get(UNKNOWN, headers=bearer(secret)) for _ in range(15)]
        assert [a.status_code for a in answers] == [404] * 10 + [429] * 5
        for i, answer in enumerate(answers[:10]):
            # the bucket is full again (10 - remaining) seconds from now, in milliseconds
            assert limit_headers(answer) == (10, 9 - i, math.ceil((clock.now + i + 1) * 1000))
        for answer in answers[10:]:
            assert_refused(answer, 1)
            assert limit_headers(answer)[2] == math.ceil((clock.now + 10) * 1000)

        # another key has a bucket of its own
        assert (await api.client.get(UNKNOWN, headers=bearer(other))).status_code == 404

        # a token a second: after 1 s one call passes, after 2.5 s two more
        clock.now += 1
        assert (await api.client.get(UNKNOWN, headers=bearer(secret))).status_code == 404
        assert_refused(await api.client.get(UNKNOWN, headers=bearer(secret)), 1)
        clock.now += 2.5
        passed = [(await api.client.get(UNKNOWN, headers=bearer(secret))).status_code
                  for _ in range(3)]
        assert passed == [404, 404, 429]
        # a long pause refills the burst, never more
        clock.now += 3600
        answers = [await api.client.get(UNKNOWN, headers=bearer(secret)) for _ in range(11)]
        assert [a.status_code for a in answers].count(404) == 10


async def test_refusals_count_by_address_and_carry_the_headers(tmp_path: Path) -> None:
    clock = RateClock()
    async with public_server(tmp_path, options=ServerOptions(
            extra={"public_rate_clock": clock})) as api:
        bad = bearer("0" * 64)
        answers = [await api.client.get(UNKNOWN, headers=bad) for _ in range(11)]
        assert [a.status_code for a in answers] == [401] * 10 + [429]
        assert [limit_headers(a)[1] for a in answers[:10]] == list(range(9, -1, -1))
        assert_refused(answers[10], 1)
        # the key's own bucket is untouched; an unrouted path counts too
        secret = await api.key()
        unrouted = await api.client.get(f"{API}/nowhere", headers=bearer(secret))
        assert unrouted.status_code == 404 and limit_headers(unrouted)[:2] == (10, 9)
        # every route answers with the headers, whatever the status
        execute = await api.client.post(f"{API}/agents/none/execute", headers=bearer(secret))
        assert execute.status_code == 404 and limit_headers(execute)[:2] == (10, 8)


async def test_the_real_clock_over_real_http(tmp_path: Path) -> None:
    async with public_server(tmp_path) as api:
        secret = await api.key()
        began = time.monotonic()
        answers = await asyncio.gather(*(api.client.get(UNKNOWN, headers=bearer(secret))
                                         for _ in range(15)))
        elapsed = time.monotonic() - began
        passed = [a.status_code for a in answers].count(404)
        refused = [a for a in answers if a.status_code == 429]
        # exactly the burst, plus the tokens that can have refilled while the calls ran
        assert 10 <= passed <= 10 + math.floor(elapsed)
        assert len(refused) == 15 - passed
        for answer in refused:
            assert answer.json()["retryAfter"] == 1 and answer.headers["retry-after"] == "1"
        now_ms = time.time() * 1000
        for answer in answers:
            reset = limit_headers(answer)[2]
            assert now_ms - 1000 < reset <= now_ms + 11_000  # epoch milliseconds
