"""The public agent API (spec 004): customer-facing sites run agents with an API key.

Everything under `/api/v1/public` answers in the API's own error body (`errors.py`), identifies
its callers by their API key only (`keys.py`), and is rate limited per key by a token bucket:
a burst of 10, then 1 request a second, with `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
`X-RateLimit-Reset` (epoch milliseconds, when the bucket is full again) on every answer and
`Retry-After` on a 429. `flowdeck serve` installs the bundled agents at start-up.

Tunables in `ServerOptions.extra`: `public_rate_burst` (10), `public_rate_per_s` (1.0) and
`public_rate_clock` (a `() -> epoch seconds` callable; tests set it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flowdeck.engine.engine import Engine
from flowdeck.server.dialect import Dialect, DialectContext, Routes
from flowdeck.server.dialects.public import errors, routes
from flowdeck.server.dialects.public.keys import PUBLIC_API_KEYS
from flowdeck.server.options import ServerOptions
from flowdeck.server.ratelimit import RateLimit, TokenBucket

PREFIX = routes.PREFIX
BURST = 10
PER_SECOND = 1.0


def rate_limit(options: ServerOptions) -> RateLimit:
    clock: Callable[[], float] = options.extra.get("public_rate_clock", time.time)
    burst = max(1, int(options.number("public_rate_burst", BURST)))
    rate = options.number("public_rate_per_s", PER_SECOND) or PER_SECOND
    return RateLimit(TokenBucket(burst, rate, clock=clock), key="key", reset_unit="epoch_ms",
                     message=errors.RATE_LIMITED, clock=clock)


async def install_agents(engine: Engine) -> str | None:
    """Apply the bundled agents in the agents' namespace (unchanged ones stay put)."""
    await engine.public.install_bundled_agents()
    return None


def mounts(context: DialectContext) -> list[Routes]:
    return [Routes(routes.router)]


DIALECT = Dialect(
    name="public",
    prefixes=(PREFIX,),
    routes=mounts,
    errors=errors.render,
    identity=PUBLIC_API_KEYS,
    rate_limit=rate_limit,
    on_startup=install_agents,
    openapi_tags=({"name": "public", "description": "The public agent API: execute agents "
                   "with an API key, read their status and results, approve or reject."},),
)
