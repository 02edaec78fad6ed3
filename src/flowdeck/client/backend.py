"""The one interface the deck and the CLI use to reach workflows, wherever they run.

Two implementations: `EmbeddedBackend` (the engine in this process, on its own event loop in a
background thread) and `HttpBackend` (any server speaking Kestra's API: `flowdeck serve`, or a
real Kestra 1.x/2.x). Results are core models parsed from Kestra JSON, so a screen cannot tell
the two apart, except through `Capabilities`, which says what the server can do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from flowdeck.core.models import Approval, Execution, LogEntry

#: API token roles, weakest first; each may do what the roles before it may.
ROLES: tuple[str, ...] = ("viewer", "operator", "approver", "admin")


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the connected backend supports; screens say "not available" for the rest."""

    kind: str  # "embedded" | "flowdeck" | "kestra"
    version: str
    approvals: bool = False
    staging: bool = False
    releases: bool = False
    kv: bool = True
    namespace_files: bool = True
    action_paths: str = "2.x"  # "2.x": /executions/{id}/actions/<x>; "1.x": /executions/{id}/<x>
    #: The caller's role (viewer < operator < approver < admin) where the backend says it
    #: (the embedded engine: "admin"; a server: from `GET /api/v1/me`); None: not known.
    role: str | None = None
    #: Who the backend takes the caller to be (a server: the token's or user's name from
    #: `GET /api/v1/me`); None: not known (the embedded engine: whoever runs the deck).
    user: str | None = None


@dataclass(frozen=True, slots=True)
class InterruptedRun:
    """An execution that closing the backend leaves unfinished: the embedded engine stops
    with its process, and the execution resumes from its last durable point at the next start.
    `rerun` names the tasks cut short that run again then; `fail` those that fail instead
    (they may have had side effects: a shell command, an HTTP request)."""

    execution_id: str
    namespace: str
    flow_id: str
    state: str
    rerun: tuple[str, ...] = ()
    fail: tuple[str, ...] = ()


@dataclass(slots=True)
class FlowInfo:
    """A flow as the deck shows it (parsed from Kestra's Flow JSON)."""

    namespace: str
    id: str
    revision: int
    description: str | None = None
    labels: list[tuple[str, str]] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)
    disabled: bool = False
    source: str | None = None
    #: Tasks the flow declares (nested ones included; not its errors/finally handlers).
    task_count: int = 0

    @classmethod
    def from_kestra(cls, data: dict[str, Any]) -> FlowInfo:
        labels = data.get("labels") or []
        if isinstance(labels, dict):
            pairs = [(str(k), str(v)) for k, v in labels.items()]
        else:
            pairs = [(str(x.get("key")), str(x.get("value"))) for x in labels]
        return cls(namespace=data["namespace"], id=data["id"],
                   revision=int(data.get("revision") or 1), description=data.get("description"),
                   labels=pairs, inputs=list(data.get("inputs") or []),
                   triggers=list(data.get("triggers") or []),
                   disabled=bool(data.get("disabled", False)), source=data.get("source"),
                   task_count=count_tasks(data.get("tasks")))


def count_tasks(tasks: Any) -> int:
    """The tasks in a Kestra task list, with those nested in flowable tasks (`tasks`, `then`,
    `else`, `cases`)."""
    if not isinstance(tasks, list):
        return 0
    total = 0
    for task in tasks:
        if not isinstance(task, dict):
            continue
        total += 1
        for key in ("tasks", "then", "else"):
            total += count_tasks(task.get(key))
        cases = task.get("cases")
        if isinstance(cases, dict):
            total += sum(count_tasks(branch) for branch in cases.values())
    return total


@dataclass(slots=True)
class ExecutionFilter:
    """What the executions list asks for; each backend maps it onto its own query."""

    namespace: str | None = None
    flow_id: str | None = None
    states: list[str] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = None
    page: int = 1
    size: int = 100
    sort: list[tuple[str, bool]] = field(default_factory=lambda: [("state.startDate", True)])


@dataclass(slots=True)
class Page:
    results: list[Execution]
    total: int


@runtime_checkable
class Backend(Protocol):
    """Async queries and actions, and async iterators for live streams.

    Every method may raise a `flowdeck.core.errors.FlowdeckError` subclass (NotFoundError,
    ConflictError, ValidationError, ...) or `BackendUnavailable` when the backend cannot be
    reached; none raises anything else for a problem a user can cause.
    """

    @property
    def name(self) -> str:
        """"embedded" or the server URL, for the header."""
        ...

    async def connect(self) -> Capabilities: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Check the backend still answers (quickly); raises BackendUnavailable if not."""
        ...

    async def runs_stopped_by_close(self) -> list[InterruptedRun]:
        """The executions `close()` would leave unfinished (none for a server, which goes on
        running them)."""
        ...

    # flows
    async def list_flows(self, namespace: str | None = None) -> list[FlowInfo]: ...

    async def get_flow(self, namespace: str, flow_id: str) -> FlowInfo: ...

    async def apply_flow(self, source: str) -> FlowInfo: ...

    async def delete_flow(self, namespace: str, flow_id: str) -> None: ...

    # executions
    async def search_executions(self, query: ExecutionFilter) -> Page: ...

    async def get_execution(self, execution_id: str) -> Execution: ...

    async def create_execution(self, namespace: str, flow_id: str,
                               inputs: dict[str, Any] | None = None,
                               labels: list[tuple[str, str]] | None = None) -> Execution: ...

    async def kill(self, execution_id: str) -> Execution: ...

    async def restart(self, execution_id: str, task_run_id: str | None = None) -> Execution: ...

    async def replay(self, execution_id: str, task_run_id: str | None = None) -> Execution: ...

    async def pause(self, execution_id: str) -> Execution: ...

    async def resume(self, execution_id: str, inputs: dict[str, Any] | None = None
                     ) -> Execution: ...

    async def logs(self, execution_id: str, *, after_seq: int = 0,
                   min_level: str | None = None) -> list[LogEntry]: ...

    def follow_execution(self, execution_id: str) -> AsyncIterator[Execution]:
        """Snapshots until the execution is terminal (not PAUSED), then the iterator ends."""
        ...

    def follow_logs(self, execution_id: str, *, after_seq: int = 0) -> AsyncIterator[LogEntry]:
        """Stored lines after `after_seq`, then live ones; never ends by itself."""
        ...

    def watch_executions(self) -> AsyncIterator[Execution]:
        """A snapshot each time any execution changes."""
        ...

    # approvals
    async def list_approvals(self, status: str | None = "pending") -> list[Approval]: ...

    async def get_approval(self, approval_id: str) -> Approval: ...

    async def decide(self, approval_id: str, *, approve: bool, by: str,
                     comment: str | None = None) -> Approval: ...

    async def decide_many(self, approval_ids: list[str], *, by: str,
                          comment: str | None = None) -> list[Approval]: ...

    def watch_approvals(self) -> AsyncIterator[Approval]:
        """Each created or decided approval."""
        ...
