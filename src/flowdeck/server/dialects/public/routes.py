"""The public API's routes (spec 004), under `/api/v1/public`.

- `POST /agents/{workflowId}/execute` `{"input": {...}, "description"}` → 202
  `{executionId, status: "pending", startedAt, message}` (`csvData` cut to 100 rows);
- `GET /executions/{id}/status` → `{id, status, startedAt, completedAt, error, approvalStatus}`;
- `GET /executions/{id}/results` → `{id, status, output, error, startedAt, completedAt}`;
- `GET /executions/{id}/pending-approval` → `{id, workflowId, status, approvalData, startedAt}`
  (409 when nothing waits for a decision);
- `POST /executions/{id}/approve` and `/reject` `{"comment"}` → `{executionId, status:
  "approved"|"rejected", message}` (409 when someone decided first: who and when).

Each route parses, makes one call of `engine.public` with the caller's key, and presents its
typed answer (`to_dict()` is the API's body). A key sees only the executions it started:
another key's execution id is "Execution not found".
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from flowdeck.core.errors import BadRequestError
from flowdeck.core.public import INVALID_KEY, ApiKey, InvalidApiKey
from flowdeck.server.access import APPROVER, OPERATOR, VIEWER
from flowdeck.server.deps import get_engine
from flowdeck.server.dialect import ApiError, ApiFailure
from flowdeck.server.dialects.public.errors import INVALID_BODY
from flowdeck.server.dialects.public.keys import CallerKey

PREFIX = "/api/v1/public"
router = APIRouter(prefix=PREFIX, tags=["public"])


async def json_body(request: Request) -> dict[str, Any]:
    """The JSON object body (`{}` when empty); 400 for anything else: bytes that are not
    JSON or not UTF-8, nesting too deep, a number too long to read, a JSON non-object."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw.decode("utf-8"))  # JSON is UTF-8 (RFC 8259), not UTF-16/32
    except RecursionError:
        raise BadRequestError("Request body is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a 5,000-digit number
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else (
            "not UTF-8" if isinstance(exc, UnicodeDecodeError) else "a number is too long")
        raise BadRequestError(f"Request body is not valid JSON: {why}") from None
    if not isinstance(body, dict):
        raise BadRequestError(INVALID_BODY)
    return body


def decider(key: ApiKey) -> str:
    """Who a decision taken through this API is recorded as (the deck shows it)."""
    return f"API key {key.name}"


@router.post("/agents/{workflow_id}/execute", dependencies=OPERATOR, status_code=202,
             summary="Execute an agent: {input: {csvData: [...]}, description}")
async def execute(request: Request, workflow_id: str, key: CallerKey) -> JSONResponse:
    body = await json_body(request)
    try:
        started = await get_engine(request).public.execute(
            key, workflow_id, body.get("input"), body.get("description"))
    except InvalidApiKey:  # the key went away between identifying it and charging it
        raise ApiFailure(ApiError(401, INVALID_KEY, request.url.path)) from None
    return JSONResponse(started.to_dict(), status_code=202)


@router.get("/executions/{execution_id}/status", dependencies=VIEWER,
            summary="An execution's status")
async def status(request: Request, execution_id: str, key: CallerKey) -> JSONResponse:
    found = await get_engine(request).public.status(key, execution_id)
    return JSONResponse(found.to_dict())


@router.get("/executions/{execution_id}/results", dependencies=VIEWER,
            summary="An execution's output")
async def results(request: Request, execution_id: str, key: CallerKey) -> JSONResponse:
    found = await get_engine(request).public.results(key, execution_id)
    return JSONResponse(found.to_dict())


@router.get("/executions/{execution_id}/pending-approval", dependencies=VIEWER,
            summary="What the execution waits for a decision on")
async def pending_approval(request: Request, execution_id: str,
                           key: CallerKey) -> JSONResponse:
    found = await get_engine(request).public.pending_approval(key, execution_id)
    return JSONResponse(found.to_dict())


async def decide(request: Request, execution_id: str, key: ApiKey,
                 approve: bool) -> JSONResponse:
    body = await json_body(request)
    service = get_engine(request).public
    act = service.approve if approve else service.reject
    decided = await act(key, execution_id, comment=body.get("comment"), by=decider(key))
    return JSONResponse(decided.to_dict())


@router.post("/executions/{execution_id}/approve", dependencies=APPROVER,
             summary="Approve: {comment}; the execution goes on")
async def approve(request: Request, execution_id: str, key: CallerKey) -> JSONResponse:
    return await decide(request, execution_id, key, True)


@router.post("/executions/{execution_id}/reject", dependencies=APPROVER,
             summary="Reject: {comment}; the execution stops (cancelled)")
async def reject(request: Request, execution_id: str, key: CallerKey) -> JSONResponse:
    return await decide(request, execution_id, key, False)
