"""Execution follow and log routes over a real loopback server, read as raw SSE bytes.

Every stream is read with a plain `httpx.AsyncClient.stream` and parsed here, byte for byte,
so the wire format (`id:` + compact `data:` JSON + blank line, `: ping` comments, chunked
transfer) is what is tested. Waits are bounded and event-driven; nothing sleeps a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import textwrap
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdeck.engine.engine import Engine
from flowdeck.server.app import ServerOptions
from helpers import apply, open_engine, run_flow, wait_for_state
from live_server import LiveServer, start_server, stop_server

API = "/api/v1/main"
KEEPALIVE = 0.3
EVENT_RE = re.compile(r"id: ([^\n]+)\ndata: ([^\n]*)")


@dataclass
class Live:
    engine: Engine
    client: httpx.AsyncClient
    app: Any


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, **options: Any) -> AsyncIterator[Live]:
    engine = await open_engine(tmp_path / "data")
    opts = ServerOptions(extra={"sse_keepalive": KEEPALIVE}, **options)
    server, task, url = await start_server(engine, opts)
    client = httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10))
    try:
        yield Live(engine, client, server.config.app)
    finally:
        await client.aclose()
        await stop_server(server, task)
        await engine.close()


@dataclass
class Frame:
    raw: bytes
    id: str | None = None
    data: Any = None
    comment: str | None = None


def parse_frame(block: bytes) -> Frame:
    text = block.decode()
    if text.startswith(":"):
        assert "\n" not in text, text
        return Frame(block, comment=text[1:].strip())
    match = EVENT_RE.fullmatch(text)
    assert match is not None, f"not `id:` + one `data:` line: {text!r}"
    payload = match.group(2)
    data = json.loads(payload)
    assert json.dumps(data, separators=(",", ":"), ensure_ascii=False) == payload, "not compact"
    return Frame(block, id=match.group(1), data=data)


class SSEReader:
    """Frames from a streaming response, parsed from the raw (de-chunked) body bytes."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._chunks = response.aiter_bytes()
        self._buffer = b""
        self.ended = False

    async def next(self) -> Frame | None:
        """The next frame, or None once the server has closed the stream."""
        while b"\n\n" not in self._buffer:
            try:
                self._buffer += await anext(self._chunks)
            except StopAsyncIteration:
                assert not self._buffer, f"a partial frame at the end: {self._buffer!r}"
                self.ended = True
                return None
        block, self._buffer = self._buffer.split(b"\n\n", 1)
        return parse_frame(block)

    async def until(self, done: Callable[[Frame], bool]) -> list[Frame]:
        frames = []
        while True:
            frame = await self.next()
            assert frame is not None, f"stream closed early after {frames}"
            frames.append(frame)
            if done(frame):
                return frames

    async def rest(self) -> list[Frame]:
        frames: list[Frame] = []
        while (frame := await self.next()) is not None:
            frames.append(frame)
        return frames


@contextlib.asynccontextmanager
async def sse(client: httpx.AsyncClient, path: str,
              headers: dict[str, str] | None = None) -> AsyncIterator[SSEReader]:
    async with client.stream("GET", path, headers={"Accept": "text/event-stream",
                                                   **(headers or {})}) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in response.headers
        yield SSEReader(response)


def events(frames: list[Frame]) -> list[Frame]:
    return [f for f in frames if f.comment is None]


def is_message(text: str) -> Callable[[Frame], bool]:
    return lambda f: f.data is not None and f.data.get("message") == text


SLOW = """
    id: slow
    namespace: t.sse
    tasks:
      - id: hello
        type: io.kestra.plugin.core.log.Log
        message: hello
      - id: nap
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT0.5S
      - id: bye
        type: io.kestra.plugin.core.log.Log
        level: WARN
        message: bye
    """

GATE = """
    id: gate
    namespace: t.sse
    tasks:
      - id: hold
        type: io.kestra.plugin.core.flow.Pause
      - id: after
        type: io.kestra.plugin.core.log.Log
        message: resumed
    """


