"""Webhooks of the public API through the engine's outbox, to a real loopback receiver: the
spec's events and payloads for the complete example, both signatures verified (the spec's
Node.js `verifyWebhookSignature` in Python, and the `standardwebhooks` package), the key's
event filter, and no delivery for a key without a webhook."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook

from flowdeck.core.public import iso_ms
from flowdeck.engine.engine import Engine
from public.support import (
    AGENT,
    QUICK,
    customers,
    new_key,
    open_public_engine,
    until_waiting,
    verify_webhook_signature,
)
from webhook_receiver import Received, webhook_receiver

PRIVATE_OK = {"webhooks": {"allow_private_targets": True}}
SECRET = "your-webhook-secret-key"
FAILING = """
id: broken
namespace: agents
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: the gateway is down
"""


async def delivered(engine: Engine, count: int) -> None:
    async with asyncio.timeout(20):
        while (await engine.outbox.deliveries(status="delivered"))[1] < count:
            await asyncio.sleep(0.02)


def by_event(requests: list[Received]) -> dict[str, dict[str, Any]]:
    return {json.loads(r.body)["event"]: json.loads(r.body) for r in requests}


async def test_the_complete_example_notifies_the_key_webhook(tmp_path: Path) -> None:
    engine = await open_public_engine(tmp_path / "data", extra=PRIVATE_OK)
    try:
        async with webhook_receiver() as receiver:
            key, _ = await new_key(engine, webhook_url=receiver.url, webhook_secret=SECRET)
            started = await engine.public.execute(key, AGENT, {"csvData": customers(3)})
            await until_waiting(engine, started.execution_id)
            await receiver.received(2)
            await engine.public.approve(key, started.execution_id, by="website")
            final = await engine.wait_until_terminal(started.execution_id, timeout=15)
            requests = await receiver.received(3)
            await delivered(engine, 3)
        assert len(requests) == 3
        events = by_event(requests)
        assert set(events) == {"execution.started", "execution.pending_approval",
                               "execution.completed"}
        started_at = iso_ms(final.state.start_date)
        completed_at = iso_ms(final.state.histories[-1].date)
        for name, body in events.items():
            assert list(body) == ["event", "executionId", "workflowId", "timestamp", "data"]
            assert body["event"] == name and body["executionId"] == started.execution_id
            assert body["workflowId"] == AGENT
        assert events["execution.started"]["data"] == {"status": "running",
                                                       "startedAt": started_at}
        assert events["execution.pending_approval"]["data"] == {"status": "pending_approval",
                                                                "startedAt": started_at}
        completed = events["execution.completed"]
        assert completed["timestamp"] == completed_at
        results = (await engine.public.results(key, started.execution_id)).to_dict()
        assert completed["data"] == {"status": "completed", "startedAt": started_at,
                                     "completedAt": completed_at, "output": results["output"]}
        assert completed["data"]["output"]["successCount"] == 3
        for request in requests:
            event = json.loads(request.body)["event"]
            headers = request.headers
            assert headers["content-type"] == "application/json"
            assert headers["user-agent"] == "Workflow-Automation-Platform/1.0"
            assert headers["x-webhook-event"] == event
            assert headers["x-webhook-execution-id"] == started.execution_id
            assert verify_webhook_signature(request.body, headers["x-webhook-signature"],
                                            SECRET)
            assert not verify_webhook_signature(request.body + b" ",
                                                headers["x-webhook-signature"], SECRET)
            Webhook(base64.b64encode(SECRET.encode()).decode()).verify(request.body, headers)
        deliveries, _ = await engine.outbox.deliveries()
        assert {d.target for d in deliveries} == {f"api-key:{key.id}"}
    finally:
        await engine.close()


async def test_only_the_chosen_events_and_failures_say_why(tmp_path: Path) -> None:
    engine = await open_public_engine(tmp_path / "data", extra=PRIVATE_OK, install=False)
    try:
        await engine.apply_flow(FAILING)
        await engine.apply_flow(QUICK)
        async with webhook_receiver() as receiver:
            key, _ = await new_key(engine, webhook_url=receiver.url,
                                   webhook_events=["execution.failed",
                                                   "execution.completed"])
            silent, _ = await new_key(engine, "no-webhook")
            failed = await engine.public.execute(key, "broken")
            await engine.wait_until_terminal(failed.execution_id, timeout=15)
            quiet = await engine.public.execute(silent, "quick")
            await engine.wait_until_terminal(quiet.execution_id, timeout=15)
            done = await engine.public.execute(key, "quick")
            await engine.wait_until_terminal(done.execution_id, timeout=15)
            requests = await receiver.received(2)
            await delivered(engine, 2)
        events = by_event(requests)
        assert set(events) == {"execution.failed", "execution.completed"}
        failure = events["execution.failed"]
        assert failure["executionId"] == failed.execution_id
        assert failure["data"]["status"] == "failed"
        assert failure["data"]["error"] == "task 'boom' failed"
        assert set(failure["data"]) == {"status", "startedAt", "completedAt", "error"}
        assert events["execution.completed"]["data"]["output"] == {"answer": 42}
        assert "x-webhook-signature" not in requests[0].headers  # this key has no secret
        # the key without a webhook: its events are kept, nothing is sent
        kept = [e for e in await engine.event_reader.after(0, source="public", limit=1000)
                if e.execution_id == quiet.execution_id]
        assert [e.kind for e in kept] == ["execution.started", "execution.completed"]
        assert (await engine.outbox.deliveries())[1] == 2
        status = await engine.public.status(key, failed.execution_id)
        assert status.status == "failed"
        assert status.error == "task 'boom' failed: the gateway is down"
    finally:
        await engine.close()


async def test_a_restart_starts_again_and_executions_without_a_key_say_nothing(
        tmp_path: Path) -> None:
    engine = await open_public_engine(tmp_path / "data", extra=PRIVATE_OK, install=False)
    try:
        await engine.apply_flow(FAILING)
        key, _ = await new_key(engine)
        failed = await engine.public.execute(key, "broken")
        await engine.wait_until_terminal(failed.execution_id, timeout=15)
        restarted = await engine.restart(failed.execution_id)
        await engine.wait_until_terminal(restarted.id, timeout=15)
        direct = await engine.create_execution("agents", "broken")
        await engine.wait_until_terminal(direct.id, timeout=15)
        kinds = [e.kind for e in await engine.event_reader.after(0, source="public")]
        assert kinds == ["execution.started", "execution.failed",
                         "execution.started", "execution.failed"]
    finally:
        await engine.close()
