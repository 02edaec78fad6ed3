"""The hottest read, GET one execution, matched before every other route as a plain Starlette
route: it skips FastAPI's per-request dependency solving and the walk through every included
route (about half the server time per request). It declares its access like any route (the
host checks it inline) and its errors go through the app's handlers. The FastAPI route of the
same path stays, shadowed, so /openapi.json documents it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from flowdeck.engine.keys import Role
from flowdeck.server.access import Access, gate
from flowdeck.server.dialect import DialectContext
from flowdeck.server.dialects.kestra import execution_files, exports
from flowdeck.server.dialects.kestra.execution_views import (
    executable_flows,
    flow_for_execution,
)
from flowdeck.server.dialects.kestra.executions import execution_response

PREFIXES = ("/api/v1/main", "/api/v1")
READ = Access(frozenset({Role.VIEWER}))


class _ExecutionId(Convertor[str]):
    """One path segment that is an execution id: anything but the sibling routes
    (`/executions/search`, `/executions/namespaces`, `/executions/distinct-field-values`)."""

    regex = "(?!(?:search|namespaces|distinct-field-values)$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("execution_id", _ExecutionId())


def _fast_route(prefix: str) -> BaseRoute:
    async def endpoint(request: Request) -> Response:
        await gate(request).admit(request, READ, route)
        return await execution_response(request, request.path_params["execution_id"])

    route = Route(f"{prefix}/executions/{{execution_id:execution_id}}", endpoint,
                  methods=["GET"], include_in_schema=False)
    route.access = READ  # type: ignore[attr-defined]
    return route


Handler = Callable[..., Awaitable[Any]]


def _shadowing_route(path: str, handler: Handler) -> BaseRoute:
    """A Kestra read whose path has the shape of the staging dialect's
    `/executions/{namespace}/{flowId}/{executionId}` (mounted first): matched here, before
    both, Kestra's route wins (a namespace named `flows` or `namespaces` is Kestra's too)."""

    async def endpoint(request: Request) -> Response:
        await gate(request).admit(request, READ, route)
        answer = await handler(**request.path_params, request=request)
        return answer if isinstance(answer, Response) else JSONResponse(answer)

    route = Route(path, endpoint, methods=["GET"], include_in_schema=False)
    route.access = READ  # type: ignore[attr-defined]
    return route


def fast_routes(context: DialectContext) -> list[BaseRoute]:
    routes = []
    for prefix in PREFIXES:
        routes.append(_fast_route(prefix))
        routes.append(_shadowing_route(f"{prefix}/executions/flows/{{namespace}}/{{flow_id}}",
                                       flow_for_execution))
        routes.append(_shadowing_route(f"{prefix}/executions/namespaces/{{namespace}}/flows",
                                       executable_flows))
        routes.append(_shadowing_route(f"{prefix}/executions/export/by-query/csv",
                                       exports.executions_csv))
        for name, handler in (("metas", execution_files.metas),
                              ("preview", execution_files.preview)):
            routes.append(_shadowing_route(
                f"{prefix}/executions/{{execution_id}}/file/{name}", handler))
    return routes
