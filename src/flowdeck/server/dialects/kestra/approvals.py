"""flowdeck approvals over HTTP (an extension next to the Kestra routes; Kestra has none).

- `GET /approvals?status=pending|approved|rejected|expired|all[&executionId=]` → `[Approval]`
  (default `pending`, oldest first);
- `GET /approvals/{id}` → Approval (404 if unknown);
- `POST /approvals/{id}/approve` and `/reject` with an optional JSON body
  `{"comment": str|null, "decidedBy": str|null}` → the decided Approval. The first decision
  wins: a later one is a 409 whose body also carries `status`, `decidedBy` and `decidedAt` of
  the decision that stands; a missing required comment is a 422;
- `POST /approvals/bulk-approve` `{"ids": [...], "comment", "decidedBy"}` → `[Approval]`
  (422 when one of them does not allow bulk approval: then none is decided);
- `GET /approvals/follow` → server-sent events, one per created, decided or expired approval:
  `id: <kind>` and `data: {"kind": "created|decided|expired", "approval": Approval}`, with
  `: ping` keepalives; the stream stays open until the client leaves.

Who decided: the authenticated principal when the request has one (set by the auth layer on
`request.state.principal`; then a `decidedBy` in the body cannot name someone else), else (auth
off on loopback: the `anonymous` principal) the body's `decidedBy`, else `"api"`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from flowdeck.core.errors import BadRequestError, ValidationError
from flowdeck.engine.bus import APPROVAL, ApprovalEvent
from flowdeck.engine.engine import Engine
from flowdeck.server.dialects.kestra.common import get_engine
from flowdeck.server.dialects.kestra.follow import keepalive_interval, open_stream
from flowdeck.server.sse import KEEPALIVE, encode

router = APIRouter(tags=["approvals"])

STATUSES = ("pending", "approved", "rejected", "expired")
MAX_BULK = 1000
MAX_TEXT = 10_000


#: Principals that name nobody: auth is off (`anonymous`) or the route is open.
UNNAMED_KINDS = frozenset({"anonymous", "open"})


def principal_name(request: Request) -> str | None:
    """The authenticated user's name, if the auth layer set one (None when auth is off)."""
    principal = getattr(request.state, "principal", None)
    if principal is None or getattr(principal, "kind", None) in UNNAMED_KINDS:
        return None
    if isinstance(principal, str):
        return principal or None
    name = getattr(principal, "name", None)
    return name if isinstance(name, str) and name else None


async def json_object(request: Request) -> dict[str, Any]:
    """The optional JSON object body (an empty body is `{}`)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise ValidationError([("body", f"invalid JSON: {reason}")]) from None
    if not isinstance(body, dict):
        raise ValidationError([("body", "must be a JSON object")])
    return body


def optional_text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError([(key, "must be a string or null")])
    if len(value) > MAX_TEXT:
        raise ValidationError([(key, f"must be at most {MAX_TEXT} characters")])
    return value


def decider(request: Request, body: dict[str, Any]) -> str:
    given = optional_text(body, "decidedBy")
    principal = principal_name(request)
    if principal is not None:
        return principal
    if given is not None and given.strip():
        return given.strip()
    return "api"


@router.get("/approvals/follow", response_class=Response,
            summary="Follow approvals (server-sent events: created, decided, expired)",
            responses={200: {"content": {"text/event-stream": {}}},
                       429: {"description": "Too many open streams"}})
async def follow_approvals(request: Request) -> Response:
    engine = get_engine(request)
    events = approval_events(engine, keepalive_interval(request))
    return await open_stream(request, events)


async def approval_events(engine: Engine, keepalive: float) -> AsyncIterator[bytes]:
    sub = engine.bus.subscribe(APPROVAL)
    try:
        yield KEEPALIVE  # the stream is open (and subscribed) from here on
        while True:
            try:
                event: ApprovalEvent = await sub.get(keepalive)
            except TimeoutError:
                yield KEEPALIVE
                continue
            yield encode(event.kind, {"kind": event.kind, "approval": event.approval})
    finally:
        sub.close()


@router.get("/approvals", summary="List approvals (?status=pending|approved|rejected|expired|all)")
async def list_approvals(request: Request) -> JSONResponse:
    engine = get_engine(request)
    params = request.query_params
    status = (params.get("status") or "pending").strip().lower()
    if status not in (*STATUSES, "all"):
        raise BadRequestError(f"status must be one of {', '.join(STATUSES)} or all, "
                              f"not '{params.get('status')}'")
    execution_id = params.get("executionId") or None
    approvals = await engine.approvals.list(None if status == "all" else status,
                                            execution_id=execution_id)
    return JSONResponse([a.to_dict() for a in approvals])


@router.post("/approvals/bulk-approve",
             summary='Approve several: {"ids": [...], "comment", "decidedBy"}')
async def bulk_approve(request: Request) -> JSONResponse:
    engine = get_engine(request)
    body = await json_object(request)
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise ValidationError([("ids", "must be a non-empty list of approval ids")])
    if len(ids) > MAX_BULK:
        raise ValidationError([("ids", f"at most {MAX_BULK} approvals at once")])
    comment = optional_text(body, "comment")
    unique = list(dict.fromkeys(ids))
    decided = await engine.approvals.decide_many(unique, by=decider(request, body),
                                                 comment=comment)
    return JSONResponse([a.to_dict() for a in decided])


@router.get("/approvals/{approval_id}", summary="Get an approval")
async def get_approval(request: Request, approval_id: str) -> JSONResponse:
    engine = get_engine(request)
    return JSONResponse((await engine.approvals.get(approval_id)).to_dict())


async def decide(request: Request, approval_id: str, approve: bool) -> JSONResponse:
    engine = get_engine(request)
    await engine.approvals.get(approval_id)  # 404 before looking at the body
    body = await json_object(request)
    comment = optional_text(body, "comment")
    approval = await engine.approvals.decide(approval_id, approve=approve,
                                             by=decider(request, body), comment=comment)
    return JSONResponse(approval.to_dict())


@router.post("/approvals/{approval_id}/approve",
             summary='Approve: {"comment", "decidedBy"} (409 if already decided)')
async def approve(request: Request, approval_id: str) -> JSONResponse:
    return await decide(request, approval_id, True)


@router.post("/approvals/{approval_id}/reject",
             summary='Reject: {"comment", "decidedBy"} (409 if already decided)')
async def reject(request: Request, approval_id: str) -> JSONResponse:
    return await decide(request, approval_id, False)
