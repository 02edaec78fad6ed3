"""The Backend protocol against a real EmbeddedBackend (the engine on its own thread and loop).

The behaviour checks (`check_*`) take any connected `Backend` plus a `Harness`, so
`test_http_flowdeck.py` runs the very same ones through `HttpBackend` and a real server. Waits
are bounded and follow live streams; nothing sleeps a fixed time to let something happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flowdeck.client.backend import Backend, Capabilities, ExecutionFilter
from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.core.errors import (
    BackendUnavailable,
    BadRequestError,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from flowdeck.core.models import Approval, Execution
from flowdeck.core.states import is_terminal
from flowdeck.engine.engine import Engine, EngineSettings

HELLO = """
    id: hello
    namespace: t.client
    labels:
      team: deck
    inputs:
      - id: name
        type: STRING
        defaults: world
      - id: times
        type: INT
        defaults: 1
    tasks:
      - id: greet
        type: io.kestra.plugin.core.log.Log
        message: "hello {{ inputs.name }}"
      - id: shell
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - echo one
          - echo two >&2
          - echo three
    """
SLEEPY = """
    id: sleepy
    namespace: t.client
    tasks:
      - id: nap
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT30S
    """
FLAKY = """
    id: flaky
    namespace: t.client
    inputs:
      - id: marker
        type: STRING
    tasks:
      - id: first
        type: io.kestra.plugin.core.log.Log
        message: before
      - id: check
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - test -f "{{ inputs.marker }}"
    """
GATE = """
    id: gate
    namespace: t.client
    tasks:
      - id: hold
        type: io.kestra.plugin.core.flow.Pause
        onResume:
          - id: reason
            type: STRING
      - id: after
        type: io.kestra.plugin.core.log.Log
        message: "resumed: {{ outputs.hold.onResume.reason }}"
    """
STEPPER = """
    id: stepper
    namespace: t.client
    tasks:
      - id: nap
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT0.4S
      - id: after
        type: io.kestra.plugin.core.log.Log
        message: after
    """
RELEASE = """
    id: release
    namespace: t.client
    inputs:
      - id: version
        type: STRING
        defaults: "1.0"
    tasks:
      - id: review
        type: flowdeck.approval.Request
        title: "Ship {{ inputs.version }}?"
        displayFields: [service]
        allowBulkApproval: true
        rows:
          - {service: api}
      - id: ship
        type: io.kestra.plugin.core.log.Log
        message: "shipped by {{ outputs.review.decidedBy }}"
    """
BOOM = """
    id: boom
    namespace: t.other
    labels:
      kind: failing
    tasks:
      - id: fail
        type: io.kestra.plugin.core.execution.Fail
        errorMessage: on purpose
    """
SUB = """
    id: leaf
    namespace: t.client.sub
    tasks:
      - id: log
        type: io.kestra.plugin.core.log.Log
        message: leaf
    """

WAIT = 15.0


def flow(source: str) -> str:
    return textwrap.dedent(source).lstrip()


@dataclass
class Harness:
    """What a behaviour check needs besides the backend."""

    tmp_path: Path
    #: Wait until the backend is listening for `topic` ("execution" / "approval") events.
    watching: Callable[[str], Awaitable[None]]


# -- helpers built on the protocol alone -----------------------------------------------------


async def until(backend: Backend, execution_id: str,
                done: Callable[[Execution], bool], timeout: float = WAIT) -> Execution:
    """Follow the execution until `done(snapshot)`; the first snapshot that satisfies it."""
    stream = backend.follow_execution(execution_id)
    try:
        async with asyncio.timeout(timeout):
            async for snapshot in stream:
                if done(snapshot):
                    return snapshot
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    current = await backend.get_execution(execution_id)
    assert done(current), f"{execution_id} ended {current.state.current}"
    return current


async def finished(backend: Backend, execution_id: str, timeout: float = WAIT) -> Execution:
    return await until(backend, execution_id, lambda e: is_terminal(e.state.current), timeout)


def state_is(state: str) -> Callable[[Execution], bool]:
    return lambda e: e.state.current == state


def task_state(task_id: str, state: str) -> Callable[[Execution], bool]:
    return lambda e: any(tr.task_id == task_id and tr.state.current == state
                         for tr in e.task_runs)


async def collect(stream: AsyncIterator[Any], into: list[Any]) -> None:
    async for item in stream:
        into.append(item)


async def first(stream: AsyncIterator[Any]) -> Any:
    return await anext(aiter(stream))


async def eventually(check: Callable[[], bool], timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


# -- behaviour checks shared with the HTTP tests ----------------------------------------------


async def check_flows(backend: Backend, h: Harness) -> None:
    created = await backend.apply_flow(flow(HELLO))
    assert (created.namespace, created.id, created.revision) == ("t.client", "hello", 1)
    assert ("team", "deck") in created.labels
    assert [i["id"] for i in created.inputs] == ["name", "times"]
    await backend.apply_flow(flow(SUB))
    await backend.apply_flow(flow(BOOM))
    assert [f.id for f in await backend.list_flows("t.client")] == ["hello"]
    assert {(f.namespace, f.id) for f in await backend.list_flows()} == {
        ("t.client", "hello"), ("t.client.sub", "leaf"), ("t.other", "boom")}
    got = await backend.get_flow("t.client", "hello")
    assert got.source == flow(HELLO)
    updated = await backend.apply_flow(flow(HELLO).replace("hello {{", "hi {{"))
    assert updated.revision == 2
    same = await backend.apply_flow(flow(HELLO).replace("hello {{", "hi {{"))
    assert same.revision == 2  # unchanged source: no new revision
    await backend.delete_flow("t.other", "boom")
    with pytest.raises(NotFoundError):
        await backend.get_flow("t.other", "boom")
    with pytest.raises(ValidationError) as bad:
        await backend.apply_flow(flow(HELLO).replace("core.log.Log", "core.log.Nope"))
    assert "Nope" in str(bad.value)


async def check_run_logs_and_follow(backend: Backend, h: Harness) -> None:
    await backend.apply_flow(flow(HELLO))
    execution = await backend.create_execution("t.client", "hello", {"name": "ada", "times": 3},
                                               labels=[("env", "test")])
    assert execution.state.current == "CREATED"
    assert execution.inputs == {"name": "ada", "times": 3}
    assert ("env", "test") in execution.labels and ("team", "deck") in execution.labels
    states = []
    async with asyncio.timeout(WAIT):
        async for snapshot in backend.follow_execution(execution.id):
            assert snapshot.id == execution.id
            states.append(snapshot.state.current)
    assert states[-1] == "SUCCESS"  # the iterator ended by itself at the terminal state
    assert all(not is_terminal(s) for s in states[:-1])
    final = await backend.get_execution(execution.id)
    assert final.state.current == "SUCCESS"
    assert [tr.task_id for tr in final.task_runs] == ["greet", "shell"]
    assert [h.state for h in final.state.histories] == ["CREATED", "RUNNING", "SUCCESS"]

    logs = await backend.logs(execution.id)
    messages = [e.message for e in logs]
    assert messages[:1] == ["hello ada"]
    assert {"one", "two", "three"} <= set(messages)
    assert [e.seq for e in logs] == list(range(1, len(logs) + 1))
    assert [e.seq for e in await backend.logs(execution.id, after_seq=2)] == \
        list(range(3, len(logs) + 1))
    warnings = await backend.logs(execution.id, min_level="WARN")
    assert [e.message for e in warnings] == ["two"] and warnings[0].level == "WARN"

    stream = backend.follow_logs(execution.id, after_seq=1)
    followed = []
    try:
        async with asyncio.timeout(WAIT):
            async for entry in stream:
                followed.append(entry)
                if entry.seq == logs[-1].seq:
                    break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    assert [(e.seq, e.message) for e in followed] == [(e.seq, e.message) for e in logs[1:]]
    assert followed[0].execution_id == execution.id and followed[0].task_id == "shell"
    assert logs[0].task_id == "greet" and logs[0].task_run_id is not None


async def check_search(backend: Backend, h: Harness) -> None:
    for source in (HELLO, SUB, BOOM):
        await backend.apply_flow(flow(source))
    before = datetime.now(UTC) - timedelta(seconds=1)
    runs = [await backend.create_execution("t.client", "hello"),
            await backend.create_execution("t.client", "hello", labels=[("env", "prod")]),
            await backend.create_execution("t.client.sub", "leaf"),
            await backend.create_execution("t.other", "boom")]
    for run in runs:
        await finished(backend, run.id)
    everything = await backend.search_executions(ExecutionFilter())
    assert everything.total == 4 and {e.id for e in everything.results} == {r.id for r in runs}
    starts = [e.state.start_date for e in everything.results]
    assert starts == sorted(starts, reverse=True)  # newest first by default

    async def ids(**kw: Any) -> set[str]:
        page = await backend.search_executions(ExecutionFilter(**kw))
        assert page.total == len(page.results)
        return {e.id for e in page.results}

    assert await ids(namespace="t.client") == {runs[0].id, runs[1].id, runs[2].id}
    assert await ids(namespace="t.client", flow_id="hello") == {runs[0].id, runs[1].id}
    assert await ids(states=["FAILED"]) == {runs[3].id}
    assert await ids(states=["SUCCESS", "FAILED"]) == {r.id for r in runs}
    assert await ids(labels={"env": "prod"}) == {runs[1].id}
    assert await ids(since=before) == {r.id for r in runs}
    assert await ids(since=datetime.now(UTC) + timedelta(hours=1)) == set()
    assert await ids(until=before) == set()
    assert await ids(q="boom") == {runs[3].id}
    first = await backend.search_executions(ExecutionFilter(size=3, page=1))
    second = await backend.search_executions(ExecutionFilter(size=3, page=2))
    assert (first.total, len(first.results), len(second.results)) == (4, 3, 1)
    assert {e.id for e in first.results + second.results} == {r.id for r in runs}
    oldest_first = await backend.search_executions(
        ExecutionFilter(sort=[("state.startDate", False)]))
    assert [e.id for e in oldest_first.results] == [e.id for e in everything.results][::-1]


async def check_kill(backend: Backend, h: Harness) -> None:
    await backend.apply_flow(flow(SLEEPY))
    execution = await backend.create_execution("t.client", "sleepy")
    await until(backend, execution.id, task_state("nap", "RUNNING"))
    started = time.monotonic()
    killed = await backend.kill(execution.id)
    assert killed.id == execution.id
    assert killed.state.current in ("KILLING", "KILLED")
    final = await finished(backend, execution.id)
    assert final.state.current == "KILLED"
    assert final.task_runs[0].state.current == "KILLED"
    assert time.monotonic() - started < 10  # the 30 s sleep was interrupted


async def check_restart_and_replay(backend: Backend, h: Harness) -> None:
    await backend.apply_flow(flow(FLAKY))
    marker = h.tmp_path / "marker"
    execution = await backend.create_execution("t.client", "flaky", {"marker": str(marker)})
    failed = await finished(backend, execution.id)
    assert failed.state.current == "FAILED"
    with pytest.raises(ConflictError):
        await backend.resume(execution.id)  # not PAUSED
    marker.write_text("now it exists")
    restarted = await backend.restart(execution.id)
    assert restarted.id == execution.id
    assert restarted.attempt_number == 2
    final = await finished(backend, execution.id)
    assert final.state.current == "SUCCESS"
    assert "RESTARTED" in [h.state for h in final.state.histories]
    assert [tr.task_id for tr in final.task_runs] == ["first", "check"]

    replay = await backend.replay(execution.id)
    assert replay.id != execution.id
    assert replay.original_id == execution.id
    replayed = await finished(backend, replay.id)
    assert replayed.state.current == "SUCCESS"
    assert replayed.inputs == {"marker": str(marker)}

    check = next(tr for tr in final.task_runs if tr.task_id == "check")
    partial = await backend.replay(execution.id, task_run_id=check.id)
    partial_final = await finished(backend, partial.id)
    assert partial_final.state.current == "SUCCESS"
    first = next(tr for tr in partial_final.task_runs if tr.task_id == "first")
    assert first.state.current == "SUCCESS"


async def check_pause_and_resume(backend: Backend, h: Harness) -> None:
    await backend.apply_flow(flow(GATE))
    await backend.apply_flow(flow(STEPPER))
    gated = await backend.create_execution("t.client", "gate")
    await until(backend, gated.id, state_is("PAUSED"))
    with pytest.raises(ValidationError) as missing:
        await backend.resume(gated.id, {})
    assert "reason" in str(missing.value)
    resumed = await backend.resume(gated.id, {"reason": "looks good"})
    assert resumed.id == gated.id
    final = await finished(backend, gated.id)
    assert final.state.current == "SUCCESS"
    hold = next(tr for tr in final.task_runs if tr.task_id == "hold")
    assert hold.outputs == {"onResume": {"reason": "looks good"}}
    assert "resumed: looks good" in [e.message for e in await backend.logs(gated.id)]

    stepping = await backend.create_execution("t.client", "stepper")
    await until(backend, stepping.id, state_is("RUNNING"))
    paused = await backend.pause(stepping.id)
    assert paused.id == stepping.id
    held = await until(backend, stepping.id,
                       lambda e: e.state.current == "PAUSED" and task_state("nap", "SUCCESS")(e))
    assert [tr.task_id for tr in held.task_runs] == ["nap"]
    await backend.resume(stepping.id)
    done = await finished(backend, stepping.id)
    assert done.state.current == "SUCCESS"
    assert [x.state for x in done.state.histories] == [
        "CREATED", "RUNNING", "PAUSED", "RUNNING", "SUCCESS"]


async def check_watch_executions(backend: Backend, h: Harness) -> None:
    await backend.apply_flow(flow(HELLO))
    seen: list[Execution] = []
    stream = backend.watch_executions()
    watcher = asyncio.create_task(collect(stream, seen))
    try:
        await h.watching("execution")
        execution = await backend.create_execution("t.client", "hello")
        await eventually(lambda: any(e.id == execution.id and e.state.current == "SUCCESS"
                                     for e in seen))
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await stream.aclose()  # type: ignore[attr-defined]
    mine = [e.state.current for e in seen if e.id == execution.id]
    assert mine[-1] == "SUCCESS"
    assert mine.count("SUCCESS") == 1


async def check_approvals(backend: Backend, h: Harness) -> None:
    await backend.apply_flow(flow(RELEASE))
    events: list[Approval] = []
    stream = backend.watch_approvals()
    watcher = asyncio.create_task(collect(stream, events))
    try:
        await h.watching("approval")
        runs = [await backend.create_execution("t.client", "release", {"version": v})
                for v in ("1", "2", "3", "4")]
        for run in runs:
            await until(backend, run.id, state_is("PAUSED"))
        pending = await backend.list_approvals()
        assert len(pending) == 4 and all(a.status == "pending" for a in pending)
        by_run = {a.execution_id: a for a in pending}
        first = by_run[runs[0].id]
        assert first.title == "Ship 1?" and first.rows == [{"service": "api"}]
        assert first.display_fields == ["service"] and first.allow_bulk_approval
        assert await backend.get_approval(first.id) == first

        approved = await backend.decide(first.id, approve=True, by="ada", comment="ship it")
        assert (approved.status, approved.decided_by, approved.comment) == (
            "approved", "ada", "ship it")
        assert approved.decided_at is not None
        with pytest.raises(ConflictError) as late:
            await backend.decide(first.id, approve=False, by="bob")
        assert late.value.details["decidedBy"] == "ada"
        assert late.value.details["approvalStatus"] == "approved"
        assert "ada" in str(late.value)

        bulk = await backend.decide_many([by_run[runs[1].id].id, by_run[runs[2].id].id],
                                         by="carol", comment="batch")
        assert [(a.status, a.decided_by) for a in bulk] == [("approved", "carol")] * 2
        rejected = await backend.decide(by_run[runs[3].id].id, approve=False, by="dan",
                                        comment="not this one")
        assert rejected.status == "rejected"

        finals = [await finished(backend, run.id) for run in runs]
        assert [f.state.current for f in finals] == ["SUCCESS"] * 3 + ["CANCELLED"]
        assert "shipped by ada" in [e.message for e in await backend.logs(runs[0].id)]
        assert await backend.list_approvals() == []
        assert len(await backend.list_approvals("approved")) == 3
        assert [a.decided_by for a in await backend.list_approvals("rejected")] == ["dan"]
        assert len(await backend.list_approvals(None)) == 4
        assert len(await backend.list_approvals("all")) == 4
        with pytest.raises(NotFoundError):
            await backend.get_approval("no-such-approval")
        with pytest.raises(NotFoundError):
            await backend.decide("no-such-approval", approve=True, by="ada")
        with pytest.raises(BadRequestError):
            await backend.list_approvals("maybe")

        await eventually(lambda: sum(a.status != "pending" for a in events) == 4)
        assert sorted(a.execution_id for a in events if a.status == "pending") == \
            sorted(r.id for r in runs)
        decided = {a.id: a for a in events if a.status != "pending"}
        assert decided[first.id].decided_by == "ada"
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await stream.aclose()  # type: ignore[attr-defined]


async def check_errors(backend: Backend, h: Harness) -> None:
    await backend.apply_flow(flow(HELLO))
    with pytest.raises(NotFoundError):
        await backend.get_execution("no-such-execution")
    with pytest.raises(NotFoundError):
        await backend.get_flow("t.client", "nope")
    with pytest.raises(NotFoundError):
        await backend.create_execution("t.client", "nope")
    with pytest.raises(NotFoundError):
        await backend.kill("no-such-execution")
    with pytest.raises(ValidationError) as bad_input:
        await backend.create_execution("t.client", "hello", {"times": "many"})
    assert "times" in str(bad_input.value)
    with pytest.raises(ValidationError):
        await backend.create_execution("t.client", "hello", labels=[("system.secret", "x")])
    with pytest.raises(NotFoundError):
        await anext(aiter(backend.follow_logs("no-such-execution")))
    with pytest.raises(NotFoundError):
        await anext(aiter(backend.follow_execution("no-such-execution")))
    done = await finished(backend, (await backend.create_execution("t.client", "hello")).id)
    with pytest.raises(ConflictError):
        await backend.pause(done.id)
    with pytest.raises(ConflictError):
        await backend.restart(done.id)  # SUCCESS is not restartable
    with pytest.raises(NotFoundError):
        await backend.delete_flow("t.client", "nope")


CHECKS = [check_flows, check_run_logs_and_follow, check_search, check_kill,
          check_restart_and_replay, check_pause_and_resume, check_watch_executions,
          check_approvals, check_errors]


# -- the embedded backend ---------------------------------------------------------------------


def settings(tmp_path: Path, **overrides: Any) -> EngineSettings:
    out = EngineSettings(data_dir=tmp_path / "data", scheduler=False, envs={})
    for key, value in overrides.items():
        setattr(out, key, value)
    return out


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[EmbeddedBackend]:
    backend = EmbeddedBackend(settings(tmp_path))
    await backend.connect()
    try:
        yield backend
    finally:
        await backend.close()


async def subscribers(backend: EmbeddedBackend, topic: str) -> int:
    async def count(engine: Engine) -> int:
        return len(engine._bus._by_topic.get(topic, ()))

    return await backend.engine_call(count)


def embedded_harness(backend: EmbeddedBackend, tmp_path: Path) -> Harness:
    async def watching(topic: str) -> None:
        async with asyncio.timeout(5):
            while await subscribers(backend, topic) == 0:
                await asyncio.sleep(0.01)

    return Harness(tmp_path, watching)


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__[6:] for c in CHECKS])
async def test_embedded_behaviour(embedded: EmbeddedBackend, tmp_path: Path,
                                  check: Callable[[Backend, Harness], Awaitable[None]]) -> None:
    await check(embedded, embedded_harness(embedded, tmp_path))


async def test_connect_reports_capabilities_and_runs_the_engine_on_its_own_thread(
        tmp_path: Path) -> None:
    backend = EmbeddedBackend(settings(tmp_path))
    assert isinstance(backend, Backend)
    assert backend.name == "embedded"
    caps = await backend.connect()
    try:
        assert isinstance(caps, Capabilities)
        assert (caps.kind, caps.approvals) == ("embedded", True)
        assert await backend.connect() is caps  # idempotent

        async def where(engine: Engine) -> tuple[str, asyncio.AbstractEventLoop]:
            return threading.current_thread().name, asyncio.get_running_loop()

        thread_name, loop = await backend.engine_call(where)
        assert thread_name == "flowdeck-engine"
        assert loop is not asyncio.get_running_loop()
        health = await backend.engine_call(lambda e: e.storage_health())
        assert health["status"] == "UP"
        thread = backend._thread
        assert thread is not None and thread.is_alive()
    finally:
        await backend.close()
    assert not thread.is_alive()
    with pytest.raises(BackendUnavailable):
        await backend.get_execution("anything")
    await backend.close()  # twice is fine


async def test_a_second_engine_on_the_same_directory_fails_cleanly(tmp_path: Path) -> None:
    from flowdeck.core.errors import EngineLockedError

    first = EmbeddedBackend(settings(tmp_path))
    await first.connect()
    try:
        second = EmbeddedBackend(settings(tmp_path))
        with pytest.raises(EngineLockedError):
            await second.connect()
        assert second._thread is None  # its thread was stopped again
    finally:
        await first.close()


async def test_stopping_a_stream_cancels_its_engine_side_pump(embedded: EmbeddedBackend) -> None:
    await embedded.apply_flow(flow(SLEEPY))
    execution = await embedded.create_execution("t.client", "sleepy")

    async def followers(engine: Engine) -> int:
        return len(engine._bus._by_execution.get(execution.id, ()))

    logs = embedded.follow_logs(execution.id)
    states = embedded.follow_execution(execution.id)
    await anext(aiter(states))
    reader = asyncio.create_task(first(logs))  # blocks: a sleeping task logs nothing
    await eventually(lambda: bool(embedded._pumps) and len(embedded._pumps) == 2)
    assert await embedded.engine_call(followers) >= 2
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    await logs.aclose()  # type: ignore[attr-defined]
    await states.aclose()  # type: ignore[attr-defined]
    assert not embedded._pumps
    assert await embedded.engine_call(followers) == 0
    await embedded.kill(execution.id)


async def test_close_ends_open_streams(tmp_path: Path) -> None:
    backend = EmbeddedBackend(settings(tmp_path))
    await backend.connect()
    await backend.apply_flow(flow(SLEEPY))
    execution = await backend.create_execution("t.client", "sleepy")
    stream = backend.follow_logs(execution.id)
    reader = asyncio.create_task(first(stream))
    await eventually(lambda: bool(backend._pumps))
    await backend.close()
    with pytest.raises(BackendUnavailable):
        await asyncio.wait_for(reader, 5)
    await stream.aclose()  # type: ignore[attr-defined]


async def test_close_cancels_calls_in_flight_and_reports_them_unavailable(
        tmp_path: Path) -> None:
    """A call still running on the engine when the backend closes (a list reload during a
    profile switch) is cancelled before the store closes and reaches its caller as
    BackendUnavailable, never as a storage driver's error."""
    backend = EmbeddedBackend(settings(tmp_path))
    await backend.connect()
    started = threading.Event()

    async def stuck(engine: Engine) -> None:
        started.set()
        await asyncio.Event().wait()  # only cancellation ends it

    call = asyncio.create_task(backend.engine_call(stuck))
    await eventually(started.is_set)
    await asyncio.wait_for(backend.close(), 10)
    with pytest.raises(BackendUnavailable, match="closed"):
        await asyncio.wait_for(call, 5)


