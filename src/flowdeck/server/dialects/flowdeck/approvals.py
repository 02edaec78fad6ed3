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

Reads need the viewer role, decisions the approver role. Who decided: the caller when it has a
name (then a `decidedBy` in the body cannot name someone else), else (auth off on loopback: the
`anonymous` caller) the body's `decidedBy`, else `"api"`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from flowdeck.core.errors import BadRequestError, ValidationError
from flowdeck.engine.bus import APPROVAL, ApprovalEvent
from flowdeck.engine.engine import Engine
from flowdeck.server.access import APPROVER, VIEWER, Caller
from flowdeck.server.auth import Identity
from flowdeck.server.deps import get_engine, json_object
from flowdeck.server.sse import KEEPALIVE, encode, keepalive_interval, open_stream

router = APIRouter(tags=["approvals"])

STATUSES = ("pending", "approved", "rejected", "expired")
MAX_BULK = 1000
MAX_TEXT = 10_000


#: Callers that name nobody: auth is off (`anonymous`) or the route is open.
UNNAMED_KINDS = frozenset({"anonymous", "open"})


def optional_text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError([(key, "must be a string or null")])
    if len(value) > MAX_TEXT:
        raise ValidationError([(key, f"must be at most {MAX_TEXT} characters")])
    return value


def decider(caller: Identity, body: dict[str, Any]) -> str:
    given = optional_text(body, "decidedBy")
    if caller.kind not in UNNAMED_KINDS and caller.name:
        return caller.name
    if given is not None and given.strip():
        return given.strip()
    return "api"


@router.get("/approvals/follow", response_class=Response, dependencies=VIEWER,
            summary="Follow approvals (server-sent events: created, decided, expired)",
            responses={200: {"content": {"text/event-stream": {}}},
                       429: {"description": "Too many open streams"}})
async def follow_approvals(request: Request) -> Response:
    engine = get_engine(request)
    events = approval_events(engine, keepalive_interval(request))
    return await open_stream(request, events)


async def approval_events(engine: Engine, keepalive: float) -> AsyncIterator[bytes]:
    sub = engine.subscribe(APPROVAL)
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


@router.get("/approvals", dependencies=VIEWER,
            summary="List approvals (?status=pending|approved|rejected|expired|all)")
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


@router.post("/approvals/bulk-approve", dependencies=APPROVER,
             summary='Approve several: {"ids": [...], "comment", "decidedBy"}')
async def bulk_approve(request: Request, caller: Caller) -> JSONResponse:
    engine = get_engine(request)
    body = await json_object(request)
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise ValidationError([("ids", "must be a non-empty list of approval ids")])
    if len(ids) > MAX_BULK:
        raise ValidationError([("ids", f"at most {MAX_BULK} approvals at once")])
    comment = optional_text(body, "comment")
    unique = list(dict.fromkeys(ids))
    decided = await engine.approvals.decide_many(unique, by=decider(caller, body),
                                                 comment=comment)
    return JSONResponse([a.to_dict() for a in decided])


@router.get("/approvals/{approval_id}", dependencies=VIEWER, summary="Get an approval")
async def get_approval(request: Request, approval_id: str) -> JSONResponse:
    engine = get_engine(request)
    return JSONResponse((await engine.approvals.get(approval_id)).to_dict())


async def decide(request: Request, caller: Identity, approval_id: str,
                 approve: bool) -> JSONResponse:
    engine = get_engine(request)
    await engine.approvals.get(approval_id)  # 404 before looking at the body
    body = await json_object(request)
    comment = optional_text(body, "comment")
    approval = await engine.approvals.decide(approval_id, approve=approve,
                                             by=decider(caller, body), comment=comment)
    return JSONResponse(approval.to_dict())


@router.post("/approvals/{approval_id}/approve", dependencies=APPROVER,
             summary='Approve: {"comment", "decidedBy"} (409 if already decided)')
async def approve(request: Request, caller: Caller, approval_id: str) -> JSONResponse:
    return await decide(request, caller, approval_id, True)


@router.post("/approvals/{approval_id}/reject", dependencies=APPROVER,
             summary='Reject: {"comment", "decidedBy"} (409 if already decided)')
async def reject(request: Request, caller: Caller, approval_id: str) -> JSONResponse:
    return await decide(request, caller, approval_id, False)
