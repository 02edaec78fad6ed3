"""Rules a domain adds to how flows run, without the executor knowing the domain.

A domain that gives some flows a default it does not write into their source (the forge: a
repository's pipeline runs queue beyond 100 at once; a pipeline phase has a timeout by kind)
registers a `FlowPolicy`. The launcher asks `FlowPolicies.concurrency(flow)` for a flow's
effective limit and the runner asks `task_timeout(...)` for a task's, so neither imports any
domain.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from flowdeck.engine.flows import ConcurrencyDef, FlowDefinition
    from flowdeck.engine.tasks.base import TaskDef


class FlowPolicy(Protocol):
    def concurrency(self, flow: FlowDefinition,
                    current: ConcurrencyDef | None) -> ConcurrencyDef | None:
        """The limit to apply, given the one so far (the flow's own, or an earlier
        policy's); return `current` to leave it."""
        ...

    def task_timeout(self, flow: FlowDefinition, task: TaskDef,
                     top_level: bool) -> timedelta | None:
        """A timeout for `task` that overrides its own, or None to leave it."""
        ...


class FlowPolicies:
    """The policies in force, asked in the order they were added."""

    def __init__(self) -> None:
        self._policies: list[FlowPolicy] = []

    def add(self, policy: FlowPolicy) -> None:
        self._policies.append(policy)

    def concurrency(self, flow: FlowDefinition) -> ConcurrencyDef | None:
        current = flow.concurrency
        for policy in self._policies:
            current = policy.concurrency(flow, current)
        return current

    def task_timeout(self, flow: FlowDefinition, task: TaskDef,
                     top_level: bool) -> timedelta | None:
        """The first policy's timeout for `task`, or None (the task's own applies)."""
        for policy in self._policies:
            limit = policy.task_timeout(flow, task, top_level)
            if limit is not None:
                return limit
        return None