async def test_follow_a_running_execution_to_its_end(tmp_path: Path) -> None:
    async with serve(tmp_path) as live, asyncio.timeout(20):
        await apply(live.engine, SLOW)
        execution = await live.engine.create_execution("t.sse", "slow")
        async with sse(live.client, f"{API}/executions/{execution.id}/follow") as reader:
            frames = await reader.rest()  # returns only because the server closes the stream
        got = events(frames)
        assert got[0].id == "start"
        assert got[0].data["id"] == execution.id and "state" not in got[0].data
        assert got[0].data["namespace"] == "t.sse" and got[0].data["flowId"] == "slow"
        assert got[-1].id == "end" and got[-1].data["state"]["current"] == "SUCCESS"
        assert got[-1].data["id"] == execution.id
        assert [t["taskId"] for t in got[-1].data["taskRunList"]] == ["hello", "nap", "bye"]
        progress = got[1:-1]
        assert progress and all(f.id == "progress" for f in progress)
        assert all("state" in f.data and f.data["id"] == execution.id for f in progress)
        seen = [len(f.data["state"]["histories"]) for f in got[1:]]
        assert seen == sorted(seen), "a snapshot went backwards"
        assert any(f.data["state"]["current"] == "RUNNING" for f in progress)
        raw = b"".join(f.raw + b"\n\n" for f in frames)
        assert b"event:" not in raw and raw.startswith(b"id: start\ndata: {")


async def test_follow_a_paused_execution_stays_open_until_resumed(tmp_path: Path) -> None:
    async with serve(tmp_path) as live, asyncio.timeout(20):
        await apply(live.engine, GATE)
        execution = await live.engine.create_execution("t.sse", "gate")
        async with sse(live.client, f"{API}/executions/{execution.id}/follow") as reader:
            await reader.until(lambda f: f.data is not None
                               and f.data.get("state", {}).get("current") == "PAUSED")
            # Paused is not the end: keepalives keep coming on the open stream.
            pings = await reader.until(lambda f: f.comment is not None)
            assert pings[-1].raw == b": ping"
            assert all(f.id == "progress" for f in events(pings))
            await live.engine.resume(execution.id, {})
            rest = await reader.rest()
        final = events(rest)[-1]
        assert final.id == "end" and final.data["state"]["current"] == "SUCCESS"
        assert [h["state"] for h in final.data["state"]["histories"]] == [
            "CREATED", "RUNNING", "PAUSED", "RUNNING", "SUCCESS"]


async def test_follow_a_finished_or_unknown_execution(tmp_path: Path) -> None:
    async with serve(tmp_path) as live, asyncio.timeout(20):
        await apply(live.engine, SLOW)
        done = await run_flow(live.engine, "t.sse", "slow")
        for prefix in (API, "/api/v1"):  # also the pre-0.23 tenant-less path
            async with sse(live.client, f"{prefix}/executions/{done.id}/follow") as reader:
                frames = await reader.rest()
            assert [f.id for f in frames] == ["start", "end"]
            assert "state" not in frames[0].data
            assert frames[1].data["state"]["current"] == "SUCCESS"
        missing = await live.client.get(f"{API}/executions/nope/follow")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["status"] == 404


async def test_follow_keeps_an_idle_stream_alive_with_comments(tmp_path: Path) -> None:
    async with serve(tmp_path) as live, asyncio.timeout(20):
        await apply(live.engine, GATE)
        execution = await live.engine.create_execution("t.sse", "gate")
        await wait_for_state(live.engine, execution.id, "PAUSED")
        async with sse(live.client, f"{API}/executions/{execution.id}/follow") as reader:
            frames = await reader.until(lambda f: f.comment is not None)
            frames += await reader.until(lambda f: f.comment is not None)
        assert [f.id for f in events(frames)] == ["start", "progress"]
        assert [f.raw for f in frames if f.comment is not None] == [b": ping", b": ping"]
        await live.engine.kill(execution.id)



