"""FlowCtl workflows as the spec shows them, computed from a flow and its one execution.

A submitted workflow is a flow in namespace `flowctl` (id `wf-<workflow id>`) whose only
top-level task is a `flowdeck.flowctl.Workflow` holding the workflow's tasks, and one
execution of it. Everything the spec's views need is in those two documents (the flow's
JSON and the execution's Kestra JSON), so the engine, the server and the client layer all
build the same views with the functions below, whether the engine is local or remote.

Vocabularies are the spec's, exactly: a workflow is pending|running|completed|failed|cancelled;
a task is pending|running|completed|failed|retrying|cancelled.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flowdeck.core.models import Execution, StateInfo, TaskRun
from flowdeck.core.states import TERMINAL_STATES
from flowdeck.core.timefmt import format_instant

NAMESPACE = "flowctl"
#: A workflow's flow id is this prefix followed by the workflow id.
FLOW_PREFIX = "wf-"
#: Labels every workflow's flow (and so its execution) carries.
LABEL_ID = "flowctl.workflow_id"
LABEL_NAME = "flowctl.workflow_name"
#: The execution label naming who submitted the workflow.
LABEL_BY = "flowctl.submitted_by"
#: Engine task types: the workflow wrapper and one per spec task type.
WORKFLOW_TYPE = "flowdeck.flowctl.Workflow"
ENGINE_TYPES: dict[str, str] = {
    "generic": "flowdeck.flowctl.Generic",
    "ci": "flowdeck.flowctl.Ci",
    "etl": "flowdeck.flowctl.Etl",
    "ml_training": "flowdeck.flowctl.MlTraining",
}
SPEC_TYPES: dict[str, str] = {engine: spec for spec, engine in ENGINE_TYPES.items()}
TASK_TYPES: tuple[str, ...] = tuple(ENGINE_TYPES)

WORKFLOW_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
#: A workflow in one of these has finished: nothing about it changes any more.
FINISHED_STATUSES = frozenset({"completed", "failed", "cancelled"})
TASK_STATUSES = ("pending", "running", "completed", "failed", "retrying", "cancelled")
WEBHOOK_EVENTS = (
    "workflow.created", "workflow.started", "workflow.completed", "workflow.failed",
    "workflow.cancelled", "task.started", "task.completed", "task.failed", "task.retrying",
)

#: Kestra execution states by workflow status (unknown states count as running).
_WORKFLOW_STATES: dict[str, tuple[str, ...]] = {
    "pending": ("CREATED", "QUEUED"),
    "running": ("RUNNING", "RETRYING", "RESTARTED", "PAUSED", "KILLING", "SUBMITTED",
                "RESUBMITTED", "BREAKPOINT"),
    "completed": ("SUCCESS", "WARNING", "SKIPPED"),
    "failed": ("FAILED",),
    "cancelled": ("KILLED", "CANCELLED", "RETRIED"),
}
_STATUS_OF_STATE = {state: status for status, states in _WORKFLOW_STATES.items()
                    for state in states}


def flow_id_for(workflow_id: str) -> str:
    return FLOW_PREFIX + workflow_id


def is_workflow_flow(namespace: str, flow_id: str) -> bool:
    return namespace == NAMESPACE and flow_id.startswith(FLOW_PREFIX)


def workflow_status(state: str) -> str:
    """The workflow status of an execution state."""
    return _STATUS_OF_STATE.get(state, "running")


def execution_states(status: str) -> tuple[str, ...]:
    """The execution states a workflow status stands for (a status filter)."""
    return _WORKFLOW_STATES[status]


def task_status(task_run: TaskRun | None, workflow_finished: bool) -> str:
    """The spec status of a task from its task run (None: it has not started)."""
    if task_run is None:
        # A task that never started in a finished workflow never will: cancelled.
        return "cancelled" if workflow_finished else "pending"
    state = task_run.state.current
    if state in ("SUCCESS", "WARNING", "SKIPPED"):
        return "completed"
    if state == "FAILED":
        return "failed"
    if state == "RETRYING":
        return "retrying"
    if state in ("KILLED", "CANCELLED", "RETRIED"):
        return "cancelled"
    if state in ("CREATED", "QUEUED"):
        return "cancelled" if workflow_finished else "pending"
    return "cancelled" if workflow_finished else "running"


@dataclass(frozen=True, slots=True)
class TaskView:
    """One task in the spec's shape; every timestamp is None until it applies."""

    id: str
    workflow_id: str
    name: str
    type: str
    status: str
    payload: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    retry_count: int
    max_retries: int
    priority: int
    dependencies: list[str]
    created_at: str
    updated_at: str
    started_at: str | None
    completed_at: str | None
    #: The engine's task id and task run id (the deck and logs use them); not in the spec.
    engine_task_id: str = ""
    task_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """`GET /api/v1/tasks/{id}` and each task of `GET /api/v1/workflows/{id}`."""
        return {
            "id": self.id, "workflow_id": self.workflow_id, "name": self.name,
            "type": self.type, "status": self.status, "payload": self.payload,
            "result": self.result, "error": self.error, "retry_count": self.retry_count,
            "max_retries": self.max_retries, "priority": self.priority,
            "dependencies": list(self.dependencies), "created_at": self.created_at,
            "updated_at": self.updated_at, "started_at": self.started_at,
            "completed_at": self.completed_at,
        }

    def summary(self) -> dict[str, Any]:
        """An item of `GET /api/v1/workflows/{id}/tasks`."""
        return {
            "id": self.id, "name": self.name, "type": self.type, "status": self.status,
            "priority": self.priority, "dependencies": list(self.dependencies),
            "created_at": self.created_at, "started_at": self.started_at,
            "completed_at": self.completed_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskView:
        """A task as `GET /api/v1/tasks/{id}` answers it (a client reading a server)."""
        payload, result = data.get("payload"), data.get("result")
        return cls(
            id=_str(data.get("id")), workflow_id=_str(data.get("workflow_id")),
            name=_str(data.get("name")), type=_str(data.get("type")),
            status=_str(data.get("status")),
            payload=dict(payload) if isinstance(payload, Mapping) else {},
            result=dict(result) if isinstance(result, Mapping) else None,
            error=_opt(data.get("error")), retry_count=_int(data.get("retry_count"), 0),
            max_retries=_int(data.get("max_retries"), 0),
            priority=_int(data.get("priority"), 1),
            dependencies=[str(d) for d in data.get("dependencies") or []
                          if isinstance(d, str | int)],
            created_at=_str(data.get("created_at")), updated_at=_str(data.get("updated_at")),
            started_at=_opt(data.get("started_at")),
            completed_at=_opt(data.get("completed_at")))


@dataclass(frozen=True, slots=True)
class WorkflowView:
    id: str
    name: str
    description: str
    status: str
    tasks: list[TaskView]
    config: dict[str, Any]
    created_at: str
    updated_at: str
    started_at: str | None
    completed_at: str | None
    #: The execution that runs the workflow (the deck opens it); not in the spec.
    execution_id: str = ""
    submitted_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """`POST /api/v1/workflows` (201) and `GET /api/v1/workflows/{id}`."""
        return {
            "id": self.id, "name": self.name, "description": self.description,
            "status": self.status, "tasks": [t.to_dict() for t in self.tasks],
            "config": self.config, "created_at": self.created_at,
            "updated_at": self.updated_at, "started_at": self.started_at,
            "completed_at": self.completed_at,
        }

    def list_item(self) -> dict[str, Any]:
        """An item of `GET /api/v1/workflows`."""
        return {
            "id": self.id, "name": self.name, "description": self.description,
            "status": self.status, "tasks": [t.to_dict() for t in self.tasks],
            "created_at": self.created_at, "updated_at": self.updated_at,
        }

    def task(self, task_id: str) -> TaskView | None:
        return next((t for t in self.tasks if t.id == task_id), None)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkflowView:
        """A workflow as the API answers it (a list item has no config or start/end)."""
        tasks, config = data.get("tasks"), data.get("config")
        return cls(
            id=_str(data.get("id")), name=_str(data.get("name")),
            description=_str(data.get("description")), status=_str(data.get("status")),
            tasks=[TaskView.from_dict(t) for t in tasks or [] if isinstance(t, Mapping)]
            if isinstance(tasks, list) else [],
            config=dict(config) if isinstance(config, Mapping) else {},
            created_at=_str(data.get("created_at")), updated_at=_str(data.get("updated_at")),
            started_at=_opt(data.get("started_at")),
            completed_at=_opt(data.get("completed_at")))


@dataclass(frozen=True, slots=True)
class WorkflowPage:
    workflows: list[WorkflowView]
    total: int
    page: int
    limit: int

    @property
    def total_pages(self) -> int:
        return math.ceil(self.total / self.limit) if self.limit > 0 else 0

    def to_dict(self) -> dict[str, Any]:
        return {"workflows": [w.list_item() for w in self.workflows], "total": self.total,
                "page": self.page, "limit": self.limit, "total_pages": self.total_pages}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkflowPage:
        items = data.get("workflows")
        return cls([WorkflowView.from_dict(w) for w in items or [] if isinstance(w, Mapping)]
                   if isinstance(items, list) else [],
                   _int(data.get("total"), 0), _int(data.get("page"), 1),
                   _int(data.get("limit"), 10))


@dataclass(frozen=True, slots=True)
class FlowctlMetrics:
    """Workflow and task counts by status (plus `total`); workers are the engine's global
    execution slots in use (`active`) and free (`idle`)."""

    workflows: dict[str, int]
    tasks: dict[str, int]
    workers: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"workflows": dict(self.workflows), "tasks": dict(self.tasks),
                "workers": dict(self.workers)}


