"""A real uvicorn server on 127.0.0.1 (an ephemeral port) over a real engine."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import uvicorn

from flowdeck.engine.engine import Engine
from flowdeck.server.app import ServerOptions, create_app
from flowdeck.server.dialect import Dialect


@dataclass
class LiveServer:
    engine: Engine
    url: str
    client: httpx.AsyncClient


async def start_server(engine: Engine, options: ServerOptions | None = None, *,
                       dialects: Sequence[Dialect] | None = None
                       ) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    app = create_app(engine, options or ServerOptions(), dialects)
    # As `flowdeck serve`: uvicorn does not rewrite the client from X-Forwarded-For (the app
    # decides, from `ServerOptions.trusted_proxies`).
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                            lifespan="off", access_log=False, proxy_headers=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, f"http://127.0.0.1:{port}"


async def stop_server(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    await asyncio.wait_for(task, 10)