async def test_a_client_that_stops_reading_never_holds_the_engine_back(tmp_path: Path) -> None:
    values = json.dumps([f"v{i}" for i in range(150)])
    async with serve(tmp_path) as live, asyncio.timeout(30):
        await apply(live.engine, f"""
            id: many
            namespace: t.sse
            tasks:
              - id: each
                type: io.kestra.plugin.core.flow.ForEach
                values: {values}
                concurrencyLimit: 1
                tasks:
                  - id: nap
                    type: io.kestra.plugin.core.flow.Sleep
                    duration: PT0.005S
                  - id: echo
                    type: io.kestra.plugin.core.debug.Return
                    format: "{{{{ taskrun.value }}}}"
            """)
        execution = await live.engine.create_execution("t.sse", "many")
        commits = live.engine.store.commits
        async with sse(live.client, f"{API}/executions/{execution.id}/follow") as reader:
            assert (await reader.next()).id == "start"  # type: ignore[union-attr]
            # Not reading: the server's writes back up, the execution still runs to its end.
            final = await live.engine.wait_until_terminal(execution.id, 20)
            assert final.state.current == "SUCCESS" and len(final.task_runs) == 301
            commits = live.engine.store.commits - commits
            frames = await reader.rest()
        assert frames[-1].id == "end" and frames[-1].data["state"]["current"] == "SUCCESS"
        assert len(frames[-1].data["taskRunList"]) == 301
        assert len(frames) < commits, "updates a slow client missed are coalesced"


LEVELS = """
    id: levels
    namespace: t.logs.{suffix}
    tasks:
      - id: first
        type: io.kestra.plugin.core.log.Log
        message: [debug one, debug two]
        level: DEBUG
      - id: second
        type: io.kestra.plugin.core.log.Log
        message: "info: 100% of_it"
      - id: third
        type: io.kestra.plugin.core.log.Log
        level: WARN
        message: careful
      - id: fourth
        type: io.kestra.plugin.core.log.Log
        level: ERROR
        message: broken
    """


async def test_log_list_filters_and_download(tmp_path: Path) -> None:
    async with serve(tmp_path) as live, asyncio.timeout(20):
        await apply(live.engine, LEVELS.format(suffix="a"))
        done = await run_flow(live.engine, "t.logs.a", "levels")
        url = f"{API}/logs/{done.id}"
        every = (await live.client.get(url)).json()
        assert [e["message"] for e in every] == [
            "debug one", "debug two", "info: 100% of_it", "careful", "broken"]
        assert [e["sequence"] for e in every] == [1, 2, 3, 4, 5]
        first = every[0]
        assert first["executionId"] == done.id and first["namespace"] == "t.logs.a"
        assert first["flowId"] == "levels" and first["taskId"] == "first"
        assert first["level"] == "DEBUG" and first["timestamp"].endswith("Z")
        assert first["attemptNumber"] == 0 and first["taskRunId"] == done.task_runs[0].id

        async def messages(path: str, **params: str) -> list[str]:
            response = await live.client.get(path, params=params)
            assert response.status_code == 200, response.text
            return [e["message"] for e in response.json()]

        assert await messages(url, minLevel="WARN") == ["careful", "broken"]
        assert await messages(url, **{"filters[level][GREATER_THAN_OR_EQUAL_TO]": "ERROR"}) == [
            "broken"]
        assert await messages(url, **{"filters[level][EQUALS]": "DEBUG"}) == [
            "debug one", "debug two"]
        assert await messages(url, taskId="third") == ["careful"]
        assert await messages(url, **{"filters[taskId][EQUALS]": "second"}) == [
            "info: 100% of_it"]
        assert await messages(url, taskRunId=done.task_runs[3].id) == ["broken"]
        assert await messages(url, attempt="0", minLevel="ERROR") == ["broken"]
        assert await messages(url, attempt="1") == []
        assert await messages(f"{API}/logs/no-such-execution") == []
        bad = await live.client.get(url, params={"minLevel": "LOUD"})
        assert bad.status_code == 400 and "LOUD" in bad.json()["detail"]

        download = await live.client.get(f"{url}/download")
        assert download.status_code == 200
        assert download.headers["content-type"].startswith("text/plain")
        assert download.headers["content-disposition"] == (
            f'attachment; filename="{done.id}.log"')
        lines = download.text.split("\n")
        assert len(lines) == 5
        assert lines[3] == f"{every[3]['timestamp']} WARN careful"
        assert all(re.fullmatch(r"\S+Z (DEBUG|INFO|WARN|ERROR) .+", line) for line in lines)
        warn_only = await live.client.get(f"{url}/download", params={"minLevel": "WARN"})
        assert warn_only.text.split("\n")[0].endswith(" WARN careful")
        missing = await live.client.get(f"{API}/logs/no-such-execution/download")
        assert missing.status_code == 404


