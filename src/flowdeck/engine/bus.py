"""In-process publish/subscribe for live views: executions, task runs, logs and approvals.

Events are published only after the change they describe has committed. Each subscriber has a
bounded queue; one that falls too far behind is marked `lagged` instead of slowing the engine,
and re-reads what it missed from the store (every log line has a sequence number for that).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from flowdeck.core.models import LogEntry

EXECUTION = "execution"
LOGS = "logs"
APPROVAL = "approval"
FLOW = "flow"


@dataclass(frozen=True, slots=True)
class ExecutionEvent:
    """An execution's committed snapshot (Kestra JSON)."""

    execution_id: str
    state: str
    doc: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LogBatch:
    execution_id: str
    entries: list[LogEntry]


@dataclass(frozen=True, slots=True)
class ApprovalEvent:
    kind: str  # created | decided | expired
    approval: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FlowEvent:
    kind: str  # created | updated | deleted
    namespace: str
    flow_id: str


@dataclass(eq=False)
class Subscription:
    """An async iterator of events; close it (or use `async with`) when done."""

    bus: EventBus
    topics: frozenset[str]
    execution_id: str | None
    queue: asyncio.Queue[Any] = field(default_factory=lambda: asyncio.Queue(maxsize=10_000))
    lagged: bool = False
    closed: bool = False

    def offer(self, event: Any) -> None:
        if self.closed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged = True

    async def get(self, timeout: float | None = None) -> Any:
        if timeout is None:
            return await self.queue.get()
        return await asyncio.wait_for(self.queue.get(), timeout)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.bus.unsubscribe(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while not self.closed:
            yield await self.queue.get()


class EventBus:
    def __init__(self) -> None:
        self._by_topic: dict[str, set[Subscription]] = {}
        self._by_execution: dict[str, set[Subscription]] = {}

    def subscribe(self, *topics: str, execution_id: str | None = None,
                  maxsize: int = 10_000) -> Subscription:
        """A new subscription; `maxsize` events may queue before it is marked lagged."""
        sub = Subscription(self, frozenset(topics), execution_id, asyncio.Queue(maxsize))
        if execution_id is not None:
            self._by_execution.setdefault(execution_id, set()).add(sub)
        else:
            for topic in topics:
                self._by_topic.setdefault(topic, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub.execution_id is not None:
            subs = self._by_execution.get(sub.execution_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_execution[sub.execution_id]
        for topic in sub.topics:
            self._by_topic.get(topic, set()).discard(sub)

    def publish(self, topic: str, event: Any, execution_id: str | None = None) -> None:
        for sub in self._by_topic.get(topic, ()):
            sub.offer(event)
        if execution_id is not None:
            for sub in self._by_execution.get(execution_id, ()):
                if topic in sub.topics:
                    sub.offer(event)
