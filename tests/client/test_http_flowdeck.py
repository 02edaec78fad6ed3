"""HttpBackend against a real `flowdeck` server on loopback, over a real engine.

The same behaviour checks as the embedded backend (`test_embedded.CHECKS`) run through HTTP,
first against the server presenting itself as Kestra 2.x (`/actions/` paths), then a subset as
Kestra 1.x (1.x action paths: kill answers 202 with no body, resume 204, pause an empty 200).
The server and the test share one event loop; streams are read through real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from client.test_embedded import (
    CHECKS,
    HELLO,
    Harness,
    check_kill,
    check_pause_and_resume,
    check_restart_and_replay,
    check_run_logs_and_follow,
    finished,
    flow,
)
from flowdeck.client.backend import Backend
from flowdeck.client.factory import make_backend
from flowdeck.client.http import HttpBackend
from flowdeck.core.errors import BackendUnavailable, ValidationError
from flowdeck.engine.engine import Engine
from flowdeck.server.app import ServerOptions, create_app
from helpers import open_engine
from live_server import start_server, stop_server

KEEPALIVE = 0.5


class Recording(httpx.AsyncBaseTransport):
    """The real transport, noting each request's method, path, query and headers."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def options(version: str = "2.0.0") -> ServerOptions:
    return ServerOptions(extra={"kestra_version": version, "sse_keepalive": KEEPALIVE})


@contextlib.asynccontextmanager
async def remote(tmp_path: Path, version: str = "2.0.0", **kw: Any
                 ) -> AsyncIterator[tuple[HttpBackend, Engine, Recording]]:
    engine = await open_engine(tmp_path / "data")
    server, task, url = await start_server(engine, options(version))
    transport = Recording()
    backend = HttpBackend(url, poll_interval=0.2, transport=transport, **kw)
    try:
        yield backend, engine, transport
    finally:
        await backend.close()
        await stop_server(server, task)
        await engine.close()


def http_harness(engine: Engine, tmp_path: Path) -> Harness:
    async def watching(topic: str) -> None:
        if topic != "approval":
            return  # executions are polled: nothing to wait for
        async with asyncio.timeout(5):
            while not engine._bus._by_topic.get(topic):
                await asyncio.sleep(0.01)

    return Harness(tmp_path, watching)


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__[6:] for c in CHECKS])
async def test_http_behaviour_kestra_2x_paths(
        tmp_path: Path, check: Callable[[Backend, Harness], Awaitable[None]]) -> None:
    async with remote(tmp_path) as (backend, engine, transport):
        caps = await backend.connect()
        assert (caps.kind, caps.approvals, caps.action_paths) == ("flowdeck", True, "2.x")
        await check(backend, http_harness(engine, tmp_path))
        paths = [r.url.path for r in transport.requests]
        assert all(p.startswith("/api/v1/main/") or p.startswith("/api/v1/configs")
                   or p == "/api/v1/me" for p in paths)  # /me: the caller's role
        actions = [p for p in paths if any(p.endswith(f"/{a}") for a in
                                           ("kill", "pause", "resume", "restart", "replay"))]
        assert all("/actions/" in p for p in actions)


LEGACY = [check_run_logs_and_follow, check_kill, check_restart_and_replay,
          check_pause_and_resume]


@pytest.mark.parametrize("check", LEGACY, ids=[c.__name__[6:] for c in LEGACY])
async def test_http_behaviour_kestra_1x_paths(
        tmp_path: Path, check: Callable[[Backend, Harness], Awaitable[None]]) -> None:
    async with remote(tmp_path, "1.0.3") as (backend, engine, transport):
        caps = await backend.connect()
        assert (caps.kind, caps.action_paths) == ("flowdeck", "1.x")
        await check(backend, http_harness(engine, tmp_path))
        actions = [(r.method, r.url.path) for r in transport.requests
                   if any(r.url.path.endswith(f"/{a}")
                          for a in ("kill", "pause", "resume", "restart", "replay"))]
        assert all("/actions/" not in p for _, p in actions)
        if check is check_run_logs_and_follow:  # 1.x filters log levels with `minLevel`
            assert any(r.url.params.get("minLevel") == "WARN" for r in transport.requests)
        else:
            assert actions


