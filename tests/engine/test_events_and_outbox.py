"""The event log and the webhook outbox on a real engine, SQLite and a real loopback receiver.

Events derived from executions are written with the snapshot that holds the change (every
transition once, none after a restart); domain events ride on their operation's transaction;
each delivery is signed, retried after 1 s / 5 s / 15 s, dead-lettered, redeliverable, refused
for private targets unless allowed, and survives a SIGKILL with the same webhook-id.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from standardwebhooks.webhooks import Webhook

from flowdeck.engine.engine import Engine
from flowdeck.engine.events import (
    Event,
    ExecutionDelta,
    NewEvent,
    Target,
)
from flowdeck.engine.outbox import OutboxSettings
from helpers import apply, open_engine, run_flow
from webhook_receiver import webhook_receiver

SIMPLE = """
    id: simple
    namespace: t.events
    tasks:
      - id: first
        type: io.kestra.plugin.core.log.Log
        message: one
      - id: broken
        type: io.kestra.plugin.core.execution.Fail
    """
CHILD = Path(__file__).with_name("outbox_child.py")


class StateEvents:
    """A test source: one event per execution state entry and per task-run state entry."""

    def __init__(self, namespace: str = "t.events") -> None:
        self.namespace = namespace

    def wants(self, namespace: str, flow_id: str, labels: dict[str, str]) -> bool:
        return namespace == self.namespace

    def derive(self, delta: ExecutionDelta) -> list[NewEvent]:
        doc = delta.doc
        out = [NewEvent(f"execution.{entry['state'].lower()}", "test",
                        {"event": entry["state"], "executionId": doc["id"]},
                        subject=doc["id"], execution_id=doc["id"]) for entry in delta.states]
        for task_run, entries in delta.task_states:
            out.extend(NewEvent(f"task.{e['state'].lower()}", "test",
                                {"task": task_run["taskId"], "state": e["state"]},
                                subject=task_run["id"], execution_id=doc["id"])
                       for e in entries)
        return out


class StaticTargets:
    def __init__(self, *targets: Target, kinds: set[str] | None = None) -> None:
        self.list = list(targets)
        self.kinds = kinds

    def targets(self, conn: sqlite3.Connection, event: NewEvent) -> list[Target]:
        if self.kinds is not None and event.kind not in self.kinds:
            return []
        return list(self.list)


def kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events]


async def all_events(engine: Engine) -> list[Event]:
    return await engine.event_reader.after(0, limit=1000)


async def test_every_transition_becomes_one_event_in_order(engine: Engine) -> None:
    engine.events.sources.append(StateEvents())
    await apply(engine, SIMPLE)
    execution = await run_flow(engine, "t.events", "simple")
    events = await all_events(engine)
    exec_kinds = [k for k in kinds(events) if k.startswith("execution.")]
    assert exec_kinds == ["execution.created", "execution.running", "execution.failed"]
    task_kinds = [(e.payload["task"], e.payload["state"]) for e in events
                  if e.kind.startswith("task.")]
    assert task_kinds.count(("first", "SUCCESS")) == 1
    assert task_kinds.count(("broken", "FAILED")) == 1
    assert all(e.execution_id == execution.id for e in events)
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    # executions nobody wants yield nothing
    await apply(engine, SIMPLE.replace("t.events", "t.quiet"))
    await run_flow(engine, "t.quiet", "simple")
    assert len(await all_events(engine)) == len(events)


async def test_marks_survive_a_restart_no_event_twice(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path / "data")
    try:
        engine.events.sources.append(StateEvents())
        await apply(engine, SIMPLE)
        execution = await run_flow(engine, "t.events", "simple")
        before = await all_events(engine)
    finally:
        await engine.close()
    engine = await open_engine(tmp_path / "data")
    try:
        engine.events.sources.append(StateEvents())
        restarted = await engine.restart(execution.id)
        await engine.wait_until_terminal(restarted.id, timeout=30)
        after = await all_events(engine)
    finally:
        await engine.close()
    new = [e for e in after if e.seq > before[-1].seq]
    exec_new = [k for k in kinds(new) if k.startswith("execution.")]
    # only what happened after the restart: RESTARTED, RUNNING, FAILED once each
    assert exec_new == ["execution.restarted", "execution.running", "execution.failed"]
    assert {e.id for e in before} <= {e.id for e in after}


async def test_existing_executions_are_not_replayed_as_events(tmp_path: Path) -> None:
    """Executions that existed before the event log are marked as derived already."""
    engine = await open_engine(tmp_path / "data")
    try:
        await apply(engine, SIMPLE)
        execution = await run_flow(engine, "t.events", "simple")
    finally:
        await engine.close()
    with sqlite3.connect(tmp_path / "data" / "flowdeck.db") as db:
        db.execute("UPDATE executions SET event_marks = '*'")
    engine = await open_engine(tmp_path / "data")
    try:
        engine.events.sources.append(StateEvents())
        await engine.set_labels(execution.id, [("team", "a")])
        await engine.change_status(execution.id, "WARNING")
        assert kinds(await all_events(engine)) == ["execution.warning"]
    finally:
        await engine.close()


async def test_domain_events_ride_on_their_operation(engine: Engine) -> None:
    follower = engine.event_reader.follow(0, source="forge-test", heartbeat=5)

    async def op(conn: aiosqlite.Connection) -> list[int]:
        await conn.execute("CREATE TABLE IF NOT EXISTS thing (id TEXT)")
        await conn.execute("INSERT INTO thing VALUES ('a')")
        return await engine.events.append(conn, [
            NewEvent("release.created", "forge-test", {"event_type": "release.created"},
                     subject="a")])

    async def failing(conn: aiosqlite.Connection) -> None:
        await engine.events.append(conn, [NewEvent("release.created", "forge-test",
                                                   {"event_type": "never"})])
        raise RuntimeError("the operation fails: its event must not exist")

    seqs = await engine.store.run(op)
    with pytest.raises(RuntimeError):
        await engine.store.run(failing)
    first = await asyncio.wait_for(anext(aiter(follower)), 5)
    assert first is not None and first.seq == seqs[0] and first.subject == "a"
    stored = await engine.event_reader.after(0, source="forge-test")
    assert [e.payload["event_type"] for e in stored] == ["release.created"]
    await follower.aclose()  # type: ignore[attr-defined]


async def test_delivery_headers_and_both_signatures(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path / "data", extra={"webhooks": {
        "allow_private_targets": True}})
    try:
        async with webhook_receiver() as receiver:
            engine.events.sources.append(StateEvents())
            engine.events.resolvers.append(StaticTargets(
                Target("test", receiver.url, "my-secret"), kinds={"execution.failed"}))
            await apply(engine, SIMPLE)
            execution = await run_flow(engine, "t.events", "simple")
            [request] = await receiver.received(1)
            body = request.body
            # the spec's Node.js verifyWebhookSignature, in Python
            expected = "sha256=" + hmac.new(b"my-secret", body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(request.headers["x-webhook-signature"], expected)
            # Standard Webhooks, verified by its own package
            Webhook(base64.b64encode(b"my-secret").decode()).verify(body, request.headers)
            assert request.headers["content-type"] == "application/json"
            assert request.headers["user-agent"] == "Workflow-Automation-Platform/1.0"
            assert request.headers["x-webhook-event"] == "execution.failed"
            assert request.headers["x-webhook-execution-id"] == execution.id
            assert json.loads(body) == {"event": "FAILED", "executionId": execution.id}
            await wait_delivered(engine, 1)
            deliveries, total = await engine.outbox.deliveries()
            assert total == 1 and deliveries[0].status == "delivered"
            assert deliveries[0].id == request.headers["webhook-id"]
            assert "secret" not in deliveries[0].to_dict()
    finally:
        await engine.close()


async def wait_delivered(engine: Engine, count: int, status: str = "delivered") -> None:
    async with asyncio.timeout(30):
        while (await engine.outbox.deliveries(status=status))[1] < count:
            await asyncio.sleep(0.02)


async def emit(engine: Engine, kind: str = "thing.happened") -> None:
    async def op(conn: aiosqlite.Connection) -> None:
        await engine.events.append(conn, [NewEvent(kind, "test", {"event": kind})])

    await engine.store.run(op)


async def test_retries_after_one_and_five_seconds(tmp_path: Path) -> None:
    """A receiver failing twice, then answering: delivered on the third try, ≈1 s and ≈5 s
    after the previous ones (the spec's delays)."""
    engine = await open_engine(tmp_path / "data",
                               extra={"webhooks": {"allow_private_targets": True}})
    try:
        async with webhook_receiver([500, 503, 200]) as receiver:
            engine.events.resolvers.append(StaticTargets(Target("t", receiver.url, "s")))
            await emit(engine)
            requests = await receiver.received(3, timeout=15)
            gaps = [b.at - a.at for a, b in itertools.pairwise(requests)]
            assert 0.9 <= gaps[0] < 2.0 and 4.9 <= gaps[1] < 6.5, gaps
            assert len({r.headers["webhook-id"] for r in requests}) == 1
            await wait_delivered(engine, 1)
            [delivery] = (await engine.outbox.deliveries())[0]
            assert delivery.attempts == 3 and delivery.last_status == 200
    finally:
        await engine.close()


async def test_dead_letter_then_redeliver(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path / "data")
    engine.outbox.settings = OutboxSettings(allow_private_targets=True,
                                            retry_delays=(0.01, 0.01, 0.01))
    try:
        async with webhook_receiver([500, 500, 500, 500, 200]) as receiver:
            engine.events.resolvers.append(StaticTargets(Target("t", receiver.url)))
            await emit(engine)
            await receiver.received(4)
            await wait_delivered(engine, 1, status="dead")
            [dead] = (await engine.outbox.deliveries(status="dead"))[0]
            assert dead.attempts == 4 and dead.last_error == "HTTP 500"
            again = await engine.outbox.redeliver(dead.id)
            assert again.status in ("pending", "delivered")
            await receiver.received(5)
            await wait_delivered(engine, 1)
            assert "x-webhook-signature" not in receiver.requests[-1].headers  # no secret
    finally:
        await engine.close()


async def test_private_targets_are_refused_unless_allowed(engine: Engine) -> None:
    async with webhook_receiver() as receiver:
        engine.events.resolvers.append(StaticTargets(Target("t", receiver.url, "s")))
        await emit(engine)
        await wait_delivered(engine, 1, status="dead")
        [dead] = (await engine.outbox.deliveries(status="dead"))[0]
        assert dead.attempts == 1 and "allow_private_targets" in (dead.last_error or "")
        assert receiver.requests == []


async def test_sigkill_during_delivery_redelivers_with_the_same_id(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with webhook_receiver(hang=True) as receiver:
        child = subprocess.Popen([sys.executable, str(CHILD), str(data_dir), receiver.url],
                                 stdout=subprocess.PIPE, text=True)
        try:
            await receiver.received(1, timeout=30)  # in flight, never answered
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        first_id = receiver.requests[0].headers["webhook-id"]
        receiver.hang = False
        receiver.released.set()
        engine = await open_engine(data_dir, extra={"webhooks": {
            "allow_private_targets": True}})
        try:
            requests = await receiver.received(2, timeout=15)
            assert requests[1].headers["webhook-id"] == first_id
            assert requests[1].body == requests[0].body
            await wait_delivered(engine, 1)
        finally:
            await engine.close()


async def test_payloads_round_trip_as_json(engine: Engine) -> None:
    """Payloads are stored as UTF-8 JSON text; what goes in comes back equal."""
    payload: dict[str, Any] = {"text": "naïve ✓", "n": 1, "nested": {"a": [1, 2]}}

    async def op(conn: aiosqlite.Connection) -> None:
        await engine.events.append(conn, [NewEvent("x", "test", payload)])

    await engine.store.run(op)
    [event] = await engine.event_reader.after(0)
    assert event.payload == payload
