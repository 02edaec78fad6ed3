"""Kestra's bulk flow update from a multi-document YAML body: `POST /flows/bulk`
(`?namespace=&delete=&allowNamespaceChild=`) and `POST /flows/{namespace}` (`?delete=`; a
namespace's flows made what the body holds). Every flow is checked before any is applied
(`engine/flow_tools.update_many`); the answer is the list of flows as updated, with their
source.

Mounted after the other flow routes: `/flows/{namespace}` must not capture `/flows/validate`,
`/flows/import` and the other literal POST paths.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from flowdeck.engine import flow_tools
from flowdeck.server.access import OPERATOR
from flowdeck.server.deps import bool_param, get_engine
from flowdeck.server.dialects.kestra.flows import flow_json, yaml_body

router = APIRouter(tags=["flows"], dependencies=OPERATOR)


@router.post("/flows/bulk", summary="Create or update every flow of a multi-document YAML")
async def bulk_update(request: Request) -> JSONResponse:
    params = request.query_params
    flows = await flow_tools.update_many(
        get_engine(request), await yaml_body(request), namespace=params.get("namespace") or None,
        delete=bool_param(params, "delete"),
        allow_child=bool_param(params, "allowNamespaceChild"))
    return JSONResponse([flow_json(flow) for flow in flows])


@router.post("/flows/{namespace}",
             summary="Make a namespace's flows those of a multi-document YAML (?delete=true)")
async def update_namespace(request: Request, namespace: str) -> JSONResponse:
    flows = await flow_tools.update_many(
        get_engine(request), await yaml_body(request), namespace=namespace,
        delete=bool_param(request.query_params, "delete"))
    return JSONResponse([flow_json(flow) for flow in flows])