async def test_connect_detects_flowdeck(tmp_path: Path) -> None:
    async with remote(tmp_path) as (backend, _, transport):
        caps = await backend.connect()
        assert caps.kind == "flowdeck" and caps.version == backend.server.version  # type: ignore[union-attr]
        assert backend.server is not None and backend.server.prefix == "/api/v1/main"
        assert backend.name == backend.base_url
        # then the caller's role, as the server's /me says it (auth off: anonymous, admin)
        assert [r.url.path for r in transport.requests] == ["/api/v1/configs/login",
                                                            "/api/v1/configs", "/api/v1/me"]
        assert caps.role == "admin"


async def test_an_unreachable_server_is_backend_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = HttpBackend(f"http://127.0.0.1:{port}", timeout=2)
    try:
        with pytest.raises(BackendUnavailable) as down:
            await backend.connect()
        assert f"127.0.0.1:{port}" in str(down.value)
    finally:
        await backend.close()


async def test_bad_urls_and_credentials_are_validation_errors() -> None:
    with pytest.raises(ValidationError):
        HttpBackend("localhost:8080")
    with pytest.raises(ValidationError):
        HttpBackend("http://h:1", username="a", password="b", token="c")
    with pytest.raises(ValidationError):
        HttpBackend("http://h:1", username="a")
    assert HttpBackend("http://h:8080/api/v1/main/").base_url == "http://h:8080"
    with_user = HttpBackend("https://ada%40x.io:p%3Ass@h:8080")
    assert with_user.base_url == "https://h:8080"  # never shown with its credentials
    assert with_user._auth is not None


async def test_factory_builds_each_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    from flowdeck.client.embedded import EmbeddedBackend

    embedded = make_backend(None, profile=None, data_dir=tmp_path / "d")
    assert isinstance(embedded, EmbeddedBackend)
    assert embedded.settings.data_dir == tmp_path / "d"
    assert isinstance(make_backend("embedded", profile=None, data_dir=tmp_path), EmbeddedBackend)
    secret = tmp_path / "token"
    secret.write_text("s3cr3t\n")
    remote_backend = make_backend(None, profile={"kind": "remote", "url": "http://k:8080",
                                                 "token_file": str(secret)}, data_dir=None)
    assert isinstance(remote_backend, HttpBackend)
    assert remote_backend._headers["Authorization"] == "Bearer s3cr3t"
    monkeypatch.setenv("KESTRA_PW", "pw")
    basic = make_backend(None, profile={"url": "http://k:8080", "username": "a@b.c",
                                        "password_env": "KESTRA_PW", "poll_interval": 1},
                         data_dir=None)
    assert isinstance(basic, HttpBackend) and basic._auth is not None
    assert basic.poll_interval == 1.0
    by_url = make_backend("http://other:1", profile={"kind": "embedded"}, data_dir=tmp_path)
    assert isinstance(by_url, HttpBackend) and by_url.base_url == "http://other:1"
    with pytest.raises(ValidationError) as unknown:
        make_backend(None, profile={"colour": "red"}, data_dir=tmp_path)
    assert "profile.colour" in str(unknown.value)
    with pytest.raises(ValidationError) as unset:
        make_backend(None, profile={"url": "http://k:1", "username": "u",
                                    "password_env": "NOT_SET_ANYWHERE"},
                     data_dir=None, environ={})
    assert "NOT_SET_ANYWHERE" in str(unset.value)
    with pytest.raises(ValidationError):
        make_backend(None, profile={"kind": "remote"}, data_dir=None)


