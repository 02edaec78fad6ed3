"""The spec's webhook events for workflows, through the engine's event log and outbox.

`workflow.created` is written by `submit` in the transaction that records the workflow; the
others are derived from the execution's committed state changes (`engine/events.py`):

- execution RUNNING (after CREATED, QUEUED or RESTARTED) → `workflow.started`; SUCCESS or
  WARNING → `workflow.completed`; FAILED → `workflow.failed`; KILLED or CANCELLED →
  `workflow.cancelled`;
- a task's first RUNNING → `task.started`; RETRYING → `task.retrying`; SUCCESS or WARNING →
  `task.completed`; FAILED → `task.failed`.

Payloads are the spec's: `{"event", "timestamp", "data": {"workflow_id", "workflow_name",
"status"}}`; task events add `task_id`, `task_name`, `task_type`, `retry_count` and, for
failures and retries, `error`. Targets are `[[flowctl.webhooks]]` entries whose `events`
include the event.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from flowdeck.core.flowctl import (
    FLOW_PREFIX,
    LABEL_ID,
    LABEL_NAME,
    SPEC_TYPES,
    is_workflow_flow,
)
from flowdeck.engine.events import ExecutionDelta, NewEvent, Target
from flowdeck.engine.flowctl.settings import FlowctlSettings

SOURCE = "flowctl"
WORKFLOW_EVENTS = {"SUCCESS": "workflow.completed", "WARNING": "workflow.completed",
                   "FAILED": "workflow.failed", "KILLED": "workflow.cancelled",
                   "CANCELLED": "workflow.cancelled"}
WORKFLOW_STATUS = {"workflow.started": "running", "workflow.completed": "completed",
                   "workflow.failed": "failed", "workflow.cancelled": "cancelled"}
TASK_EVENTS = {"RETRYING": "task.retrying", "SUCCESS": "task.completed",
               "WARNING": "task.completed", "FAILED": "task.failed"}
TASK_STATUS = {"task.started": "running", "task.retrying": "retrying",
               "task.completed": "completed", "task.failed": "failed"}
#: (FlowCtl task id, name, spec type) by engine task id, for one workflow's flow.
TaskInfo = dict[str, tuple[str, str, str]]


def _chronological(event: NewEvent) -> tuple[str, int]:
    """By time; at the same instant a workflow starts before its tasks and ends after."""
    rank = 1 if event.kind.startswith("task.") else (0 if event.kind in (
        "workflow.created", "workflow.started") else 2)
    return str(event.payload["timestamp"]), rank


def workflow_event(kind: str, timestamp: str, workflow_id: str, name: str, status: str,
                   execution_id: str) -> NewEvent:
    payload = {"event": kind, "timestamp": timestamp,
               "data": {"workflow_id": workflow_id, "workflow_name": name, "status": status}}
    return NewEvent(kind, SOURCE, payload, subject=workflow_id, execution_id=execution_id)


class FlowctlEvents:
    """An `ExecutionEventSource` for workflow executions (pure, quick: writer thread)."""

    def __init__(self, task_info: Callable[[str], TaskInfo]) -> None:
        self._task_info = task_info

    def wants(self, namespace: str, flow_id: str, labels: dict[str, str]) -> bool:
        return is_workflow_flow(namespace, flow_id)

    def derive(self, delta: ExecutionDelta) -> list[NewEvent]:
        doc = delta.doc
        labels = {str(x.get("key")): str(x.get("value")) for x in doc.get("labels") or []}
        flow_id = str(doc.get("flowId"))
        workflow_id = labels.get(LABEL_ID) or flow_id.removeprefix(FLOW_PREFIX)
        name = labels.get(LABEL_NAME) or workflow_id
        execution_id = str(doc.get("id"))
        out: list[NewEvent] = []
        histories = doc.get("state", {}).get("histories") or []
        first_new = len(histories) - len(delta.states)
        for i, entry in enumerate(delta.states):
            state = entry["state"]
            before = histories[first_new + i - 1]["state"] if first_new + i > 0 else None
            if state == "RUNNING" and before in (None, "CREATED", "QUEUED", "RESTARTED"):
                kind: str | None = "workflow.started"
            else:
                kind = WORKFLOW_EVENTS.get(state)
            if kind is not None:
                out.append(workflow_event(kind, entry["date"], workflow_id, name,
                                          WORKFLOW_STATUS[kind], execution_id))
        tasks: TaskInfo | None = None
        for task_run, entries in delta.task_states:
            if task_run.get("parentTaskRunId") is None:
                continue  # the Workflow task itself
            if tasks is None:
                tasks = self._task_info(flow_id)
            out.extend(self._task_events(task_run, entries, tasks, workflow_id, name,
                                         execution_id))
        # In the order things happened (a commit may hold a task's end and the workflow's).
        out.sort(key=_chronological)
        return out

    @staticmethod
    def _task_events(task_run: Mapping[str, Any], entries: list[dict[str, Any]],
                     tasks: TaskInfo, workflow_id: str, name: str,
                     execution_id: str) -> list[NewEvent]:
        engine_id = str(task_run.get("taskId"))
        uid, task_name, task_type = tasks.get(engine_id, (engine_id, engine_id, ""))
        histories = task_run.get("state", {}).get("histories") or []
        first_new = len(histories) - len(entries)
        outputs = task_run.get("outputs") or {}
        error = outputs.get("error") if isinstance(outputs, Mapping) else None
        out = []
        for i, entry in enumerate(entries):
            index = first_new + i
            earlier = [h["state"] for h in histories[:index]]
            state = entry["state"]
            if state == "RUNNING":
                kind = "task.started" if "RUNNING" not in earlier else None
            else:
                kind = TASK_EVENTS.get(state)
            if kind is None:
                continue
            retries = earlier.count("RETRYING") + (1 if state == "RETRYING" else 0)
            data: dict[str, Any] = {
                "workflow_id": workflow_id, "workflow_name": name, "task_id": uid,
                "task_name": task_name, "task_type": task_type, "status": TASK_STATUS[kind],
                "retry_count": retries}
            if kind in ("task.failed", "task.retrying"):
                data["error"] = error
            out.append(NewEvent(kind, SOURCE, {"event": kind, "timestamp": entry["date"],
                                               "data": data},
                                subject=uid, execution_id=execution_id))
        return out


def task_info_of(raw_tasks: Any) -> TaskInfo:
    """Engine task id → (FlowCtl task id, name, spec type) from the Workflow task's children."""
    info: TaskInfo = {}
    for raw in raw_tasks if isinstance(raw_tasks, list) else []:
        if isinstance(raw, Mapping):
            engine_id = str(raw.get("id"))
            info[engine_id] = (str(raw.get("uid") or engine_id),
                               str(raw.get("name") or engine_id),
                               SPEC_TYPES.get(str(raw.get("type")), str(raw.get("type"))))
    return info


class FlowctlTargets:
    """A `TargetResolver`: the configured webhooks that asked for the event."""

    def __init__(self, settings: Callable[[], FlowctlSettings]) -> None:
        self._settings = settings

    def targets(self, conn: sqlite3.Connection, event: NewEvent) -> list[Target]:
        if event.source != SOURCE:
            return []
        return [Target(f"flowctl.webhooks[{i}]", hook.url, hook.secret)
                for i, hook in enumerate(self._settings().webhooks) if event.kind in hook.events]
