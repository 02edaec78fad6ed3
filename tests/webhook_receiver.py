"""A real HTTP webhook receiver on 127.0.0.1 (uvicorn, ephemeral port) for outbox tests.

It records every request (raw body bytes, headers, arrival time) and answers from a plan: a list
of status codes used in order (the last one repeats), or `hang=True` to never answer until
released. Tests wait on `received(n)` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    url: str = ""
    statuses: list[int] = field(default_factory=lambda: [200])
    hang: bool = False
    requests: list[Received] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        self.requests.append(Received(request.url.path, {k.lower(): v for k, v in
                                                         request.headers.items()},
                                      body, time.monotonic()))
        self._arrived.set()
        if self.hang:
            await self.released.wait()
        index = min(len(self.requests), len(self.statuses)) - 1
        return Response("ok", status_code=self.statuses[index])

    async def received(self, count: int, timeout: float = 10.0) -> list[Received]:
        async with asyncio.timeout(timeout):
            while len(self.requests) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.requests


@contextlib.asynccontextmanager
async def webhook_receiver(statuses: list[int] | None = None, *,
                           hang: bool = False) -> AsyncIterator[Receiver]:
    receiver = Receiver(statuses=statuses or [200], hang=hang)
    app = Starlette(routes=[Route("/{path:path}", receiver.handle, methods=["POST"])])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                            lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        receiver.url = f"http://127.0.0.1:{port}/hook"
        yield receiver
    finally:
        receiver.released.set()
        server.should_exit = True
        await asyncio.wait_for(task, 10)
