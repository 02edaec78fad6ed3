"""Shared pieces of the public agent API tests: a real engine with the bundled agent, keys,
the spec's customer rows, and a real HTTP messaging gateway on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flowdeck.core.clock import Clock
from flowdeck.core.models import Execution
from flowdeck.core.public import ApiKey
from flowdeck.engine.engine import Engine, EngineSettings
from helpers import wait_for_state

AGENT = "workflow_bfsi_marketing_template"

#: The spec's example customer, then more like it.
SPEC_ROW = {"customerId": "CUST001", "name": "John Doe", "phone": "+918610560986",
            "email": "john@example.com", "city": "Mumbai", "income_bracket": "75000-100000",
            "age": "32", "credit_score": "750"}

QUICK = """
id: quick
namespace: agents
inputs:
  - id: csvData
    type: JSON
    required: false
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: hello
outputs:
  - id: answer
    type: INT
    value: "42"
"""


def verify_webhook_signature(payload: bytes, signature: str, secret: str) -> bool:
    """The spec's Node.js verifyWebhookSignature, line for line."""
    expected = "sha256=" + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    return len(signature) == len(expected) and hmac.compare_digest(signature, expected)


def customers(count: int) -> list[dict[str, str]]:
    rows = [dict(SPEC_ROW)]
    for i in range(2, count + 1):
        rows.append({**SPEC_ROW, "customerId": f"CUST{i:03d}", "name": f"Customer {i}",
                     "phone": f"+9186105{i:05d}"})
    return rows[:count]


async def open_public_engine(data_dir: Path, *, extra: dict[str, Any] | None = None,
                             clock: Clock | None = None, install: bool = True) -> Engine:
    engine = await Engine.open(EngineSettings(data_dir=data_dir, scheduler=False, envs={},
                                              extra=extra or {}), clock=clock)
    if install:
        await engine.public.install_bundled_agents()
    return engine


async def new_key(engine: Engine, name: str = "website", **options: Any) -> tuple[ApiKey, str]:
    created = await engine.public.create_key(name, **options)
    return await engine.public.authenticate(created.secret), created.secret


async def until_waiting(engine: Engine, execution_id: str, timeout: float = 15) -> Execution:
    """The execution once it waits for its approval (PAUSED)."""
    return await wait_for_state(engine, execution_id, "PAUSED", timeout=timeout)


@dataclass
class Gateway:
    """A messaging endpoint: records each POST and answers from a plan of status codes."""

    url: str = ""
    statuses: list[int] = field(default_factory=lambda: [200])
    requests: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(({k.lower(): v for k, v in request.headers.items()}, body))
        status = self.statuses[min(len(self.requests), len(self.statuses)) - 1]
        if status >= 300:
            return Response("no", status_code=status)
        return JSONResponse({"messageId": f"wa_{body['customerId']}"}, status_code=status)


@contextlib.asynccontextmanager
async def gateway(statuses: list[int] | None = None) -> AsyncIterator[Gateway]:
    gw = Gateway(statuses=statuses or [200])
    app = Starlette(routes=[Route("/messages", gw.handle, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off", access_log=False))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        gw.url = f"http://127.0.0.1:{port}/messages"
        yield gw
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
