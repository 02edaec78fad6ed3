"""Kestra's bulk execution actions, by ids (a JSON list body) and by query (the search
filters), and the single-execution `force-run` and `unqueue` (both path styles).

Every execution named is checked before any is touched (`engine/bulk.py`): one unknown or in
the wrong state refuses the request with Kestra's 400 `{"message", "invalids"}` (in the
problem body); otherwise the answer is `{"count": n}`.

Mounted before the other execution routes: `/executions/resume/by-ids` has the shape of
create (`/executions/{namespace}/{flowId}`) and `/executions/by-ids` of one execution.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from flowdeck.engine import bulk
from flowdeck.server.access import OPERATOR
from flowdeck.server.deps import bool_param, get_engine
from flowdeck.server.dialect import ApiError, ApiFailure
from flowdeck.server.dialects.kestra.bodies import id_list, json_value, label_pairs
from flowdeck.server.dialects.kestra.common import execution_query

router = APIRouter(tags=["executions"], dependencies=OPERATOR)

#: Bulk actions and the HTTP method Kestra serves each with.
METHODS = {"kill": "DELETE", "pause": "POST", "resume": "POST", "restart": "POST",
           "replay": "POST", "force-run": "POST", "unqueue": "POST", "labels": "POST",
           "change-status": "POST"}


def refused(request: Request, exc: bulk.BulkRefused) -> ApiFailure:
    invalids = [{"invalidValue": value, "message": why} for value, why in exc.invalids]
    return ApiFailure(ApiError(400, str(exc), request.url.path,
                               details={"invalids": invalids}))


async def _labels_by_ids(request: Request) -> tuple[list[str], list[tuple[str, str]]]:
    """1.x/2.x `{"executionsId": [...], "executionLabels": [...]}`."""
    body = await json_value(request, '{"executionsId": [...], "executionLabels": [...]}')
    if not isinstance(body, dict):
        raise ApiFailure(ApiError(422, 'expected {"executionsId": [...], '
                                       '"executionLabels": [...]}', request.url.path))
    ids = body.get("executionsId")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ApiFailure(ApiError(422, "executionsId must be a list of ids",
                                  request.url.path))
    return ids, label_pairs(body.get("executionLabels") or [], "executionLabels")


async def request_for(request: Request, action: str, by: str) -> bulk.BulkRequest:
    """The bulk request a call names: its ids (body or query) and its options."""
    params = request.query_params
    labels: list[tuple[str, str]] = []
    if action == "labels" and by == "by-ids":
        ids, labels = await _labels_by_ids(request)
    elif by == "by-ids":
        ids = await id_list(request)
    else:
        if action == "labels":
            labels = label_pairs(await json_value(request, "a list of labels") or [])
        engine = get_engine(request)
        ids = await bulk.matching(engine, execution_query(params, engine.clock.now()))
    status = params.get("newStatus") or params.get("status") or params.get("state")
    return bulk.BulkRequest(action=action, ids=ids, labels=labels,
                            status=status.upper() if status else None,
                            latest_revision=bool_param(params, "latestRevision"))


async def run(request: Request, action: str, by: str) -> dict[str, int]:
    bulk_request = await request_for(request, action, by)
    try:
        count = await bulk.apply(get_engine(request), bulk_request)
    except bulk.BulkRefused as exc:
        raise refused(request, exc) from None
    return {"count": count}


def _route(action: str, by: str) -> None:
    async def endpoint(request: Request) -> dict[str, int]:
        return await run(request, action, by)

    endpoint.__name__ = f"{action.replace('-', '_')}_{by.replace('-', '_')}"
    router.add_api_route(f"/executions/{action}/{by}", endpoint, methods=[METHODS[action]],
                         summary=f"{action.capitalize()} executions {by.replace('-', ' ')}")


for _action in METHODS:
    for _by in ("by-ids", "by-query"):
        _route(_action, _by)


@router.delete("/executions/by-ids", summary="Delete executions by ids")
async def delete_by_ids(request: Request) -> dict[str, int]:
    return await run(request, "delete", "by-ids")


@router.delete("/executions/by-query", summary="Delete executions by query")
async def delete_by_query(request: Request) -> dict[str, int]:
    return await run(request, "delete", "by-query")


async def _single(request: Request, execution_id: str, action: str) -> dict[str, Any]:
    engine = get_engine(request)
    if action == "force-run":
        execution = await bulk.force_run(engine, execution_id)
    else:
        state = request.query_params.get("state")
        execution = await bulk.unqueue(engine, execution_id, state)
    return execution.to_dict(engine.clock.now())


@router.post("/executions/{execution_id}/actions/force-run",
             summary="Start a CREATED or QUEUED execution past its flow's concurrency limit")
async def force_run_v2(request: Request, execution_id: str) -> JSONResponse:
    return JSONResponse(await _single(request, execution_id, "force-run"))


@router.post("/executions/{execution_id}/force-run", summary="Force run (1.x path)")
async def force_run_v1(request: Request, execution_id: str) -> JSONResponse:
    return JSONResponse(await _single(request, execution_id, "force-run"))


@router.post("/executions/{execution_id}/actions/unqueue",
             summary="Take a QUEUED execution out of its queue (?state= to end it instead)")
async def unqueue_v2(request: Request, execution_id: str) -> JSONResponse:
    return JSONResponse(await _single(request, execution_id, "unqueue"))


@router.post("/executions/{execution_id}/unqueue", summary="Unqueue (1.x path)")
async def unqueue_v1(request: Request, execution_id: str) -> JSONResponse:
    return JSONResponse(await _single(request, execution_id, "unqueue"))
