"""FlowCtl through the client layer: the embedded engine and a real server's FlowCtl routes.

The same calls on both (submit, wait with progress, list, resolve a short id, cancel), errors
as the engine's own classes, a 429 waited out until the server's window resets, and no
FlowCtl on a Kestra.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from flowctl.flowctl_helpers import generic, workflow
from flowdeck.client.backend import Capabilities
from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.client.flowctl import (
    EmbeddedFlowctl,
    FlowctlClient,
    FlowctlUnavailable,
    HttpFlowctl,
    flowctl_client,
)
from flowdeck.client.http import HttpBackend
from flowdeck.core.errors import (
    BackendUnavailable,
    BadRequestError,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from flowdeck.core.flowctl import WorkflowView
from flowdeck.engine.engine import EngineSettings
from flowdeck.server.app import ServerOptions
from helpers import open_engine
from live_server import start_server, stop_server

UNKNOWN = "0190c6e0-0000-7000-8000-00000000dead"


class SteppingClock:
    """The server's rate-limit clock: one window for the first `hits` requests, the next one
    after (each request reads it once)."""

    def __init__(self, hits: int) -> None:
        self.hits = hits
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return 1_700_000_040.0 + (60.0 if self.calls > self.hits else 0.0)


@asynccontextmanager
async def http_client(tmp_path: Path, **extra: Any) -> AsyncIterator[HttpFlowctl]:
    engine = await open_engine(tmp_path / "data")
    server, task, url = await start_server(engine, ServerOptions(
        extra={"flowctl_rate_limit": 100_000, **extra}))
    backend = HttpBackend(url)
    try:
        client = flowctl_client(backend, await backend.connect())
        assert isinstance(client, HttpFlowctl)
        client.poll_interval = 0.05
        yield client
    finally:
        await backend.close()
        await stop_server(server, task)
        await engine.close()


@asynccontextmanager
async def embedded_client(tmp_path: Path) -> AsyncIterator[EmbeddedFlowctl]:
    backend = EmbeddedBackend(EngineSettings(data_dir=tmp_path / "data", scheduler=False,
                                             envs={}))
    try:
        client = flowctl_client(backend, await backend.connect())
        assert isinstance(client, EmbeddedFlowctl)
        yield client
    finally:
        await backend.close()


async def exercise(client: FlowctlClient) -> None:
    seen: list[tuple[str, ...]] = []

    def progress(view: WorkflowView) -> None:
        seen.append((view.status, *(t.status for t in view.tasks)))

    created = await client.submit(workflow(generic("a", "echo hi"),
                                           generic("b", "true", dependencies=["a"])), "ops")
    assert created.status == "pending" and [t.name for t in created.tasks] == ["a", "b"]
    done = await client.wait(created.id, timeout=30, on_change=progress)
    assert done.status == "completed" and seen[-1] == ("completed", "completed", "completed")
    assert len(seen) == len(set(seen))  # told once per change
    assert done.tasks[0].result == {"exit_code": 0, "output": "hi"}
    assert await client.resolve(done.id[-8:]) == done.id
    assert await client.resolve("not-an-id") == "not-an-id"
    page = await client.list_workflows(limit=1)
    assert (page.total, page.total_pages, [w.id for w in page.workflows]) == (1, 1, [done.id])
    with pytest.raises(ConflictError, match="Workflow is already completed"):
        await client.cancel(done.id, "ops")
    with pytest.raises(NotFoundError, match="Workflow not found"):
        await client.get(UNKNOWN)
    with pytest.raises((ValidationError, BadRequestError), match="depends on unknown task"):
        await client.submit(workflow(generic("a", "true", dependencies=["z"])), "ops")
    with pytest.raises(BadRequestError, match="invalid status"):
        await client.list_workflows(status="done")
    slow = await client.submit(workflow(generic("nap", "exec sleep 30")), "ops")
    with pytest.raises(TimeoutError):
        await client.wait(slow.id, timeout=0.3)
    await client.cancel(slow.id, "ops")
    assert (await client.get(slow.id)).status == "cancelled"


async def test_the_embedded_engine(tmp_path: Path) -> None:
    async with embedded_client(tmp_path) as client:
        await exercise(client)


async def test_a_server_through_its_flowctl_routes(tmp_path: Path) -> None:
    async with http_client(tmp_path) as client:
        await exercise(client)


async def test_a_429_is_waited_out_until_the_window_resets(tmp_path: Path) -> None:
    clock = SteppingClock(3)
    async with http_client(tmp_path, flowctl_rate_limit=2, flowctl_clock=clock) as client:
        assert (await client.list_workflows()).total == 0  # 1st request
        assert (await client.list_workflows()).total == 0  # 2nd
        # 3rd: refused (the window names a reset long past), asked again: a new window.
        assert (await client.list_workflows()).total == 0
        assert clock.calls == 4
    async with http_client(tmp_path / "again", flowctl_rate_limit=1,
                           flowctl_clock=lambda: 1_700_000_040.0) as client:
        await client.list_workflows()
        with pytest.raises(BackendUnavailable, match=r"too many requests.*Rate limit exceeded"):
            await client.list_workflows()  # the window never ends: given up after a few


async def test_a_kestra_has_no_flowctl(tmp_path: Path) -> None:
    backend = HttpBackend("http://127.0.0.1:9")
    with pytest.raises(FlowctlUnavailable, match="has no FlowCtl API"):
        flowctl_client(backend, Capabilities(kind="kestra", version="1.0.0"))