async def test_log_search_and_delete(tmp_path: Path) -> None:
    async with serve(tmp_path) as live, asyncio.timeout(20):
        await apply(live.engine, LEVELS.format(suffix="a"))
        await apply(live.engine, LEVELS.format(suffix="b"))
        a = await run_flow(live.engine, "t.logs.a", "levels")
        b = await run_flow(live.engine, "t.logs.b", "levels")
        search = f"{API}/logs/search"

        async def find(**params: Any) -> dict[str, Any]:
            response = await live.client.get(search, params=params)
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            assert set(body) == {"results", "total", "type"} and body["type"] == "OFFSET"
            return body

        everything = await find(size=100)
        assert everything["total"] == 10
        newest_first = [(e["executionId"], e["sequence"]) for e in everything["results"]]
        assert newest_first[0] == (b.id, 5) and newest_first[-1] == (a.id, 1)
        oldest = await find(size=3, page=2, sort="timestamp:asc")
        assert oldest["total"] == 10
        assert [(e["executionId"], e["sequence"]) for e in oldest["results"]] == [
            (a.id, 4), (a.id, 5), (b.id, 1)]
        only_a = await find(**{"filters[namespace][EQUALS]": "t.logs.a", "size": 50})
        assert only_a["total"] == 5 and {e["executionId"] for e in only_a["results"]} == {a.id}
        prefix = await find(**{"filters[namespace][PREFIX]": "t.logs"})
        assert prefix["total"] == 10 and len(prefix["results"]) == 10
        legacy = await find(namespace="t.logs.b", minLevel="WARN")
        assert legacy["total"] == 2
        assert {e["executionId"] for e in legacy["results"]} == {b.id}
        errors = await find(**{"filters[level][GREATER_THAN_OR_EQUAL_TO]": "ERROR",
                               "filters[flowId][EQUALS]": "levels"})
        assert errors["total"] == 2 and {e["message"] for e in errors["results"]} == {"broken"}
        by_execution = await find(**{"filters[executionId][EQUALS]": a.id,
                                     "filters[taskId][EQUALS]": "third"})
        assert [e["message"] for e in by_execution["results"]] == ["careful"]
        assert (await find(q="100%"))["total"] == 2  # `%` is literal, not a wildcard
        assert (await find(q="of_it"))["total"] == 2
        assert (await find(q="CAREFUL"))["total"] == 2
        assert (await find(**{"filters[timeRange][EQUALS]": "PT1H"}))["total"] == 10
        future = "2999-01-01T00:00:00Z"
        assert (await find(**{"filters[startDate][GREATER_THAN_OR_EQUAL_TO]": future}))[
            "total"] == 0
        assert (await find(**{"filters[endDate][LESS_THAN_OR_EQUAL_TO]": future}))[
            "total"] == 10
        assert (await find(**{"filters[triggerId][EQUALS]": "nightly"}))["total"] == 0
        for bad in ({"sort": "nope:asc"}, {"filters[colour][EQUALS]": "red"},
                    {"filters[level][GREATER_THAN_OR_EQUAL_TO]": "LOUD"}, {"size": "0"},
                    {"filters[startDate][GREATER_THAN]": "yesterday"}):
            response = await live.client.get(search, params=bad)
            assert response.status_code == 400, (bad, response.text)
            assert response.headers["content-type"] == "application/problem+json"

        response = await live.client.delete(f"{API}/logs/{a.id}", params={"minLevel": "ERROR"})
        assert response.status_code == 200
        left = (await live.client.get(f"{API}/logs/{a.id}")).json()
        assert [e["message"] for e in left] == [
            "debug one", "debug two", "info: 100% of_it", "careful"]
        response = await live.client.delete(f"/api/v1/logs/{a.id}")
        assert response.status_code == 200
        assert (await live.client.get(f"{API}/logs/{a.id}")).json() == []
        assert len((await live.client.get(f"{API}/logs/{b.id}")).json()) == 5
        assert (await live.client.delete(f"{API}/logs/no-such-execution")).status_code == 200


