"""Read-only views around executions: an execution's task graph and flow revision, the
flows one may execute, and the latest execution of each of several flows.

Mounted before the execution reads: `/executions/latest`, `/executions/namespaces` and
`/executions/flows/...` would otherwise be taken for execution ids.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from flowdeck.core.timefmt import format_instant
from flowdeck.engine.flow_graph import flow_graph
from flowdeck.engine.query import ExecutionQuery
from flowdeck.server.access import VIEWER
from flowdeck.server.deps import get_engine
from flowdeck.server.dialects.kestra.bodies import json_value
from flowdeck.server.dialects.kestra.flows import flow_json

router = APIRouter(tags=["executions"], dependencies=VIEWER)


@router.get("/executions/namespaces", summary="Namespaces that hold an executable flow")
async def executable_namespaces(request: Request) -> list[str]:
    engine = get_engine(request)
    return sorted({f.namespace for f in engine.list_flows() if not f.disabled})


@router.get("/executions/namespaces/{namespace}/flows",
            summary="The executable flows of a namespace")
async def executable_flows(namespace: str, request: Request) -> list[dict[str, Any]]:
    flows = get_engine(request).list_flows(namespace)
    return [flow_json(f, with_source=False) for f in flows if not f.disabled]


@router.get("/executions/flows/{namespace}/{flow_id}",
            summary="A flow as an execution of it sees it (?revision=)")
async def flow_for_execution(namespace: str, flow_id: str,
                             request: Request) -> dict[str, Any]:
    raw = request.query_params.get("revision")
    revision = int(raw) if raw and raw.isdigit() else None
    flow = await get_engine(request).get_flow_revision(namespace, flow_id, revision)
    return flow_json(flow, with_source=False)


@router.get("/executions/{execution_id}/flow", summary="The flow revision an execution runs")
async def flow_of_execution(execution_id: str, request: Request) -> dict[str, Any]:
    engine = get_engine(request)
    execution = await engine.get_execution(execution_id)
    flow = await engine.get_flow_revision(execution.namespace, execution.flow_id,
                                          execution.flow_revision)
    return flow_json(flow, with_source=False)


@router.get("/executions/{execution_id}/graph", summary="The task graph of an execution")
async def execution_graph(execution_id: str, request: Request) -> dict[str, Any]:
    engine = get_engine(request)
    execution = await engine.get_execution(execution_id)
    flow = await engine.get_flow_revision(execution.namespace, execution.flow_id,
                                          execution.flow_revision)
    return flow_graph(flow)


@router.post("/executions/latest",
             summary='The latest execution of each flow: [{"namespace", "id"}, ...]')
async def latest(request: Request) -> list[dict[str, Any]]:
    body = await json_value(request, '[{"namespace": ..., "id": ...}]') or []
    engine = get_engine(request)
    out = []
    for item in body if isinstance(body, list) else []:
        if not isinstance(item, dict):
            continue
        query = ExecutionQuery(page=1, size=1, sort=[("state.startDate", True)])
        query.namespace, query.namespace_mode = item.get("namespace"), "EQUALS"
        query.flow_id = item.get("id")
        found, _ = await engine.search_executions(query)
        if not found:
            continue
        execution = found[0]
        out.append({"id": execution.id, "flowId": execution.flow_id,
                    "namespace": execution.namespace,
                    "startDate": format_instant(execution.state.start_date),
                    "status": execution.state.current})
    return out
