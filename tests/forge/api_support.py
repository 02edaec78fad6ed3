"""A real `flowdeck` server on loopback over a real engine with the forge, tokens per role.

Token names are who the forge records: `alice` and `bob` operate, `carol` approves, `vic`
only reads, `worker` is a service account.
"""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from flowdeck.engine.engine import Engine
from flowdeck.engine.keys import TokenStore
from flowdeck.server.app import ServerOptions
from flowdeck.server.dialect import Dialect
from helpers import open_engine
from live_server import start_server, stop_server

PEOPLE = {"alice": "operator", "bob": "operator", "carol": "approver", "dave": "approver",
          "vic": "viewer", "worker": "service", "root": "admin"}
SHA = "abc123def456"

PIPELINE = """
    id: shop
    namespace: pipelines.acme
    tasks:
      - id: discover
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - echo "found api"
      - id: ci
        type: io.kestra.plugin.core.flow.Parallel
        tasks:
          - id: api
            type: io.kestra.plugin.core.log.Log
            message: api built
          - id: web
            type: io.kestra.plugin.core.log.Log
            message: web built
      - id: release
        type: io.kestra.plugin.core.log.Log
        message: released
    """


@dataclass
class ForgeApi:
    engine: Engine
    url: str
    client: httpx.AsyncClient
    secrets: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[who]}"}

    async def call(self, method: str, path: str, who: str = "alice",
                   **kwargs: Any) -> httpx.Response:
        headers = {**self.auth(who), **kwargs.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def ok(self, method: str, path: str, who: str = "alice", status: int = 200,
                 **kwargs: Any) -> Any:
        response = await self.call(method, path, who, **kwargs)
        assert response.status_code == status, (response.status_code, response.text)
        return response.json() if response.content else None


@contextlib.asynccontextmanager
async def forge_api(tmp_path: Path, *, forge: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None, max_body_bytes: int | None = None,
                    dialects: list[Dialect] | None = None) -> AsyncIterator[ForgeApi]:
    engine = await open_engine(tmp_path / "data", extra={"forge": forge or {}})
    tokens = TokenStore(engine.store, engine.clock)
    secrets = {}
    for name, role in PEOPLE.items():
        _, secrets[name] = await tokens.create(role, name)
    options = ServerOptions(auth_required=True, extra=dict(extra or {}))
    if max_body_bytes is not None:
        options.max_body_bytes = max_body_bytes
    server, task, url = await start_server(engine, options, dialects=dialects)
    client = httpx.AsyncClient(base_url=url, timeout=30)
    try:
        yield ForgeApi(engine, url, client, secrets)
    finally:
        await client.aclose()
        await stop_server(server, task)
        await engine.close()


async def install(engine: Engine, source: str = PIPELINE) -> None:
    await engine.apply_flow(textwrap.dedent(source))


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The spec's error body, checked: exactly `{"error": {"code", "message", "details"}}`."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    assert "Traceback" not in response.text
    error: dict[str, Any] = body["error"]
    return error
