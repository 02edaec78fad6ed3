"""`[[flowctl.webhooks]]`: the spec's events and payloads, signed, through the shared outbox,
to a real loopback receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

from flowctl.conftest import flowctl_extra
from flowctl.flowctl_helpers import generic, run, workflow
from helpers import open_engine
from webhook_receiver import webhook_receiver


async def test_events_reach_each_target_that_asked_for_them(tmp_path: Path,
                                                            files: Path) -> None:
    async with webhook_receiver() as everything, webhook_receiver() as outcomes:
        extra = flowctl_extra(files, webhooks=[
            {"url": everything.url, "secret": "webhook_secret"},
            {"url": outcomes.url, "events": ["workflow.completed", "workflow.failed"]}])
        engine = await open_engine(tmp_path / "data", extra={
            "flowctl": extra, "webhooks": {"allow_private_targets": True}})
        try:
            done = await run(engine, workflow(
                generic("flaky", "exit 1", max_retries=1),
                name="Nightly", retry_policy={"initial_delay": "10ms"}))
            assert done.status == "failed"
            requests = await everything.received(6)
            [outcome] = await outcomes.received(1)
            events = await engine.event_reader.after(0, source="flowctl")
        finally:
            await engine.close()
    expected = ["workflow.created", "workflow.started", "task.started", "task.retrying",
                "task.failed", "workflow.failed"]
    assert [e.kind for e in events] == expected  # the log's order
    bodies = [json.loads(r.body) for r in requests]  # deliveries run concurrently
    assert sorted(b["event"] for b in bodies) == sorted(expected)
    assert {r.headers["x-webhook-event"] for r in requests} == set(expected)
    for request in requests:  # the spec's receivers verify this header
        signature = "sha256=" + hmac.new(b"webhook_secret", request.body,
                                        hashlib.sha256).hexdigest()
        assert request.headers["x-webhook-signature"] == signature
    first = next(b for b in bodies if b["event"] == "workflow.created")
    assert first["data"] == {"workflow_id": done.id, "workflow_name": "Nightly",
                             "status": "pending"}
    assert first["timestamp"] == done.created_at
    failed = next(b for b in bodies if b["event"] == "task.failed")
    assert failed["data"] == {
        "workflow_id": done.id, "workflow_name": "Nightly", "task_id": done.tasks[0].id,
        "task_name": "flaky", "task_type": "generic", "status": "failed", "retry_count": 1,
        "error": "command failed with exit code 1"}
    assert json.loads(outcome.body) == {
        "event": "workflow.failed", "timestamp": done.completed_at,
        "data": {"workflow_id": done.id, "workflow_name": "Nightly", "status": "failed"}}
    assert "x-webhook-signature" not in outcome.headers  # no secret configured