@dataclass(frozen=True, slots=True)
class Health:
    status: str  # healthy | unhealthy
    timestamp: str
    #: Why it is unhealthy (not in the spec's body; for logs and the deck).
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "timestamp": self.timestamp}


def count_by(statuses: Iterable[str], vocabulary: tuple[str, ...]) -> dict[str, int]:
    """{"total": n, <each status>: n} with every status of the vocabulary present."""
    counts = dict.fromkeys(vocabulary, 0)
    total = 0
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
        total += 1
    return {"total": total, **counts}


# -- building the views -------------------------------------------------------------------------


def _first(info: StateInfo, states: tuple[str, ...]) -> str | None:
    for entry in info.histories:
        if entry.state in states:
            return format_instant(entry.date)
    return None


def _end(info: StateInfo) -> str | None:
    return format_instant(info.histories[-1].date) if info.current in TERMINAL_STATES else None


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _opt(value: Any) -> str | None:
    return None if value is None else _str(value)


def max_retries_of(task: Mapping[str, Any]) -> int:
    retry = task.get("retry")
    if not isinstance(retry, Mapping):
        return 0
    return max(0, _int(retry.get("maxAttempts"), 1) - 1)


def wrapper_of(flow_tasks: Any) -> Mapping[str, Any] | None:
    """The `flowdeck.flowctl.Workflow` task of a workflow flow's `tasks` (raw JSON)."""
    if isinstance(flow_tasks, list) and flow_tasks and isinstance(flow_tasks[0], Mapping) \
            and flow_tasks[0].get("type") == WORKFLOW_TYPE:
        return flow_tasks[0]
    return None


