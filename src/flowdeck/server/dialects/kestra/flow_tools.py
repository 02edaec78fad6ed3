"""Kestra's other flow operations: validate a task or a trigger, import flows (a YAML of
several documents or a zip), read or replace one task (1.x `PATCH /flows/{ns}/{id}/{taskId}`),
the task graph, and enable, disable, delete or export flows by ids or by query.

Mounted before `flows.py`: its literal paths (`/flows/import`, `/flows/delete/by-ids`, ...)
must not be taken for a namespace or a flow id.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from flowdeck.core.errors import BadRequestError, ValidationError
from flowdeck.engine import flow_tools
from flowdeck.engine.flow_graph import flow_graph
from flowdeck.engine.flows import FlowDefinition
from flowdeck.server.access import OPERATOR, VIEWER
from flowdeck.server.deps import bool_param, get_engine
from flowdeck.server.dialects.kestra.bodies import flow_keys, json_value
from flowdeck.server.dialects.kestra.flows import flow_json, flow_query

router = APIRouter(tags=["flows"])

OCTET = "application/octet-stream"


def constraint(index: int, problem: str | None) -> dict[str, Any]:
    """A `ValidateConstraintViolation` of one task or trigger."""
    out: dict[str, Any] = {"index": index}
    if problem:
        out["constraints"] = problem
    out.update({"outdated": False, "deprecationPaths": [], "warnings": [], "infos": []})
    return out


@router.post("/flows/validate/task", dependencies=OPERATOR,
             summary="Validate a task definition (JSON)")
async def validate_task(request: Request) -> JSONResponse:
    section = (request.query_params.get("section") or "TASKS").upper()
    if section not in ("TASKS", "TRIGGERS"):
        raise BadRequestError(f"section must be TASKS or TRIGGERS, got '{section}'")
    part = await json_value(request, "a task as a JSON object")
    kind = "task" if section == "TASKS" else "trigger"
    return JSONResponse(constraint(0, flow_tools.validate_part(part, kind)))


@router.post("/flows/validate/trigger", dependencies=OPERATOR,
             summary="Validate a trigger definition (JSON)")
async def validate_trigger(request: Request) -> JSONResponse:
    part = await json_value(request, "a trigger as a JSON object")
    return JSONResponse(constraint(0, flow_tools.validate_part(part, "trigger")))


async def _upload(request: Request) -> tuple[bytes, str]:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return await request.body(), "flows.yml"  # a raw YAML body
    form = await request.form()
    try:
        part = form.get("fileUpload")
        if not isinstance(part, UploadFile):
            raise ValidationError([("fileUpload", "the multipart body needs a file part "
                                                  "named 'fileUpload'")])
        return await part.read(), part.filename or "flows.yml"
    finally:
        await form.close()


@router.post("/flows/import", dependencies=OPERATOR,
             summary="Import flows: a YAML of one or more flows, or a zip of flow files")
async def import_flows(request: Request) -> JSONResponse:
    fail_on_error = bool_param(request.query_params, "failOnError")
    content, filename = await _upload(request)
    sources = flow_tools.import_sources(content, filename)
    failed = await flow_tools.import_flows(get_engine(request), sources,
                                           fail_on_error=fail_on_error)
    return JSONResponse(failed)


def _searched(request: Request) -> list[FlowDefinition]:
    query = flow_query(request.query_params)
    query.page, query.size = 1, 1_000_000
    flows, _ = get_engine(request).flows.search(query)
    return flows


def _keys(flows: list[FlowDefinition]) -> list[tuple[str, str]]:
    return [(f.namespace, f.id) for f in flows]


@router.post("/flows/enable/by-ids", dependencies=OPERATOR, summary="Enable flows by ids")
async def enable_by_ids(request: Request) -> dict[str, int]:
    keys = await flow_keys(request)
    return {"count": await flow_tools.set_disabled(get_engine(request), keys, False)}


@router.post("/flows/enable/by-query", dependencies=OPERATOR, summary="Enable flows by query")
async def enable_by_query(request: Request) -> dict[str, int]:
    keys = _keys(_searched(request))
    return {"count": await flow_tools.set_disabled(get_engine(request), keys, False)}


@router.post("/flows/disable/by-ids", dependencies=OPERATOR, summary="Disable flows by ids")
async def disable_by_ids(request: Request) -> dict[str, int]:
    keys = await flow_keys(request)
    return {"count": await flow_tools.set_disabled(get_engine(request), keys, True)}


@router.post("/flows/disable/by-query", dependencies=OPERATOR,
             summary="Disable flows by query")
async def disable_by_query(request: Request) -> dict[str, int]:
    keys = _keys(_searched(request))
    return {"count": await flow_tools.set_disabled(get_engine(request), keys, True)}


@router.delete("/flows/delete/by-ids", dependencies=OPERATOR, summary="Delete flows by ids")
async def delete_by_ids(request: Request) -> dict[str, int]:
    keys = await flow_keys(request)
    return {"count": await flow_tools.delete_flows(get_engine(request), keys)}


@router.delete("/flows/delete/by-query", dependencies=OPERATOR,
               summary="Delete flows by query")
async def delete_by_query(request: Request) -> dict[str, int]:
    keys = _keys(_searched(request))
    return {"count": await flow_tools.delete_flows(get_engine(request), keys)}


def _zip(flows: list[FlowDefinition]) -> Response:
    return Response(flow_tools.export_zip(flows), media_type=OCTET, headers={
        "Content-Disposition": 'attachment; filename="flows.zip"'})


@router.post("/flows/export/by-ids", dependencies=VIEWER, response_class=Response,
             summary="Export flows by ids as a zip of their sources")
async def export_by_ids(request: Request) -> Response:
    engine = get_engine(request)
    return _zip([engine.get_flow(ns, flow_id) for ns, flow_id in await flow_keys(request)])


@router.get("/flows/export/by-query", dependencies=VIEWER, response_class=Response,
            summary="Export flows by query as a zip of their sources")
async def export_by_query(request: Request) -> Response:
    return _zip(_searched(request))


@router.post("/flows/graph", dependencies=VIEWER, summary="The task graph of a flow source")
async def graph_of_source(request: Request) -> dict[str, Any]:
    raw = await request.body()
    flow = await get_engine(request).validate_flow_async(raw.decode("utf-8", "replace"))
    return flow_graph(flow)


@router.get("/flows/{namespace}/{flow_id}/graph", dependencies=VIEWER,
            summary="The task graph of a flow (?revision=)")
async def graph(namespace: str, flow_id: str, request: Request) -> dict[str, Any]:
    raw = request.query_params.get("revision")
    revision = int(raw) if raw and raw.isdigit() else None
    flow = await get_engine(request).get_flow_revision(namespace, flow_id, revision)
    return flow_graph(flow)


@router.get("/flows/{namespace}/{flow_id}/tasks/{task_id}", dependencies=VIEWER,
            summary="One task of a flow, as its source defines it")
async def get_task(namespace: str, flow_id: str, task_id: str,
                   request: Request) -> dict[str, Any]:
    return flow_tools.task_of(get_engine(request).get_flow(namespace, flow_id), task_id)


@router.patch("/flows/{namespace}/{flow_id}/{task_id}", dependencies=OPERATOR,
              summary="Replace one task of a flow (a new revision)")
async def patch_task(namespace: str, flow_id: str, task_id: str,
                     request: Request) -> JSONResponse:
    task = await json_value(request, "the task as a JSON object")
    flow = await flow_tools.replace_task(get_engine(request), namespace, flow_id, task_id,
                                         task)
    return JSONResponse(flow_json(flow))