def shell_flow(gate_a: Path, gate_b: Path) -> str:
    return textwrap.dedent(f"""
        id: chatty
        namespace: t.follow
        tasks:
          - id: talk
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - for i in 1 2 3; do echo "line $i"; done
              - while [ ! -f {gate_a} ]; do sleep 0.02; done
              - for i in 4 5 6; do echo "line $i"; sleep 0.02; done
              - while [ ! -f {gate_b} ]; do sleep 0.02; done
              - for i in 7 8 9; do echo "line $i"; sleep 0.02; done
          - id: last
            type: io.kestra.plugin.core.log.Log
            level: WARN
            message: finished
        """)


def log_lines(frames: list[Frame]) -> list[tuple[int, str]]:
    out = []
    for frame in events(frames):
        assert frame.id == str(frame.data["sequence"]), "the event id is the line number"
        out.append((frame.data["sequence"], frame.data["message"]))
    return out


async def test_log_follow_replays_streams_and_resumes_without_gap_or_duplicate(
        tmp_path: Path) -> None:
    gate_a, gate_b = tmp_path / "gate-a", tmp_path / "gate-b"
    async with serve(tmp_path) as live, asyncio.timeout(30):
        await apply(live.engine, shell_flow(gate_a, gate_b))
        execution = await live.engine.create_execution("t.follow", "chatty")
        url = f"{API}/logs/{execution.id}/follow"
        async with sse(live.client, url) as reader:
            first = await reader.until(is_message("line 3"))
            gate_a.touch()  # lines 4-6 are printed only now: they arrive live
            first += await reader.until(is_message("line 5"))
        received = log_lines(first)
        assert [m for _, m in received] == [f"line {i}" for i in range(1, 6)]
        assert [s for s, _ in received] == list(range(1, 6))
        frame = events(first)[0].data
        assert frame["executionId"] == execution.id and frame["taskId"] == "talk"
        assert frame["level"] == "INFO" and frame["namespace"] == "t.follow"

        # Reconnect the way EventSource does; line 6 may be stored or still coming.
        async with sse(live.client, url, {"Last-Event-ID": str(received[-1][0])}) as reader:
            second = await reader.until(is_message("line 6"))
            gate_b.touch()
            second += await reader.until(is_message("finished"))
        resumed = log_lines(second)
        assert [m for _, m in resumed] == [f"line {i}" for i in range(6, 10)] + ["finished"]
        assert [s for s, _ in received + resumed] == list(range(1, 11))

        final = await live.engine.wait_until_terminal(execution.id, 10)
        assert final.state.current == "SUCCESS"
        # After the run: a replay from a query parameter, then the stream stays open.
        async with sse(live.client, f"{url}?afterSequence=8") as reader:
            frames = await reader.until(lambda f: f.comment is not None)
        assert log_lines(frames) == [(9, "line 9"), (10, "finished")]
        # A full replay, and the level filter (both parameter styles).
        async with sse(live.client, url) as reader:
            frames = await reader.until(lambda f: f.comment is not None)
        assert [s for s, _ in log_lines(frames)] == list(range(1, 11))
        for query in ("minLevel=WARN", "filters[level][GREATER_THAN_OR_EQUAL_TO]=WARN"):
            async with sse(live.client, f"{url}?{query}") as reader:
                frames = await reader.until(lambda f: f.comment is not None)
            assert log_lines(frames) == [(10, "finished")]
        # A Kestra-style `Last-Event-ID: progress` is not a line number: everything again.
        async with sse(live.client, url, {"Last-Event-ID": "progress"}) as reader:
            frames = await reader.until(lambda f: f.comment is not None)
        assert len(log_lines(frames)) == 10
        assert (await live.client.get(f"{API}/logs/nope/follow")).status_code == 404
        bad = await live.client.get(f"{url}?afterSequence=soon")
        assert bad.status_code == 400


