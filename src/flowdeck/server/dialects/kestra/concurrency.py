"""Kestra's concurrency limits: `GET /concurrency-limit/search` (every limited flow with how
many of its executions run now) and `PUT /concurrency-limit/{namespace}/{flowId}` (Kestra's
correction of that count: flowdeck counts running executions itself, so only the true count is
accepted, 409 otherwise). `engine/concurrency_limits.py`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from flowdeck.core.errors import ValidationError
from flowdeck.engine import concurrency_limits
from flowdeck.engine.concurrency_limits import ConcurrencyLimit
from flowdeck.server.access import OPERATOR, VIEWER
from flowdeck.server.deps import get_engine
from flowdeck.server.dialects.kestra.bodies import json_value
from flowdeck.server.dialects.kestra.common import paged

router = APIRouter(tags=["flows"])


def limit_json(limit: ConcurrencyLimit) -> dict[str, Any]:
    return {"tenantId": "main", "namespace": limit.namespace, "flowId": limit.flow_id,
            "running": limit.running}


@router.get("/concurrency-limit/search", dependencies=VIEWER,
            summary="Every flow with a concurrency limit and how many of its executions run")
async def search(request: Request) -> dict[str, Any]:
    found = concurrency_limits.limits(get_engine(request))
    return paged([limit_json(limit) for limit in found], len(found))


@router.put("/concurrency-limit/{namespace}/{flow_id}", dependencies=OPERATOR,
            summary="Correct a flow's running count (flowdeck's cannot drift: 409 unless true)")
async def update(request: Request, namespace: str, flow_id: str) -> dict[str, Any]:
    body = await json_value(request, '{"namespace", "flowId", "running"}')
    running = body.get("running") if isinstance(body, dict) else None
    if not isinstance(running, int) or isinstance(running, bool) or running < 0:
        raise ValidationError([("running", "must be a whole number, 0 or more")])
    return limit_json(concurrency_limits.set_running(get_engine(request), namespace, flow_id,
                                                     running))
