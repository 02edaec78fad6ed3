"""Long logs and hostile flows against a real loopback server: answers stream a page at a time,
a client that goes away stops the reading, slow followers hold little, and a YAML bomb or a
template bomb never stops `/ping`."""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from flowdeck.core.models import LogEntry
from flowdeck.engine.engine import Engine
from flowdeck.server.app import ServerOptions
from flowdeck.server.sse import STREAM_PAGE, StreamLimiter
from helpers import apply, open_engine, wait_for_state
from live_server import start_server, stop_server

API = "/api/v1/main"
QUICK = textwrap.dedent("""
    id: quick
    namespace: t.logs
    tasks:
      - id: hi
        type: io.kestra.plugin.core.log.Log
        message: hi
    """)


class Server:
    def __init__(self, engine: Engine, client: httpx.AsyncClient, limiter: StreamLimiter,
                 url: str) -> None:
        self.engine = engine
        self.client = client
        self.limiter = limiter
        self.url = url


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    engine = await open_engine(tmp_path / "data")
    options = ServerOptions(sse_per_client=50, extra={"sse_keepalive": 0.5})
    uvicorn_server, task, url = await start_server(engine, options)
    client = httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(20))
    limiter = uvicorn_server.config.app.state.streams  # type: ignore[attr-defined]
    try:
        yield Server(engine, client, limiter, url)
    finally:
        await client.aclose()
        await stop_server(uvicorn_server, task)
        await engine.close()


async def long_execution(engine: Engine, lines: int, size: int = 100) -> str:
    """A finished execution with `lines` stored lines after its own (staged in one go)."""
    await apply(engine, QUICK)
    execution = await engine.create_execution("t.logs", "quick")
    await wait_for_state(engine, execution.id, "SUCCESS")
    await engine.store.flush()
    first = len(await engine.logs.fetch(execution.id)) + 1
    level = ["INFO", "WARN"]
    engine.store.stage_logs([
        LogEntry(execution.id, seq, "t.logs", "quick", "hi", None, 0,
                 "2026-01-01T00:00:00.000Z", level[seq % 2], f"{seq:06d} " + "x" * size)
        for seq in range(first, first + lines)])
    await engine.store.flush()
    return execution.id


async def test_listing_a_long_log_streams_one_json_array(server: Server) -> None:
    execution_id = await long_execution(server.engine, 3 * STREAM_PAGE + 7)
    async with server.client.stream("GET", f"{API}/logs/{execution_id}") as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert "content-length" not in response.headers
        assert response.headers.get("transfer-encoding") == "chunked"
        body = json.loads(await response.aread())
    sequences = [line["sequence"] for line in body]
    assert sequences == list(range(1, len(sequences) + 1))
    assert len(sequences) == 3 * STREAM_PAGE + 7 + 1
    warn = (await server.client.get(f"{API}/logs/{execution_id}",
                                    params={"minLevel": "WARN"})).json()
    assert warn and {line["level"] for line in warn} == {"WARN"}
    after = (await server.client.get(f"{API}/logs/{execution_id}",
                                     params={"afterSequence": "1500"})).json()
    assert [line["sequence"] for line in after][:2] == [1501, 1502]
    assert (await server.client.get(f"{API}/logs/nope")).json() == []
    text = (await server.client.get(f"{API}/logs/{execution_id}/download")).text
    assert len(text.splitlines()) == len(sequences)


async def test_a_follower_that_goes_away_stops_the_reading(server: Server) -> None:
    execution_id = await long_execution(server.engine, 40 * STREAM_PAGE, size=2000)
    async with server.client.stream("GET", f"{API}/logs/{execution_id}/follow") as response:
        assert response.status_code == 200
        async for _ in response.aiter_bytes():
            break  # one chunk, then the client leaves
    async with asyncio.timeout(10):
        while server.limiter.open:
            await asyncio.sleep(0.02)
    read = server.limiter.pages_read
    assert read < 40, read
    # Nothing keeps reading once the stream is gone.
    probe = await server.client.get("/ping")
    assert probe.text == "pong"
    assert server.limiter.pages_read == read


async def test_slow_followers_hold_a_few_pages_each(server: Server) -> None:
    execution_id = await long_execution(server.engine, 40 * STREAM_PAGE, size=2000)
    followers = 20
    async with AsyncExitStack() as stack:
        for _ in range(followers):
            response = await stack.enter_async_context(
                server.client.stream("GET", f"{API}/logs/{execution_id}/follow"))
            assert response.status_code == 200
        # They read nothing: every stream stalls once its socket buffers are full.
        async with asyncio.timeout(20):
            while True:
                before = server.limiter.pages_read
                await asyncio.sleep(0.3)
                if server.limiter.pages_read == before:
                    break
        stalled = server.limiter.pages_read
        started = time.monotonic()
        assert (await server.client.get("/ping")).text == "pong"
        assert time.monotonic() - started < 1
    # ~1 MiB pages against a few MiB of socket buffers: far from the 40 pages each.
    assert stalled < followers * 15, stalled
    async with asyncio.timeout(10):
        while server.limiter.open:
            await asyncio.sleep(0.02)
    assert (await server.client.get("/ping")).text == "pong"