async def test_streams_over_the_per_client_cap_get_429(tmp_path: Path) -> None:
    async with serve(tmp_path, sse_per_client=2) as live, asyncio.timeout(20):
        await apply(live.engine, LEVELS.format(suffix="a"))
        done = await run_flow(live.engine, "t.logs.a", "levels")
        url = f"{API}/logs/{done.id}/follow"
        streams = live.app.state.streams
        async with contextlib.AsyncExitStack() as stack:
            # Keep the readers referenced: a collected reader's byte iterator closes its stream.
            readers = [await stack.enter_async_context(sse(live.client, url)) for _ in range(2)]
            for reader in readers:
                await reader.until(lambda f: f.comment is not None)
            for path in (url, f"{API}/executions/{done.id}/follow"):
                refused = await live.client.get(path)
                assert refused.status_code == 429
                assert refused.headers["content-type"] == "application/problem+json"
                body = refused.json()
                assert body["status"] == 429 and body["type"].endswith("/too-many-requests")
                assert "Retry-After" in refused.headers
            assert sum(streams.open.values()) == 2
        # Closing a stream frees its slot as soon as the server notices the disconnect.
        while streams.open:
            await asyncio.sleep(0.01)
        async with sse(live.client, f"{API}/executions/{done.id}/follow") as reader:
            assert [f.id for f in await reader.rest()] == ["start", "end"]
        assert not streams.open


@pytest.mark.filterwarnings("ignore:Field name \"validate\":UserWarning")
async def test_kestrapy_follows_an_execution_and_reads_its_logs(tmp_path: Path) -> None:
    """The official client (sseclient over requests, 128-byte reads) sees every event."""
    pytest.importorskip("regex", reason="kestrapy 2.0.3 needs the undeclared 'regex' package")
    from kestrapy import KestraClient

    async with serve(tmp_path) as live, asyncio.timeout(30):
        await apply(live.engine, SLOW)
        execution = await live.engine.create_execution("t.sse", "slow")
        client = KestraClient(host=str(live.client.base_url), timeout=15)

        def scenario() -> tuple[list[Any], list[Any], Any, str]:
            states = list(client.executions.follow_execution(execution.id, "main"))
            stream = client.logs.follow_logs_from_execution(execution.id, "main")
            lines = [next(stream), next(stream)]
            stream.close()
            found = client.logs.search_logs("main", page=1, size=10)
            text = client.logs.download_logs_from_execution(execution.id, "main")
            return states, lines, found, text

        states, lines, found, text = await asyncio.to_thread(scenario)
        assert getattr(states[0], "state", None) is None and states[0].id == execution.id
        assert states[-1].state.current == "SUCCESS"
        assert [line.message for line in lines] == ["hello", "bye"]
        assert found.total == 2 and text.endswith(" WARN bye")


async def test_deleting_logs_never_reuses_a_line_number(tmp_path: Path) -> None:
    async with serve(tmp_path) as live, asyncio.timeout(20):
        await apply(live.engine, """
            id: flaky
            namespace: t.logs
            tasks:
              - id: say
                type: io.kestra.plugin.core.log.Log
                message: [one, two]
              - id: boom
                type: io.kestra.plugin.core.execution.Fail
            """)
        failed = await run_flow(live.engine, "t.logs", "flaky")
        before = (await live.client.get(f"{API}/logs/{failed.id}")).json()
        highest = max(e["sequence"] for e in before)
        assert (await live.client.delete(f"{API}/logs/{failed.id}")).status_code == 200
        await live.engine.restart(failed.id)
        await live.engine.wait_until_terminal(failed.id, 10)
        after = (await live.client.get(f"{API}/logs/{failed.id}")).json()
        assert after and min(e["sequence"] for e in after) == highest + 1


async def test_list_logs_after_a_sequence_number(live: LiveServer) -> None:
    await live.engine.apply_flow(
        "id: few\nnamespace: t.after\ntasks:\n"
        "  - id: say\n    type: io.kestra.plugin.core.log.Log\n    message: [a, b, c, d]\n")
    execution = await live.engine.create_execution("t.after", "few")
    await live.engine.wait_until_terminal(execution.id, 10)
    lines = (await live.client.get(f"/api/v1/main/logs/{execution.id}",
                                   params={"afterSequence": 2})).json()
    assert [(line["sequence"], line["message"]) for line in lines] == [(3, "c"), (4, "d")]
    bad = await live.client.get(f"/api/v1/main/logs/{execution.id}",
                                params={"afterSequence": "x"})
    assert bad.status_code == 400
