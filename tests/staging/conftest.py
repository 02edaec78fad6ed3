"""Staging tests: a real engine with the bundled staging flows, and a real server over it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdeck.engine.engine import Engine, EngineSettings
from flowdeck.engine.staging import bundled_flow_sources
from flowdeck.server.app import ServerOptions
from live_server import LiveServer, start_server, stop_server

KEYS = {
    "staging_clone_key": "clone-7Qw2-e9Lk-key",
    "staging_list_key": "list-3Rt8-b1Zx-key",
    "staging_delete_key": "delete-5Hn4-c6Vm-key",
}
NS = "dev.deployment"
WEBHOOK = "/api/v1/executions/webhook/dev.deployment"
CLONE_URL = f"{WEBHOOK}/clone-staging-api/{KEYS['staging_clone_key']}"
LIST_URL = f"{WEBHOOK}/list-staging-environments/{KEYS['staging_list_key']}"
DELETE_URL = f"{WEBHOOK}/delete-staging-environment/{KEYS['staging_delete_key']}"


async def open_staging_engine(data_dir: Path, *, envs: dict[str, str] | None = None,
                              staging: dict[str, Any] | None = None,
                              apply_flows: bool = True, **settings: Any) -> Engine:
    engine = await Engine.open(EngineSettings(
        data_dir=data_dir, scheduler=False, envs=dict(KEYS) if envs is None else envs,
        extra={"staging": staging if staging is not None else {}}, **settings))
    if apply_flows:
        for source in bundled_flow_sources():
            await engine.apply_flow(source)
    return engine


@contextlib.asynccontextmanager
async def serve(engine: Engine, options: ServerOptions | None = None
                ) -> AsyncIterator[LiveServer]:
    server, task, url = await start_server(engine, options)
    client = httpx.AsyncClient(base_url=url, timeout=30)
    try:
        yield LiveServer(engine, url, client)
    finally:
        await client.aclose()
        await stop_server(server, task)


@pytest.fixture
async def staging_engine(tmp_path: Path) -> AsyncIterator[Engine]:
    engine = await open_staging_engine(tmp_path / "data")
    try:
        yield engine
    finally:
        await engine.close()


@pytest.fixture
async def live(staging_engine: Engine) -> AsyncIterator[LiveServer]:
    async with serve(staging_engine) as server:
        yield server


def status_url(flow_id: str, execution_id: str, prefix: str = "/api/v1") -> str:
    return f"{prefix}/executions/{NS}/{flow_id}/{execution_id}"


async def poll(client: httpx.AsyncClient, flow_id: str, execution_id: str, *,
               interval: float = 0.1, timeout: float = 20.0,
               seen: list[str] | None = None) -> dict[str, Any]:
    """The spec's polling loop: GET the status until it is neither RUNNING nor CREATED."""
    deadline = time.monotonic() + timeout
    while True:
        await asyncio.sleep(interval)
        response = await client.get(status_url(flow_id, execution_id))
        assert response.status_code == 200, response.text
        status: dict[str, Any] = response.json()
        if seen is not None:
            seen.append(status["state"])
        if status["state"] not in ("RUNNING", "CREATED"):
            return status
        assert time.monotonic() < deadline, f"still {status['state']} after {timeout} s"


async def create_staging(client: httpx.AsyncClient, client_name: str,
                         clone_url: str = CLONE_URL) -> str:
    """The spec's `createStaging` (TypeScript) client, in Python: trigger, poll, read the URL."""
    response = await client.post(clone_url, json={"client_name": client_name},
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    execution_id = response.json()["executionId"]
    status = await poll(client, "clone-staging-api", execution_id)
    if status["state"] == "SUCCESS":
        url: str = status["outputs"]["response"]["staging_url"]
        return url
    raise RuntimeError(f"Clone failed: {status}")


async def run(engine: Engine, flow_id: str, timeout: float = 20, **inputs: Any) -> Any:
    execution = await engine.create_execution(NS, flow_id, inputs=inputs)
    return await engine.wait_until_terminal(execution.id, timeout=timeout)
