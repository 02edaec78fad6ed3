"""The FastAPI application: every dialect on one port, over one engine.

`create_app` takes an engine that is already open; whoever opens it (the `serve` command, a
test) also closes it. The Kestra dialect is served under `/api/v1/main/...` and, for pre-0.23
clients, tenant-less `/api/v1/...`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import PlainTextResponse
from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import Response
from starlette.routing import Route

from flowdeck.engine.engine import Engine
from flowdeck.engine.keys import TokenStore
from flowdeck.server import errors
from flowdeck.server.auth import Authenticator, Gatekeeper, confirm_open_route, is_loopback
from flowdeck.server.dialects import kestra, staging
from flowdeck.server.sse import StreamLimiter

MAX_BODY = 10 * 1024 * 1024


def flowdeck_version() -> str:
    try:
        return version("flowdeck")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


@dataclass(slots=True)
class ServerOptions:
    """How the server is exposed; auth is decided from these by the auth layer.

    `auth_required=None` means: required unless bound to loopback without Basic credentials
    (`flowdeck serve` also counts API tokens, and refuses a network host with neither).
    `extra` tunes the brute-force guard: `auth_max_failures` (10), `auth_failure_window`
    (300 s), `auth_lockout` (1800 s), `auth_cache_ttl` (300 s).
    """

    host: str = "127.0.0.1"
    port: int = 8080
    basic_username: str | None = None
    basic_password_hash: str | None = None
    auth_required: bool | None = None
    kestra_version: str = "2.0.0"
    max_body_bytes: int = MAX_BODY
    sse_total: int = 100
    sse_per_client: int = 5
    extra: dict[str, Any] = field(default_factory=dict)


def create_app(engine: Engine, options: ServerOptions | None = None) -> FastAPI:
    options = options or ServerOptions()
    has_basic = bool(options.basic_username and options.basic_password_hash)
    required = options.auth_required
    if required is None:
        required = has_basic or not is_loopback(options.host)

    async def pending_approvals(execution_id: str) -> int:
        return len(await engine.approvals.list("pending", execution_id=execution_id, limit=1))

    auth = Authenticator(required=required, tokens=TokenStore(engine.store, engine.clock),
                         username=options.basic_username if has_basic else None,
                         password_hash=options.basic_password_hash if has_basic else None,
                         extra=options.extra, pending_approvals=pending_approvals)
    # The body limit is the Gatekeeper's (problem+json in every case), not FastAPI's.
    app = FastAPI(title="flowdeck", version=flowdeck_version(),
                  description="Kestra-compatible API over the flowdeck engine.",
                  dependencies=[Depends(confirm_open_route)])
    app.state.engine = engine
    app.state.options = options
    app.state.auth = auth
    app.state.streams = StreamLimiter(options.sse_total, options.sse_per_client)
    errors.install(app)
    app.add_middleware(Gatekeeper, auth=auth, max_body_bytes=options.max_body_bytes)

    @app.get("/ping", include_in_schema=False)
    async def ping() -> PlainTextResponse:
        return PlainTextResponse("pong")


    @app.get("/health", tags=["misc"])
    async def health(request: Request) -> dict[str, Any]:
        return await engine.storage_health()

    @app.get("/api/v1/configs", tags=["misc"])
    async def configs() -> dict[str, Any]:
        return {
            "uuid": "flowdeck", "version": options.kestra_version,
            "flowdeckVersion": flowdeck_version(), "edition": "OSS",
            "commitId": "flowdeck", "isTaskRunEnabled": True, "isTemplateEnabled": False,
            "isAnonymousUsageEnabled": False, "isCustomDashboardsEnabled": False,
            "isBasicAuthEnabled": options.basic_username is not None,
            "isBasicAuthInitialized": options.basic_username is not None,
            "systemNamespace": "system", "hiddenLabelsPrefixes": ["system."],
            "environment": {"name": "flowdeck"},
        }

    @app.get("/api/v1/configs/login", tags=["misc"])
    async def configs_login() -> dict[str, Any]:
        return {"isBasicAuthInitialized": options.basic_username is not None}

    # Open without credentials, as in Kestra; so is every webhook-trigger route (see auth.py).
    auth.open_endpoints.update({ping, configs_login})

    # The staging dialect answers its own webhook flows in its own shape, so it comes first.
    app.include_router(staging.router)
    app.include_router(kestra.build_router(), prefix="/api/v1/main")
    app.include_router(kestra.build_router(), prefix="/api/v1", include_in_schema=False)
    fast_reads(app)
    return app


class _ExecutionId(Convertor[str]):
    """One path segment that is an execution id: anything but the sibling route `search`."""

    regex = "(?!search$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("execution_id", _ExecutionId())


def fast_reads(app: FastAPI) -> None:
    """The hottest read, GET one execution, matched first as a plain Starlette route.

    It skips FastAPI's per-request dependency solving and the walk through every included
    route (about half the server time per request); errors still go through the app's
    handlers and the Gatekeeper still authenticates it. The FastAPI route stays, shadowed, so
    /openapi.json documents it.
    """
    from flowdeck.server.dialects.kestra.executions import get_execution

    async def endpoint(request: Request) -> Response:
        return await get_execution(request, request.path_params["execution_id"])

    for prefix in ("/api/v1/main", "/api/v1"):
        app.router.routes.insert(0, Route(f"{prefix}/executions/{{execution_id:execution_id}}",
                                          endpoint, methods=["GET"], include_in_schema=False))
