"""Kestra's webhook trigger: `GET|POST|PUT /executions/webhook/{namespace}/{flowId}/{key}`.

Open routes (no credentials): the key in the path is the secret, checked by the engine
(`engine/webhook_triggers.py`: constant-time comparison, one refusal for every failure, a
per-client failure throttle). This module presents the outcome in Kestra's terms:

- every failed call gets the same 401 with a byte-identical body (`webhook_answers.reject`);
  a throttled client 429 with `Retry-After`;
- a matched call answers a `WebhookResponse`, held until the execution ends with `wait: true`,
  and only its outputs map with `wait` + `returnOutputs`;
- error bodies after a successful match name the flow, never the URL that carries the key, and
  the key is scrubbed from every message.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flowdeck.core.errors import FlowdeckError
from flowdeck.engine.webhook_triggers import WebhookRejected, WebhookStart, WebhookThrottled
from flowdeck.server.access import OPEN_ROUTE
from flowdeck.server.deps import get_engine, webhook_call
from flowdeck.server.dialects.kestra.common import execution_url
from flowdeck.server.errors import UNEXPECTED, engine_error
from flowdeck.server.problem import KESTRA_PROBLEMS
from flowdeck.server.webhook_answers import (
    METHODS,
    REJECT_INSTANCE,
    reject,
    throttled,
    trigger_options,
)

log = logging.getLogger("flowdeck.server.webhooks")
router = APIRouter(tags=["webhooks"], dependencies=OPEN_ROUTE)
TEMPLATES = ("/executions/webhook/{namespace}/{flow_id}/{key}",
             "/executions/webhook/{namespace}/{flow_id}/{key}/{path:path}")


def webhook_response(request: Request, started: WebhookStart) -> JSONResponse:
    execution, flow = started.execution, started.flow
    if started.trigger.wait and started.trigger.returnOutputs:
        return JSONResponse(execution.outputs or {})
    doc = execution.to_dict(get_engine(request).clock.now())
    body: dict[str, Any] = {k: doc[k] for k in ("tenantId", "id", "namespace", "flowId",
                                                  "flowRevision")}
    body["trigger"] = doc.get("trigger")
    if doc.get("outputs"):
        body["outputs"] = doc["outputs"]
    body["labels"] = doc["labels"]
    body["state"] = doc["state"]
    body["url"] = execution_url(request, flow.namespace, flow.id, execution.id)
    return JSONResponse(body)


async def handle(request: Request, namespace: str, flow_id: str, key: str) -> Response:
    engine = get_engine(request)
    instance = f"{REJECT_INSTANCE}/{namespace}/{flow_id}"

    def scrub(text: str) -> str:
        return text.replace(key, "***") if key else text

    try:
        started = await engine.webhook_triggers.trigger(
            namespace, flow_id, key, webhook_call(request), **trigger_options(request))
    except WebhookThrottled as exc:
        return throttled(KESTRA_PROBLEMS, exc)
    except WebhookRejected:
        return reject(KESTRA_PROBLEMS)
    except FlowdeckError as exc:
        return KESTRA_PROBLEMS(engine_error(exc, instance, scrub))
    except StarletteHTTPException:
        raise  # a 413 and the like are answers, not errors
    except Exception as exc:  # keep the key out of the generic handler's log line
        log.error("webhook %r/%r/***: unexpected %s: %.200s", namespace, flow_id,
                  type(exc).__name__, scrub(str(exc)))
        return KESTRA_PROBLEMS.problem(500, UNEXPECTED, instance)
    return webhook_response(request, started)


async def webhook(namespace: str, flow_id: str, key: str, request: Request) -> Response:
    return await handle(request, namespace, flow_id, key)


async def webhook_with_path(namespace: str, flow_id: str, key: str, path: str,
                            request: Request) -> Response:
    return await handle(request, namespace, flow_id, key)


# One route per method, so each has its own OpenAPI operation id; they behave the same.
for _method in METHODS:
    router.add_api_route(TEMPLATES[0], webhook, methods=[_method],
                         name=f"webhook_{_method.lower()}",
                         summary="Trigger a flow from its webhook (no credentials)")
    router.add_api_route(TEMPLATES[1], webhook_with_path, methods=[_method],
                         name=f"webhook_with_path_{_method.lower()}",
                         summary="Trigger a flow from its webhook, with a path suffix")
