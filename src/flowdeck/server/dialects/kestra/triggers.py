"""Kestra's trigger routes over flowdeck's triggers (every flow's Schedule and Webhook
triggers, `engine/triggers.py`): search, list a flow's, pause and resume (`set-disabled`),
unlock, restart and delete (a trigger's state), one by one, by triggers or by query; and
`DELETE /logs/{namespace}/{flowId}?triggerId=`, a trigger's own log lines (there are none).

A search item carries both shapes: Kestra 2.x's `{"trigger", "state"}` and 1.x's
`{"abstractTrigger", "triggerContext"}`; the routes that answer one trigger answer 1.x's
`Trigger` (the trigger context). Backfills are not supported (README).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.datastructures import QueryParams

from flowdeck.core.errors import BadRequestError, ValidationError
from flowdeck.core.timefmt import format_instant
from flowdeck.engine.triggers import TriggerKey, TriggerQuery, TriggerState
from flowdeck.server.access import OPERATOR, VIEWER
from flowdeck.server.deps import bool_param, get_engine, int_param
from flowdeck.server.dialects.kestra.bodies import json_value
from flowdeck.server.dialects.kestra.common import paged, parse_filters, parse_sort

router = APIRouter(tags=["triggers"])


def context(state: TriggerState) -> dict[str, Any]:
    """Kestra 1.x `Trigger` (the trigger context)."""
    out: dict[str, Any] = {"tenantId": "main", "namespace": state.namespace,
                           "flowId": state.flow_id, "triggerId": state.trigger_id,
                           "date": format_instant(state.last_fire or state.updated),
                           "disabled": state.disabled,
                           "updatedDate": format_instant(state.updated)}
    if state.next_fire is not None:
        out["nextExecutionDate"] = format_instant(state.next_fire)
    return out


def api_state(state: TriggerState) -> dict[str, Any]:
    """Kestra 2.x `ApiTriggerState`."""
    out: dict[str, Any] = {"namespace": state.namespace, "flowId": state.flow_id,
                           "triggerId": state.trigger_id,
                           "updatedAt": format_instant(state.updated),
                           "disabled": state.disabled, "locked": False}
    if state.kind == "SCHEDULE":  # Kestra's kinds: SCHEDULE, POLLING, REALTIME (no webhook)
        out["kind"] = state.kind
    if state.last_fire is not None:
        out["lastTriggeredDate"] = out["evaluatedAt"] = format_instant(state.last_fire)
    if state.next_fire is not None:
        out["nextEvaluationDate"] = format_instant(state.next_fire)
    return out


def item(state: TriggerState) -> dict[str, Any]:
    return {"trigger": state.definition, "state": api_state(state),
            "abstractTrigger": state.definition, "triggerContext": context(state)}


def trigger_query(params: QueryParams, namespace: str | None = None,
                  flow_id: str | None = None) -> TriggerQuery:
    query = TriggerQuery(page=int_param(params, "page", 1, high=1_000_000),
                         size=int_param(params, "size", 10), q=params.get("q") or None,
                         namespace=namespace or params.get("namespace") or None,
                         namespace_exact=namespace is not None, flow_id=flow_id)
    if any(s.strip() for s in params.getlist("sort")):
        query.sort = tuple(parse_sort(params))
    for f in parse_filters(params):
        if f.field == "namespace":
            query.namespace, query.namespace_exact = f.value, f.op == "EQUALS"
        elif f.field == "flowId":
            query.flow_id = f.value
        elif f.field in ("q", "triggerId"):
            query.q = f.value
    return query


@router.get("/triggers/search", dependencies=VIEWER, summary="Search triggers")
async def search(request: Request) -> dict[str, Any]:
    found, total = await get_engine(request).triggers.search(
        trigger_query(request.query_params))
    return paged([item(s) for s in found], total)


@router.get("/triggers/{namespace}/{flow_id}", dependencies=VIEWER,
            summary="The triggers of a flow")
async def of_flow(namespace: str, flow_id: str, request: Request) -> dict[str, Any]:
    engine = get_engine(request)
    engine.get_flow(namespace, flow_id)  # a 404 for an unknown flow
    found, total = await engine.triggers.search(
        trigger_query(request.query_params, namespace, flow_id))
    return paged([item(s) for s in found], total)


def _key(body: Any, where: str) -> TriggerKey:
    parts = [body.get(k) if isinstance(body, dict) else None
             for k in ("namespace", "flowId", "triggerId")]
    if not all(isinstance(p, str) and p for p in parts):
        raise ValidationError([(where, 'must be {"namespace", "flowId", "triggerId"}')])
    return parts[0], parts[1], parts[2]  # type: ignore[return-value]


async def _set_disabled(request: Request, keys: list[TriggerKey],
                        disabled: bool) -> list[TriggerState]:
    recover = bool_param(request.query_params, "recoverMissedSchedules")
    return await get_engine(request).triggers.set_disabled(keys, disabled,
                                                          recover_missed=recover)


@router.put("/triggers/set-disabled", dependencies=OPERATOR,
            summary='Pause or resume a trigger: {"namespace","flowId","triggerId","disabled"}')
async def set_disabled(request: Request) -> dict[str, Any]:
    body = await json_value(request, "a trigger with 'disabled'")
    disabled = body.get("disabled") if isinstance(body, dict) else None
    if not isinstance(disabled, bool):
        raise ValidationError([("disabled", "must be true or false")])
    [state] = await _set_disabled(request, [_key(body, "body")], disabled)
    return context(state)


@router.put("/triggers", dependencies=OPERATOR,
            summary="Update a trigger's context (1.x): only `disabled` is taken")
async def update(request: Request) -> dict[str, Any]:
    return await set_disabled(request)


async def _bulk_keys(request: Request) -> tuple[list[TriggerKey], Any]:
    body = await json_value(request, '{"triggers": [...], "disabled": bool}')
    raw = body.get("triggers") if isinstance(body, dict) else body
    if not isinstance(raw, list):
        raise ValidationError([("triggers", "must be a list of triggers")])
    return [_key(t, f"triggers[{i}]") for i, t in enumerate(raw)], body


@router.post("/triggers/set-disabled/by-triggers", dependencies=OPERATOR,
             summary="Pause or resume several triggers")
async def set_disabled_by_triggers(request: Request) -> dict[str, int]:
    keys, body = await _bulk_keys(request)
    disabled = body.get("disabled") if isinstance(body, dict) else None
    if not isinstance(disabled, bool):
        raise ValidationError([("disabled", "must be true or false")])
    return {"count": len(await _set_disabled(request, keys, disabled))}


@router.post("/triggers/set-disabled/by-query", dependencies=OPERATOR,
             summary="Pause or resume every trigger a query matches (?disabled=)")
async def set_disabled_by_query(request: Request) -> dict[str, int]:
    query = trigger_query(request.query_params)
    query.page, query.size = 1, 1_000_000
    found, _ = await get_engine(request).triggers.search(query)
    disabled = bool_param(request.query_params, "disabled", True)
    return {"count": len(await _set_disabled(request, [s.key for s in found], disabled))}


@router.post("/triggers/{namespace}/{flow_id}/{trigger_id}/unlock", dependencies=OPERATOR,
             summary="Unlock a trigger (flowdeck's are never locked: 409)")
async def unlock(namespace: str, flow_id: str, trigger_id: str,
                 request: Request) -> dict[str, Any]:
    return context(await get_engine(request).triggers.unlock(namespace, flow_id, trigger_id))


@router.post("/triggers/unlock/by-triggers", dependencies=OPERATOR,
             summary="Unlock triggers (none is ever locked here: count 0)")
async def unlock_by_triggers(request: Request) -> dict[str, int]:
    keys, _ = await _bulk_keys(request)
    for key in keys:
        await get_engine(request).triggers.get(*key)
    return {"count": 0}


@router.post("/triggers/unlock/by-query", dependencies=OPERATOR,
             summary="Unlock triggers by query (none is ever locked here: count 0)")
async def unlock_by_query(request: Request) -> dict[str, int]:
    return {"count": 0}


@router.post("/triggers/{namespace}/{flow_id}/{trigger_id}/restart", dependencies=OPERATOR,
             summary="Restart a trigger: it starts again from now")
async def restart(namespace: str, flow_id: str, trigger_id: str,
                  request: Request) -> dict[str, Any]:
    return context(await get_engine(request).triggers.reset(namespace, flow_id, trigger_id))


@router.delete("/triggers/{namespace}/{flow_id}/{trigger_id}", dependencies=OPERATOR,
               status_code=204, response_class=Response,
               summary="Delete a trigger's state (it starts again from now)")
async def delete(namespace: str, flow_id: str, trigger_id: str, request: Request) -> Response:
    await get_engine(request).triggers.reset(namespace, flow_id, trigger_id)
    return Response(status_code=204)


@router.delete("/triggers/delete/by-triggers", dependencies=OPERATOR,
               summary="Delete several triggers' state (each starts again from now)")
async def delete_by_triggers(request: Request) -> dict[str, int]:
    keys, _ = await _bulk_keys(request)
    return {"count": await get_engine(request).triggers.reset_many(keys)}


@router.delete("/triggers/delete/by-query", dependencies=OPERATOR,
               summary="Delete the state of every trigger a query matches")
async def delete_by_query(request: Request) -> dict[str, int]:
    query = trigger_query(request.query_params)
    query.page, query.size = 1, 1_000_000
    engine = get_engine(request)
    found, _ = await engine.triggers.search(query)
    return {"count": await engine.triggers.reset_many([s.key for s in found])}


@router.delete("/logs/{namespace}/{flow_id}", dependencies=OPERATOR, response_class=Response,
               summary="Delete a flow trigger's logs (?triggerId=; flowdeck keeps none)")
async def delete_trigger_logs(namespace: str, flow_id: str, request: Request) -> Response:
    """Kestra deletes the log lines its trigger evaluation wrote; flowdeck's triggers write
    no log lines of their own (an execution's lines go with the execution), so none is."""
    if not request.query_params.get("triggerId"):
        raise BadRequestError("query parameter 'triggerId' is required")
    return Response(status_code=200)
