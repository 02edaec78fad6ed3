"""The public API's webhooks: events of executions started with an API key, sent to that key's
webhook by the engine's outbox (`engine/events.py`, `engine/outbox.py`: signed, retried after
1 s, 5 s and 15 s, dead-lettered, private targets refused unless allowed).

`AgentEvents` turns the state changes of every key-started execution into the API's events:

- `execution.started`: the execution starts running (again after a restart; not when it
  goes on after an approval);
- `execution.pending_approval`: it waits for a person;
- `execution.completed`: it ended SUCCESS or WARNING (`data.output`: its typed outputs);
- `execution.failed`: it ended FAILED (`data.error`: which task failed).

Cancelled and killed executions (a rejection, a kill) have no event in the API. Every payload
is `{event, executionId, workflowId, timestamp, data: {status, startedAt, ...}}`, the body the
API documents. The events are kept whether or not the key has a webhook: `KeyWebhooks` sends
them only to a key with a URL, filtered by the events it chose, signed with its secret.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from flowdeck.core.public import API_KEY_LABEL, iso_ms, started_by
from flowdeck.core.timefmt import parse_instant
from flowdeck.engine.events import ExecutionDelta, NewEvent, Target
from flowdeck.engine.flows import FlowDefinition
from flowdeck.engine.public.outputs import typed_outputs

#: `source` of the public API's events in the event log.
SOURCE = "public"
#: States after which a RUNNING entry is a fresh start rather than going on.
_STARTS = frozenset({"CREATED", "RESTARTED"})
_GOES_ON = frozenset({"RUNNING", "PAUSED", "RETRYING", "KILLING"})

FlowOf = Callable[[str, str, str, int], FlowDefinition | None]


def _instant(text: str) -> str | None:
    return iso_ms(parse_instant(text))


def _starts_run(histories: list[dict[str, Any]], index: int) -> bool:
    for entry in reversed(histories[:index]):
        if entry["state"] in _STARTS:
            return True
        if entry["state"] in _GOES_ON:
            return False
    return True


def failure_of(doc: dict[str, Any]) -> str:
    """Which task failed, from the execution document (the innermost failed task run)."""
    runs = doc.get("taskRunList") or []
    failed = [tr for tr in runs if tr.get("state", {}).get("current") == "FAILED"]
    parents = {tr.get("parentTaskRunId") for tr in failed}
    for task_run in failed:
        if task_run["id"] not in parents:
            return f"task '{task_run['taskId']}' failed"
    return "execution failed"


class AgentEvents:
    """ExecutionEventSource: runs on the store's writer thread, inside the transaction."""

    def __init__(self, flow_of: FlowOf) -> None:
        #: The flow (revision) of an execution, for typing outputs; a plain in-memory lookup.
        self.flow_of = flow_of

    def wants(self, namespace: str, flow_id: str, labels: dict[str, str]) -> bool:
        return API_KEY_LABEL in labels

    def derive(self, delta: ExecutionDelta) -> list[NewEvent]:
        doc = delta.doc
        labels = {label["key"]: label["value"] for label in doc.get("labels") or []}
        if started_by(doc.get("variables"), labels) is None:
            return []  # a flow's own label naming a key proves nothing
        histories: list[dict[str, Any]] = doc["state"]["histories"]
        first = len(histories) - len(delta.states)
        started_at = _instant(histories[0]["date"])
        events: list[NewEvent] = []
        for offset, entry in enumerate(delta.states):
            state, at = entry["state"], _instant(entry["date"])
            data: dict[str, Any]
            if state == "RUNNING" and _starts_run(histories, first + offset):
                kind, data = "execution.started", {"status": "running", "startedAt": started_at}
            elif state == "PAUSED":
                kind, data = "execution.pending_approval", {"status": "pending_approval",
                                                            "startedAt": started_at}
            elif state in ("SUCCESS", "WARNING"):
                flow = self.flow_of(doc["id"], doc["namespace"], doc["flowId"],
                                    int(doc["flowRevision"]))
                kind, data = "execution.completed", {
                    "status": "completed", "startedAt": started_at, "completedAt": at,
                    "output": typed_outputs(flow, doc.get("outputs"))}
            elif state == "FAILED":
                kind, data = "execution.failed", {
                    "status": "failed", "startedAt": started_at, "completedAt": at,
                    "error": failure_of(doc)}
            else:
                continue
            payload = {"event": kind, "executionId": doc["id"], "workflowId": doc["flowId"],
                       "timestamp": at, "data": data}
            events.append(NewEvent(kind, SOURCE, payload, subject=doc["id"],
                                   execution_id=doc["id"]))
        return events


class KeyWebhooks:
    """TargetResolver: the webhook of the key that started the execution, if it wants the
    event. Reads the key as it is in this transaction (a changed webhook applies at once)."""

    def targets(self, conn: sqlite3.Connection, event: NewEvent) -> list[Target]:
        if event.source != SOURCE or event.execution_id is None:
            return []
        row = conn.execute("SELECT labels FROM executions WHERE id = ?",
                           (event.execution_id,)).fetchone()
        if row is None:
            return []
        key_id = json.loads(row[0]).get(API_KEY_LABEL)
        if not key_id:
            return []
        key = conn.execute(
            "SELECT webhook_url, webhook_events, webhook_secret FROM api_tokens "
            "WHERE id = ? AND kind = 'public'", (key_id,)).fetchone()
        if key is None or not key[0]:
            return []
        events = json.loads(key[1]) if key[1] else []
        if events and event.kind not in events:
            return []
        return [Target(f"api-key:{key_id}", key[0], key[2])]
