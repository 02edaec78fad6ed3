"""Server tests run against a real uvicorn server on loopback over a real engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from helpers import open_engine
from live_server import LiveServer, start_server, stop_server


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveServer]:
    engine = await open_engine(tmp_path / "data")
    server, task, url = await start_server(engine)
    client = httpx.AsyncClient(base_url=url, timeout=30)
    try:
        yield LiveServer(engine, url, client)
    finally:
        await client.aclose()
        await stop_server(server, task)
        await engine.close()
