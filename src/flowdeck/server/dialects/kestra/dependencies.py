"""Kestra's flow dependencies: `GET /flows/{namespace}/{id}/dependencies`
(`?destinationOnly=&expandAll=`) and `GET /namespaces/{namespace}/dependencies`
(`?destinationOnly=`), as Kestra's `FlowTopologyGraph` (`engine/flow_dependencies.py`): nodes
`{uid, namespace, id}` (uid `main_<namespace>_<id>`) and edges `{source, target, relation}`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from flowdeck.engine import flow_dependencies
from flowdeck.server.access import VIEWER
from flowdeck.server.deps import bool_param, get_engine

router = APIRouter(tags=["flows"], dependencies=VIEWER)


def uid(key: tuple[str, str]) -> str:
    return f"main_{key[0]}_{key[1]}"


def topology(graph: flow_dependencies.Dependencies) -> dict[str, Any]:
    return {"nodes": [{"uid": uid(key), "namespace": key[0], "id": key[1]}
                      for key in graph.nodes],
            "edges": [{"source": uid(source), "target": uid(target), "relation": "FLOW_TASK"}
                      for source, target in graph.edges]}


@router.get("/flows/{namespace}/{flow_id}/dependencies",
            summary="The flows a flow starts, and those that start it")
async def of_flow(request: Request, namespace: str, flow_id: str) -> dict[str, Any]:
    engine = get_engine(request)
    engine.get_flow(namespace, flow_id)  # a 404 for an unknown flow
    params = request.query_params
    return topology(flow_dependencies.of_flow(
        engine.list_flows(), (namespace, flow_id),
        destination_only=bool_param(params, "destinationOnly"),
        expand_all=bool_param(params, "expandAll")))


@router.get("/namespaces/{namespace}/dependencies",
            summary="The flow dependencies of a namespace's flows")
async def of_namespace(request: Request, namespace: str) -> dict[str, Any]:
    return topology(flow_dependencies.of_namespace(
        get_engine(request).list_flows(), namespace,
        destination_only=bool_param(request.query_params, "destinationOnly")))