def build_workflow_view(execution: Execution, wrapper: Mapping[str, Any], *,
                        description: str | None = None) -> WorkflowView:
    """The spec's workflow from its execution and the flow's Workflow task (raw JSON)."""
    labels = dict(execution.labels)
    workflow_id = labels.get(LABEL_ID) or execution.flow_id.removeprefix(FLOW_PREFIX)
    state = execution.state
    status = workflow_status(state.current)
    finished = state.current in TERMINAL_STATES
    created_at = format_instant(state.start_date)
    workflow_end = _end(state)
    wrapper_run = next((tr for tr in execution.task_runs
                        if tr.parent_task_run_id is None
                        and tr.task_id == wrapper.get("id")), None)
    children: dict[str, TaskRun] = {}
    if wrapper_run is not None:
        children = {tr.task_id: tr for tr in execution.task_runs
                    if tr.parent_task_run_id == wrapper_run.id}
    raw_tasks = [t for t in wrapper.get("tasks") or [] if isinstance(t, Mapping)]
    names = {str(t.get("id")): str(t.get("name") or t.get("id")) for t in raw_tasks}
    tasks: list[TaskView] = []
    latest = state.histories[-1].date
    for raw in raw_tasks:
        engine_id = str(raw.get("id"))
        tr = children.get(engine_id)
        outputs = (tr.outputs if tr is not None else None) or {}
        result = outputs.get("result") if isinstance(outputs.get("result"), dict) else None
        error = outputs.get("error") if isinstance(outputs.get("error"), str) else None
        if tr is not None:
            latest = max(latest, tr.state.histories[-1].date)
            updated = format_instant(tr.state.histories[-1].date)
            started = _first(tr.state, ("RUNNING",))
            completed = _end(tr.state)
            if completed is None and finished:
                completed = workflow_end
            retry_count = max(0, len(tr.attempts) - 1)
        else:
            updated = workflow_end if finished and workflow_end else created_at
            started = None
            completed = workflow_end if finished else None
            retry_count = 0
        payload = raw.get("payload")
        depends = raw.get("dependsOn") or []
        tasks.append(TaskView(
            id=str(raw.get("uid") or engine_id), workflow_id=workflow_id,
            name=names[engine_id], type=SPEC_TYPES.get(str(raw.get("type")), str(raw.get("type"))),
            status=task_status(tr, finished), payload=dict(payload) if isinstance(
                payload, Mapping) else {},
            result=result, error=error, retry_count=retry_count,
            max_retries=max_retries_of(raw), priority=_int(raw.get("priority"), 1),
            dependencies=[names.get(str(d), str(d)) for d in depends],
            created_at=created_at, updated_at=updated, started_at=started,
            completed_at=completed, engine_task_id=engine_id,
            task_run_id=tr.id if tr is not None else None))
    config = wrapper.get("config")
    return WorkflowView(
        id=workflow_id, name=labels.get(LABEL_NAME) or workflow_id,
        description=description or "", status=status, tasks=tasks,
        config=dict(config) if isinstance(config, Mapping) else {},
        created_at=created_at, updated_at=format_instant(latest),
        started_at=_first(state, ("RUNNING",)), completed_at=workflow_end,
        execution_id=execution.id, submitted_by=labels.get(LABEL_BY))


def task_counts(view: WorkflowView) -> dict[str, int]:
    counts = dict.fromkeys(TASK_STATUSES, 0)
    for task in view.tasks:
        counts[task.status] += 1
    return counts


__all__ = [
    "ENGINE_TYPES", "FINISHED_STATUSES", "FLOW_PREFIX", "LABEL_BY", "LABEL_ID", "LABEL_NAME",
    "NAMESPACE",
    "SPEC_TYPES", "TASK_STATUSES", "TASK_TYPES", "WEBHOOK_EVENTS", "WORKFLOW_STATUSES",
    "WORKFLOW_TYPE", "FlowctlMetrics", "Health", "TaskView", "WorkflowPage", "WorkflowView",
    "build_workflow_view", "count_by", "execution_states", "flow_id_for", "is_workflow_flow",
    "max_retries_of", "task_counts", "task_status", "workflow_status", "wrapper_of",
]
