"""The FlowCtl dialect (spec 003): workflows submitted as JSON, their tasks, health and metrics.

Paths (the spec's base `/api/v1`, which Kestra's tenant-less routes share: this dialect owns
only its own subtrees, so the longest-prefix rule gives every error under them its body):

- `/api/v1/workflows...` and `/api/v1/tasks/{id}` (`workflows.py`);
- `/api/v1/health`, `/api/v1/metrics` (the spec's JSON) and the root `/metrics`, the whole
  engine's metrics in Prometheus' text format (`system.py`). A root path belongs to the dialect
  that lists it as a prefix, like any other: no other dialect claims `/metrics`.

Every error is `{"error": "..."}`, whatever raised it (a route, FastAPI's validation, the body
limit, the auth layer, an unrouted path). Callers authenticate as on the rest of the server
(HTTP Basic or an API token, off only on loopback without credentials; the spec itself names
none): reads need `viewer`, submitting and cancelling `operator`.

Rate limit: 100 requests per minute per client address in a fixed window aligned to the
minute, counted on every request under these paths (refused ones too), with
`X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (unix seconds) on every
answer, and a 429 `{"error": "Rate limit exceeded. Try again later."}` (with `Retry-After`)
past it. `ServerOptions.extra`: `flowctl_rate_limit` (requests per minute, from `[flowctl]
rate_limit_per_minute`) and `flowctl_clock` (a callable giving unix seconds, for tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi.responses import JSONResponse

from flowdeck.server.auth import HttpCredentials
from flowdeck.server.dialect import ApiError, Dialect, DialectContext, Routes
from flowdeck.server.dialects.flowctl import system, workflows
from flowdeck.server.options import ServerOptions
from flowdeck.server.ratelimit import FixedWindow, RateLimit

PREFIXES = ("/api/v1/workflows", "/api/v1/tasks", "/api/v1/health", "/api/v1/metrics",
            "/metrics")
RATE_LIMIT = 100
WINDOW_S = 60.0
RATE_LIMITED = "Rate limit exceeded. Try again later."
#: Who may call: as on the rest of the server (HTTP Basic or a Bearer API token).
CREDENTIALS = HttpCredentials(challenge='Basic realm="flowdeck"')


def render(error: ApiError) -> JSONResponse:
    """The spec's error body: `{"error": "..."}`."""
    return JSONResponse({"error": error.message}, status_code=error.status,
                        headers=dict(error.headers))


def rate_limit(options: ServerOptions) -> RateLimit:
    per_minute = int(options.number("flowctl_rate_limit", RATE_LIMIT)) or RATE_LIMIT
    clock: Callable[[], float] = options.extra.get("flowctl_clock", time.time)
    return RateLimit(FixedWindow(per_minute, WINDOW_S, clock=clock), key="ip",
                     reset_unit="epoch_s", message=RATE_LIMITED)


def routes(context: DialectContext) -> list[Routes]:
    return [Routes(workflows.router), Routes(system.router)]


DIALECT = Dialect(
    name="flowctl",
    prefixes=PREFIXES,
    routes=routes,
    errors=render,
    identity=CREDENTIALS,
    rate_limit=rate_limit,
    openapi_tags=({"name": "flowctl", "description": "FlowCtl workflows (JSON DAGs of "
                   "generic, ci, etl and ml_training tasks), health and metrics"},),
)
