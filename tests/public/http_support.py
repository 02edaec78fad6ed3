"""The public API over real HTTP: a live server (uvicorn on 127.0.0.1) over a real engine with
the bundled agent installed, and helpers that read the API's answers strictly."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from flowdeck.core.clock import Clock
from flowdeck.engine.engine import Engine
from flowdeck.server.app import ServerOptions
from live_server import start_server, stop_server
from public.support import open_public_engine

API = "/api/v1/public"
ERROR_KEYS = ["message", "error", "statusCode"]
RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


class RateClock:
    """The rate limiter's clock (epoch seconds), moved only by the test."""

    def __init__(self, now: float = 1_761_233_370.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class PublicServer:
    engine: Engine
    url: str
    client: httpx.AsyncClient

    async def key(self, name: str = "website", **options: Any) -> str:
        """A new API key's secret."""
        return (await self.engine.public.create_key(name, **options)).secret


@contextlib.asynccontextmanager
async def public_server(tmp_path: Path, *, clock: Clock | None = None,
                        options: ServerOptions | None = None,
                        extra: dict[str, Any] | None = None) -> AsyncIterator[PublicServer]:
    engine = await open_public_engine(tmp_path / "data", clock=clock, extra=extra)
    server, task, url = await start_server(engine, options or ServerOptions())
    client = httpx.AsyncClient(base_url=url, timeout=30)
    try:
        yield PublicServer(engine, url, client)
    finally:
        await client.aclose()
        await stop_server(server, task)
        await engine.close()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def error_body(response: httpx.Response, status: int) -> str:
    """The API's error body for `status` (its three members, in its order); its message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ERROR_KEYS, body
    assert body["statusCode"] == status and isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in response.text
    message: str = body["message"]
    return message