async def test_errors_that_are_not_flowdeck_errors_are_translated_at_the_bridge(
        embedded: EmbeddedBackend) -> None:
    async def broken(engine: Engine) -> None:
        raise ValueError("no active connection")

    with pytest.raises(BackendUnavailable, match="ValueError: no active connection"):
        await embedded.engine_call(broken)
    with pytest.raises(NotFoundError):  # flowdeck's own errors pass through unchanged
        await embedded.get_execution("nope")


async def test_a_slow_consumer_holds_the_pump_back(tmp_path: Path) -> None:
    backend = EmbeddedBackend(settings(tmp_path), stream_credits=8)
    await backend.connect()
    try:
        await backend.apply_flow(flow("""
            id: lines
            namespace: t.client
            tasks:
              - id: shell
                type: io.kestra.plugin.scripts.shell.Commands
                commands: ["seq 1 2000"]
            """))
        execution = await backend.create_execution("t.client", "lines")
        await finished(backend, execution.id)
        stream = backend.follow_logs(execution.id)
        first = await anext(aiter(stream))
        assert first.seq == 1
        await asyncio.sleep(0.2)  # give the pump every chance to run ahead
        # Nothing more than the credits can be waiting on this side.
        assert stream.ag_frame is not None  # type: ignore[attr-defined]
        queue = stream.ag_frame.f_locals["queue"]  # type: ignore[attr-defined]
        assert queue.qsize() <= 8
        seqs = [first.seq]
        async for entry in stream:
            seqs.append(entry.seq)
            if entry.seq == 2000:
                break
        assert seqs == list(range(1, 2001))
        await stream.aclose()  # type: ignore[attr-defined]
    finally:
        await backend.close()