BOMB = "\n".join(
    ["id: bomb", "namespace: t.yaml", "variables:",
     '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
     *(f"  {n}: &{n} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]"
       for p, n in zip("abcdefgh", "bcdefghi", strict=True)),
     "tasks:", "  - id: t", "    type: io.kestra.plugin.core.log.Log",
     "    message: '{{ vars.i }}'"]) + "\n"


@pytest.mark.parametrize("path", ["/flows/validate", "/flows", "/flows/t.yaml/bomb"])
async def test_a_yaml_bomb_is_a_4xx_within_100_ms(server: Server, path: str) -> None:
    method = "PUT" if path.count("/") == 3 else "POST"
    started = time.monotonic()
    response = await server.client.request(method, API + path, content=BOMB,
                                           headers={"content-type": "application/x-yaml"})
    elapsed = time.monotonic() - started
    assert response.status_code == 422, response.text
    assert "aliases expand to more than" in response.text
    assert elapsed < 0.1, elapsed
    assert (await server.client.get("/ping")).text == "pong"


async def test_validate_keeps_kestras_answer_for_an_invalid_flow(server: Server) -> None:
    source = "id: x\nnamespace: t.v\ntasks: []\n---\nid: y\nnamespace: t.v\ntasks:\n" \
             "  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: m\n"
    response = await server.client.post(f"{API}/flows/validate", content=source,
                                        headers={"content-type": "application/x-yaml"})
    assert response.status_code == 200, response.text
    first, second = response.json()
    assert first["flow"] == "x" and first["constraints"]
    assert second["flow"] == "y" and "constraints" not in second


async def test_a_template_bomb_fails_its_task_and_the_server_keeps_answering(
        server: Server) -> None:
    await apply(server.engine, textwrap.dedent("""
        id: bomb
        namespace: t.tpl
        tasks:
          - id: boom
            type: io.kestra.plugin.core.log.Log
            message: "{{ 9 ** (9 ** 7) }}"
        """))
    created = await server.client.post(f"{API}/executions/t.tpl/bomb")
    assert created.status_code == 200, created.text
    worst = 0.0
    async with asyncio.timeout(30):
        while True:
            started = time.monotonic()
            assert (await server.client.get("/ping")).text == "pong"
            worst = max(worst, time.monotonic() - started)
            state = (await server.client.get(
                f"{API}/executions/{created.json()['id']}")).json()["state"]["current"]
            if state in ("FAILED", "SUCCESS"):
                break
            await asyncio.sleep(0.02)
    assert state == "FAILED"
    assert worst < 0.5, worst


HUGE = "562411426186729553920"  # past what SQLite's INTEGER holds


@pytest.mark.parametrize("path, params, headers, field", [
    ("", {"afterSequence": HUGE}, {}, "afterSequence"),
    ("", {"attempt": HUGE}, {}, "attempt"),
    ("", {"filters[attempt][EQUALS]": HUGE}, {}, "filters[attempt]"),
    ("/download", {"attempt": HUGE}, {}, "attempt"),
    ("/follow", {"afterSequence": HUGE}, {}, "afterSequence"),
    ("/follow", {}, {"Last-Event-ID": HUGE}, "Last-Event-ID"),
])
async def test_a_number_past_what_the_store_holds_is_a_400_before_the_stream_starts(
        server: Server, path: str, params: dict[str, str], headers: dict[str, str],
        field: str) -> None:
    execution_id = await long_execution(server.engine, 10)
    response = await server.client.get(f"{API}/logs/{execution_id}{path}", params=params,
                                       headers=headers)
    assert response.status_code == 400, response.text
    assert field in response.json()["message"]
    assert (await server.client.get("/ping")).status_code == 200


async def test_a_superscript_digit_last_event_id_is_ignored_like_any_non_number(
        server: Server) -> None:
    execution_id = await long_execution(server.engine, 3)
    first = (await server.engine.logs.fetch(execution_id))[0].seq
    async with server.client.stream("GET", f"{API}/logs/{execution_id}/follow",
                                     headers={"Last-Event-ID": b"\xb2"}) as response:
        assert response.status_code == 200  # "²".isdigit(), but int("²") fails
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                assert int(line[4:]) == first  # replayed from the start
                break
