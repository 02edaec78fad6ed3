"""The forge dialect (spec 002): pipeline runs, releases, deployments and release approvals
under `/v1`, over `engine.forge`.

Callers present Bearer tokens (the server's API tokens; the token's name is who created,
approved or deployed); worker service accounts hold the `service` role, which may only report
task and step status. Every error is `{"error": {"code", "message", "details"}}`. Each caller
may make 1,000 requests a minute (`extra["forge_rate_limit"]` changes it), then gets 429 with
`Retry-After`; bodies over the server's limit (10 MB) get 413.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flowdeck.server.dialect import Dialect, DialectContext, Routes
from flowdeck.server.dialects.forge import deployments, events, releases, runs
from flowdeck.server.dialects.forge.errors import render
from flowdeck.server.dialects.forge.identity import BEARER
from flowdeck.server.options import ServerOptions
from flowdeck.server.ratelimit import FixedWindow, RateLimit

PREFIX = "/v1"
#: Requests per minute per caller (the document's limit).
REQUESTS_PER_MINUTE = 1000


def routes(context: DialectContext) -> list[Routes]:
    return [Routes(router) for router in (runs.router, releases.router, deployments.router,
                                          events.router)]


def rate_limit(options: ServerOptions) -> RateLimit:
    per_minute = int(options.number("forge_rate_limit", REQUESTS_PER_MINUTE)) or 1
    clock: Callable[[], float] = options.extra.get("forge_clock", time.time)
    return RateLimit(FixedWindow(per_minute, 60.0, clock=clock), key="user",
                     reset_unit="epoch_s",
                     message=f"rate limit exceeded: at most {per_minute} requests a minute "
                             "per caller; retry later")


DIALECT = Dialect(
    name="forge",
    prefixes=(PREFIX,),
    routes=routes,
    errors=render,
    identity=BEARER,
    rate_limit=rate_limit,
    openapi_tags=({"name": "forge", "description": "Pipeline runs, releases, deployments and "
                   "release approvals (spec 002)"},),
)