async def test_a_chatty_task_does_not_block_the_callers_loop(tmp_path: Path) -> None:
    backend = EmbeddedBackend(settings(tmp_path))
    await backend.connect()
    try:
        await backend.apply_flow(flow("""
            id: chatty
            namespace: t.client
            tasks:
              - id: shell
                type: io.kestra.plugin.scripts.shell.Commands
                commands: ["seq 1 100000"]
            """))
        delays: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            loop = asyncio.get_running_loop()
            while not stop.is_set():
                before = loop.time()
                await asyncio.sleep(0.01)
                delays.append(loop.time() - before - 0.01)

        ticking = asyncio.create_task(ticker())
        execution = await backend.create_execution("t.client", "chatty")
        final = await finished(backend, execution.id, timeout=45)
        stop.set()
        await ticking
        assert final.state.current == "SUCCESS"
        tail = await backend.logs(execution.id, after_seq=99_990)
        assert [e.message for e in tail] == [str(n) for n in range(99_991, 100_001)]
        assert len(delays) > 20
        p95 = statistics.quantiles(delays, n=20)[-1]
        print(f"ticks={len(delays)} p95={p95 * 1000:.1f}ms max={max(delays) * 1000:.1f}ms")
        assert p95 < 0.1, f"p95 ticker delay {p95 * 1000:.1f} ms over {len(delays)} ticks"
    finally:
        await backend.close()


