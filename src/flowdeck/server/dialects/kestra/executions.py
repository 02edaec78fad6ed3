"""Kestra executions routes: search, get, list, create and delete (actions: `actions.py`).

`reads` is mounted before the action routes and `writes` after them: a 1.x action path
(`POST /executions/{id}/resume`) has the same shape as create (`POST
/executions/{namespace}/{flowId}`), and the action wins (see `actions.py`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from flowdeck.core.errors import BadRequestError, ValidationError
from flowdeck.core.models import Execution
from flowdeck.core.states import is_known
from flowdeck.engine.engine import Engine
from flowdeck.engine.query import ExecutionQuery
from flowdeck.server.access import OPERATOR, VIEWER
from flowdeck.server.deps import Uploads, bool_param, get_engine, instant_param, int_param
from flowdeck.server.dialects.kestra.common import (
    execution_query,
    execution_url,
    labels_param,
    paged,
)

reads = APIRouter(tags=["executions"], dependencies=VIEWER)
writes = APIRouter(tags=["executions"], dependencies=OPERATOR)

#: How long `wait=true` holds a create request (Kestra: 1 h).
WAIT_TIMEOUT = 3600.0
MAX_REVISION = 2**31 - 1
Doc = dict[str, Any]


def as_json(engine: Engine, execution: Execution) -> Doc:
    return execution.to_dict(engine.clock.now())


def revision_param(request: Request) -> int | None:
    return int_param(request.query_params, "revision", 0, high=MAX_REVISION) or None


def no_breakpoints(request: Request) -> None:
    if request.query_params.get("breakpoints"):
        raise ValidationError([("breakpoints", "breakpoints are not supported by flowdeck")])


# -- search ---------------------------------------------------------------------------------


def checked_states(query: ExecutionQuery) -> None:
    for attr in ("states", "exclude_states"):
        values = getattr(query, attr)
        if not values:
            continue
        upper = [v.upper() for v in values]
        unknown = [v for v in upper if not is_known(v)]
        if unknown:
            raise BadRequestError(f"unknown execution state '{unknown[0]}'")
        setattr(query, attr, upper)


async def run_search(request: Request, query: ExecutionQuery) -> JSONResponse:
    engine = get_engine(request)
    checked_states(query)
    executions, total = await engine.search_executions(query)
    now = engine.clock.now()
    return JSONResponse(paged([e.to_dict(now) for e in executions], total))


@reads.get("/executions/search", summary="Search executions (filters[...] or legacy params)")
async def search_executions(request: Request) -> JSONResponse:
    engine = get_engine(request)
    return await run_search(request, execution_query(request.query_params, engine.clock.now()))


async def execution_response(request: Request, execution_id: str) -> Response:
    """One execution as stored (also the fast route's answer, see `fast.py`)."""
    engine = get_engine(request)
    return Response(await engine.get_execution_json(execution_id),
                    media_type="application/json")


@reads.get("/executions/{execution_id}", summary="Get an execution")
async def get_execution(request: Request, execution_id: str) -> Response:
    return await execution_response(request, execution_id)


@reads.get("/executions", summary="Executions of a flow: ?namespace=&flowId=&state=&page=&size=")
async def list_executions(request: Request) -> JSONResponse:
    engine = get_engine(request)
    params = request.query_params
    query = execution_query(params, engine.clock.now())
    if params.get("namespace") and not any(k.startswith("filters[namespace]")
                                           for k in params):
        query.namespace_mode = "EQUALS"  # by flow: this namespace, not its children
    return await run_search(request, query)


# -- create ---------------------------------------------------------------------------------


def _schedule_date(engine: Engine, request: Request) -> Any:
    params = request.query_params
    kind = params.get("kind")
    if kind and kind.upper() != "NORMAL":
        raise ValidationError([("kind", f"only NORMAL executions are supported, not '{kind}'")])
    if not params.get("scheduleDate"):
        return None
    schedule_date = instant_param("scheduleDate", params["scheduleDate"])
    if schedule_date > engine.clock.now() + timedelta(seconds=1):
        raise ValidationError([("scheduleDate", "executions scheduled for later are not "
                                                "supported; use a Schedule trigger")])
    return schedule_date


async def create(request: Request, namespace: str, flow_id: str) -> JSONResponse:
    engine = get_engine(request)
    params = request.query_params
    labels = labels_param(params)
    wait = bool_param(params, "wait")
    revision = revision_param(request)
    no_breakpoints(request)
    schedule_date = _schedule_date(engine, request)
    await engine.get_flow_revision(namespace, flow_id, revision)  # 404 before the body
    uploads = Uploads(engine)
    try:
        inputs = await uploads.read(request)
        execution = await engine.create_execution(
            namespace, flow_id, inputs=inputs, labels=labels, revision=revision,
            schedule_date=schedule_date)
    except BaseException:
        uploads.discard()
        raise
    doc = as_json(engine, execution)  # now, while it is CREATED
    if wait:
        try:
            doc = as_json(engine, await engine.wait_until_terminal(execution.id,
                                                                   timeout=WAIT_TIMEOUT))
        except TimeoutError:
            doc = await engine.get_execution_doc(execution.id)
    doc["url"] = execution_url(request, namespace, flow_id, execution.id)
    return JSONResponse(doc)


@writes.post("/executions/trigger/{namespace}/{flow_id}", deprecated=True,
             summary="Create an execution (deprecated path)")
async def trigger_execution(request: Request, namespace: str, flow_id: str) -> JSONResponse:
    return await create(request, namespace, flow_id)


@writes.post("/executions/{namespace}/{flow_id}",
             summary="Create an execution (optional multipart inputs; ?labels=k:v&wait=true)")
async def create_execution(request: Request, namespace: str, flow_id: str) -> JSONResponse:
    return await create(request, namespace, flow_id)


@writes.delete("/executions/{execution_id}", status_code=204, summary="Delete an execution")
async def delete_execution(request: Request, execution_id: str) -> Response:
    engine = get_engine(request)
    await engine.settled(execution_id)
    await engine.delete_execution(execution_id)
    return Response(status_code=204)
