"""Typed messages: workers post these, screen and app handlers own every piece of UI state."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.message import Message

from flowdeck.client.backend import Capabilities, FlowInfo
from flowdeck.core.models import Approval, Execution, LogEntry


@dataclass
class Connected(Message):
    capabilities: Capabilities


@dataclass
class ConnectionLost(Message):
    reason: str


@dataclass
class ExecutionChanged(Message):
    """A live snapshot from `watch_executions` (fanned out by the app to live screens)."""

    execution: Execution


@dataclass
class ApprovalChanged(Message):
    """A created or decided approval from `watch_approvals`."""

    approval: Approval


@dataclass
class PendingApprovals(Message):
    """The pending approvals as loaded at connect (no toasts for these)."""

    approvals: list[Approval]


@dataclass
class ExecutionsPage(Message):
    generation: int
    page: int
    results: list[Execution]
    total: int


@dataclass
class ExecutionLoaded(Message):
    execution: Execution


@dataclass
class LogBatch(Message):
    execution_id: str
    entries: list[LogEntry]


@dataclass
class FlowsLoaded(Message):
    flows: list[FlowInfo]
    recent: dict[tuple[str, str], list[str]] = field(default_factory=dict)


@dataclass
class FlowLoaded(Message):
    flow: FlowInfo


@dataclass
class ActionDone(Message):
    """An action finished; `text` is shown as a notification."""

    text: str
    refresh: bool = True


@dataclass
class ActionFailed(Message):
    text: str