async def test_engine_errors_pass_through_as_the_same_classes(
        embedded: EmbeddedBackend) -> None:
    async def boom(engine: Engine) -> None:
        raise ConflictError("from the engine", {"why": "test"})

    with pytest.raises(ConflictError) as raised:
        await embedded.engine_call(boom)
    assert raised.value.details == {"why": "test"}
    with pytest.raises(NotFoundError):
        await embedded.engine_call(lambda e: e.get_execution("missing"))


NAP = """
    id: nap
    namespace: t.client
    triggers:
      - id: often
        type: io.kestra.plugin.core.trigger.Schedule
        cron: "* * * * *"
    tasks:
      - id: nap
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT0.3S
    """


async def test_start_false_opens_without_recovery_or_scheduler_until_start(
        tmp_path: Path) -> None:
    # A previous process leaves an execution RUNNING (its engine closed mid-task).
    engine = await Engine.open(settings(tmp_path))
    try:
        await engine.apply_flow(flow(NAP))
        left = await engine.create_execution("t.client", "nap")
        async with asyncio.timeout(10):
            while (await engine.get_execution(left.id)).state.current != "RUNNING":
                await asyncio.sleep(0.01)
    finally:
        await engine.close()

    async def running(engine: Engine) -> tuple[list[str], bool]:
        return engine.running_ids(), engine.scheduler is not None

    backend = EmbeddedBackend(settings(tmp_path, scheduler=True), start=False)
    await backend.connect()
    try:
        assert not backend.started
        # Reading works and changes nothing: no runner, no scheduler, still RUNNING.
        assert [f.id for f in await backend.list_flows()] == ["nap"]
        page = await backend.search_executions(ExecutionFilter())
        assert [(e.id, e.state.current) for e in page.results] == [(left.id, "RUNNING")]
        assert await backend.engine_call(running) == ([], False)

        await backend.start()
        assert backend.started
        await backend.start()  # once is enough; a second call is a no-op
        _, scheduling = await backend.engine_call(running)
        assert scheduling
        async with asyncio.timeout(10):
            async for snapshot in backend.follow_execution(left.id):
                final = snapshot
        assert final.state.current == "SUCCESS"
    finally:
        await backend.close()
    assert not backend.started

    # The default (start=True) recovers and schedules at connect, as before.
    backend = EmbeddedBackend(settings(tmp_path, scheduler=True))
    await backend.connect()
    try:
        assert backend.started
        assert (await backend.engine_call(running))[1]
    finally:
        await backend.close()
