"""What agents delivered (the local message outbox, or the record of HTTP deliveries).

`GET /agent-messages?executionId=&page=&size=` → `{"results": [AgentMessage], "total"}`,
newest first; viewers may read it, as they read the executions the messages came from. An
AgentMessage is `{id, messageId, executionId, namespace, workflowId, customerId, recipient,
channel, content, transport, status, error, createdAt, updatedAt}`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from flowdeck.server.access import VIEWER
from flowdeck.server.deps import get_engine, int_param

router = APIRouter(tags=["agents"], dependencies=VIEWER)
MAX_SIZE = 1000


@router.get("/agent-messages", summary="List the messages agents delivered (newest first)")
async def list_messages(request: Request) -> JSONResponse:
    engine = get_engine(request)
    params = request.query_params
    page = int_param(params, "page", 1, high=1_000_000)
    size = int_param(params, "size", 100, high=MAX_SIZE)
    found, total = await engine.public.list_messages(
        execution_id=params.get("executionId") or None, limit=size, offset=(page - 1) * size)
    return JSONResponse({"results": [m.to_dict() for m in found], "total": total})
