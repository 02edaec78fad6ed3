"""What every dialect serving webhook triggers answers the same way, whatever its body shape.

A refused call must look the same on every webhook route (the Kestra trigger and the staging
flows share one key check and one throttle), so the refusal is built here: one fixed 401 whose
body depends on nothing in the request, and the 429 of a throttled client.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.responses import Response

from flowdeck.engine.webhook_triggers import (
    DEFAULT_FAILURES_PER_MINUTE,
    DEFAULT_WAIT_SECONDS,
    WebhookThrottled,
)
from flowdeck.server.dialect import ApiError, ErrorRenderer

METHODS = ["GET", "POST", "PUT"]
REJECT_STATUS = 401
REJECT_DETAIL = "invalid webhook key"
REJECT_INSTANCE = "/api/v1/main/executions/webhook"


def reject(render: ErrorRenderer) -> Response:
    """The one answer to every failed call; nothing in it depends on the request."""
    return render(ApiError(REJECT_STATUS, REJECT_DETAIL, REJECT_INSTANCE))


def throttled(render: ErrorRenderer, exc: WebhookThrottled) -> Response:
    return render(ApiError(429, str(exc), REJECT_INSTANCE,
                           headers={"Retry-After": str(exc.retry_after)}))


def trigger_options(request: Request) -> dict[str, Any]:
    """The server's webhook settings (`extra`), as `WebhookTriggers.trigger` takes them."""
    options = request.app.state.options
    return {"failures_per_minute": int(options.number("webhook_failures_per_minute",
                                                      DEFAULT_FAILURES_PER_MINUTE)),
            "wait_timeout": options.number("webhook_wait_seconds", DEFAULT_WAIT_SECONDS)}