async def serve_on(engine: Engine, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    config = uvicorn.Config(create_app(engine, options()), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    return server, task


async def crash(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    """Stop the server and drop every open connection, as a crash or a network cut would."""
    server.should_exit = True
    for connection in list(server.server_state.connections):
        transport = getattr(connection, "transport", None)
        if transport is not None:
            transport.close()
    await asyncio.wait_for(task, 10)


async def test_log_follow_resumes_after_a_server_restart_without_gap_or_duplicate(
        tmp_path: Path) -> None:
    engine = await open_engine(tmp_path / "data")
    server, task, url = await start_server(engine, options())
    port = int(url.rsplit(":", 1)[1])
    transport = Recording()
    backend = HttpBackend(url, transport=transport)
    try:
        await backend.apply_flow(textwrap.dedent("""
            id: trickle
            namespace: t.client
            tasks:
              - id: shell
                type: io.kestra.plugin.scripts.shell.Commands
                commands:
                  - for i in $(seq 1 120); do echo "line-$i"; sleep 0.01; done
            """))
        execution = await backend.create_execution("t.client", "trickle")
        stream = backend.follow_logs(execution.id)
        got: list[Any] = []
        async with asyncio.timeout(30):
            async for entry in stream:
                got.append(entry)
                if len(got) == 20:
                    await crash(server, task)  # lines keep coming while it is down
                    server, task = await serve_on(engine, port)
                if entry.message == "line-120":
                    break
        await stream.aclose()  # type: ignore[attr-defined]
        assert [e.message for e in got] == [f"line-{i}" for i in range(1, 121)]
        assert [e.seq for e in got] == list(range(1, 121))
        follows = [r for r in transport.requests if r.url.path.endswith("/follow")]
        assert len(follows) >= 2
        resumed = follows[-1]  # after the last line seen before the crash (20, or a few more
        after = int(resumed.headers["last-event-id"])  # already buffered when it happened)
        assert 20 <= after < 120
        assert resumed.url.params["afterSequence"] == str(after)
        assert "last-event-id" not in follows[0].headers
        final = await finished(backend, execution.id)
        assert final.state.current == "SUCCESS"
    finally:
        await backend.close()
        await stop_server(server, task)
        await engine.close()


async def test_follow_execution_survives_a_server_restart(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path / "data")
    server, task, url = await start_server(engine, options())
    port = int(url.rsplit(":", 1)[1])
    backend = HttpBackend(url)
    try:
        await backend.apply_flow(textwrap.dedent("""
            id: slow
            namespace: t.client
            tasks:
              - id: nap
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT1S
              - id: done
                type: io.kestra.plugin.core.log.Log
                message: done
            """))
        execution = await backend.create_execution("t.client", "slow")
        states: list[str] = []
        async with asyncio.timeout(20):
            async for snapshot in backend.follow_execution(execution.id):
                states.append(snapshot.state.current)
                if len(states) == 1:
                    await crash(server, task)
                    server, task = await serve_on(engine, port)
        assert states[-1] == "SUCCESS"
    finally:
        await backend.close()
        await stop_server(server, task)
        await engine.close()


async def test_watch_approvals_catches_up_after_a_reconnect(tmp_path: Path) -> None:
    from client.test_embedded import RELEASE, state_is, until

    engine = await open_engine(tmp_path / "data")
    server, task, url = await start_server(engine, options())
    port = int(url.rsplit(":", 1)[1])
    backend = HttpBackend(url)
    seen: list[Any] = []
    stream = backend.watch_approvals()

    async def watch() -> None:
        async for approval in stream:
            seen.append(approval)

    watcher = asyncio.create_task(watch())
    try:
        await backend.apply_flow(flow(RELEASE))
        async with asyncio.timeout(5):
            while not engine._bus._by_topic.get("approval"):
                await asyncio.sleep(0.01)
        await crash(server, task)
        # Created while nobody listens: the watch must still report it after reconnecting.
        execution = await engine.create_execution("t.client", "release")
        server, task = await serve_on(engine, port)
        await until(backend, execution.id, state_is("PAUSED"))
        async with asyncio.timeout(15):
            while not any(a.execution_id == execution.id for a in seen):
                await asyncio.sleep(0.02)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await stream.aclose()  # type: ignore[attr-defined]
        await backend.close()
        await stop_server(server, task)
        await engine.close()


async def test_a_created_execution_is_readable_at_once(tmp_path: Path) -> None:
    async with remote(tmp_path) as (backend, _, transport):
        await backend.apply_flow(flow(HELLO))
        execution = await backend.create_execution("t.client", "hello", {"name": "x"})
        again = await backend.get_execution(execution.id)
        assert again.id == execution.id
        creates = [r for r in transport.requests if r.method == "POST"
                   and r.url.path.endswith("/executions/t.client/hello")]
        assert creates[0].headers["content-type"].startswith("multipart/form-data")
