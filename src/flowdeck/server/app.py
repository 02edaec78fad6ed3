"""The FastAPI application: every dialect on one port, over one engine.

`create_app` takes an engine that is already open; whoever opens it (the `serve` command, a
test) also closes it. The Kestra dialect is served under `/api/v1/main/...` and, for pre-0.23
clients, tenant-less `/api/v1/...`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from flowdeck.engine.engine import Engine
from flowdeck.server import errors
from flowdeck.server.dialects import kestra
from flowdeck.server.sse import StreamLimiter

MAX_BODY = 10 * 1024 * 1024


def flowdeck_version() -> str:
    try:
        return version("flowdeck")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


@dataclass(slots=True)
class ServerOptions:
    """How the server is exposed; auth is decided from these by the auth layer."""

    host: str = "127.0.0.1"
    port: int = 8080
    basic_username: str | None = None
    basic_password_hash: str | None = None
    kestra_version: str = "2.0.0"
    max_body_bytes: int = MAX_BODY
    sse_total: int = 100
    sse_per_client: int = 5
    extra: dict[str, Any] = field(default_factory=dict)


def create_app(engine: Engine, options: ServerOptions | None = None) -> FastAPI:
    options = options or ServerOptions()
    app = FastAPI(title="flowdeck", version=flowdeck_version(),
                  description="Kestra-compatible API over the flowdeck engine.",
                  max_body_size=options.max_body_bytes)
    app.state.engine = engine
    app.state.options = options
    app.state.streams = StreamLimiter(options.sse_total, options.sse_per_client)
    errors.install(app)

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

    app.include_router(kestra.build_router(), prefix="/api/v1/main")
    app.include_router(kestra.build_router(), prefix="/api/v1", include_in_schema=False)
    return app
