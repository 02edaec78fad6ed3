"""The FastAPI application: every dialect on one port, over one engine.

`create_app` takes an engine that is already open (whoever opens it, the `serve` command or a
test, also closes it) and a list of dialects (`DEFAULT_DIALECTS` unless given). It knows nothing
of any one dialect: it mounts them (`server/host.py`), the host's own routes (`/ping`, `/health`,
`/openapi.json`, `/docs`, `/redoc`), the neutral middleware and the error handlers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.routing import BaseRoute, Route

from flowdeck.engine.engine import Engine
from flowdeck.engine.keys import TokenStore
from flowdeck.server import errors
from flowdeck.server.access import VIEWER, Access, declared_access, gate
from flowdeck.server.auth import Authenticator, TrustedProxies, is_loopback
from flowdeck.server.dialect import Dialect, DialectContext
from flowdeck.server.host import Host
from flowdeck.server.middleware import Gatekeeper
from flowdeck.server.openapi import describe
from flowdeck.server.options import MAX_BODY, ServerOptions, flowdeck_version
from flowdeck.server.sse import StreamLimiter

__all__ = ["MAX_BODY", "ServerOptions", "create_app", "flowdeck_version"]

#: The host's routes that need no credentials.
HOST_OPEN_ROUTES = frozenset({"/ping"})
OPEN_ACCESS = Access(open=True)


def fast_host_routes() -> list[BaseRoute]:
    """Liveness, as a plain route (no dependency solving), open as its declaration says."""

    async def ping(request: Request) -> PlainTextResponse:
        await gate(request).admit(request, OPEN_ACCESS, route)
        return PlainTextResponse("pong")

    route = Route("/ping", ping, methods=["GET", "HEAD"], include_in_schema=False)
    route.access = OPEN_ACCESS  # type: ignore[attr-defined]
    return [route]


def host_routes(engine: Engine, app: FastAPI) -> APIRouter:
    """Storage health and the API's own description."""
    router = APIRouter()

    @router.get("/health", tags=["misc"], dependencies=VIEWER)
    async def health() -> dict[str, Any]:
        return await engine.storage_health()

    @router.get("/openapi.json", include_in_schema=False, dependencies=VIEWER)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @router.get("/docs", include_in_schema=False, dependencies=VIEWER)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - Swagger UI")

    @router.get("/redoc", include_in_schema=False, dependencies=VIEWER)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - ReDoc")

    return router


def create_app(engine: Engine, options: ServerOptions | None = None,
               dialects: Sequence[Dialect] | None = None) -> FastAPI:
    if dialects is None:
        from flowdeck.server.dialects import DEFAULT_DIALECTS

        dialects = DEFAULT_DIALECTS
    options = options or ServerOptions()
    has_basic = bool(options.basic_username and options.basic_password_hash)
    required = options.auth_required
    if required is None:
        required = has_basic or not is_loopback(options.host)
    auth = Authenticator(required=required, tokens=TokenStore(engine.store, engine.clock),
                         username=options.basic_username if has_basic else None,
                         password_hash=options.basic_password_hash if has_basic else None,
                         extra=options.extra)
    tags = [dict(tag) for dialect in dialects for tag in dialect.openapi_tags]
    # The documentation routes are the host's own (they declare their access like any route).
    app = FastAPI(title="flowdeck", version=flowdeck_version(),
                  description="Kestra-compatible API over the flowdeck engine, and the other "
                              "APIs of its dialects.",
                  openapi_url=None, docs_url=None, redoc_url=None, redirect_slashes=False,
                  openapi_tags=tags or None, dependencies=[Depends(declared_access)])
    host = Host(dialects, auth, DialectContext(engine, options))
    app.state.engine = engine
    app.state.options = options
    app.state.auth = auth
    app.state.host = host
    app.state.streams = StreamLimiter(options.sse_total, options.sse_per_client)
    app.state.proxies = TrustedProxies(options.trusted_proxies)
    errors.install(app)
    app.add_middleware(Gatekeeper, render=host.render, max_body_bytes=options.max_body_bytes,
                       shutdown=auth.shutdown)
    host.mount(app, host_routes(engine, app), fast_host_routes(), HOST_OPEN_ROUTES)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe(app, host)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
