"""Following an execution's flow dependencies (Kestra's `follow-dependencies`): the
executions of the flows related to the execution's flow (`flow_dependencies.of_flow`, with
`destination_only` and `expand_all`) that share its correlation id (`system.correlationId`,
which a Subflow's execution inherits from the execution that started it).

As Kestra does: an update of such an execution is `progress`; once one has finished (its
state and every task run terminal) it is `end` and its flow is no longer followed; when no
flow is left, `end-all` and the stream is over. A related flow that never runs in this
correlation keeps the stream open, as in Kestra, until the client leaves. Unlike Kestra, the
executions already there are reported first (Kestra reports changes only), so a client
following a finished execution hears of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowdeck.core.models import Execution
from flowdeck.core.states import is_terminal
from flowdeck.engine import flow_dependencies
from flowdeck.engine.bus import EXECUTION
from flowdeck.engine.query import ExecutionQuery

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine

CORRELATION = "system.correlationId"
#: Correlated executions read per look.
MAX_FOLLOWED = 1_000


@dataclass(frozen=True, slots=True)
class DependencyEvent:
    #: `progress`, `end`, `end-all`, or `idle` (nothing happened for `keepalive` seconds).
    kind: str
    execution: Execution | None = None
    #: For `end-all`: the id of the execution whose end left nothing to follow.
    execution_id: str | None = None


def finished(execution: Execution) -> bool:
    return is_terminal(execution.state.current) and all(
        is_terminal(run.state.current) for run in execution.task_runs)


async def _correlated(engine: Engine, correlation: str) -> list[Execution]:
    query = ExecutionQuery(labels={CORRELATION: correlation}, size=MAX_FOLLOWED,
                           sort=[("state.startDate", False)])
    found, _ = await engine.search_executions(query)
    return found


async def follow(engine: Engine, execution_id: str, *, destination_only: bool = False,
                 expand_all: bool = False,
                 keepalive: float = 15.0) -> AsyncIterator[DependencyEvent]:
    """The events of the execution's dependencies until none is left to follow."""
    sub = engine.subscribe(EXECUTION)  # before the first read: no change is missed
    try:
        root = await engine.get_execution(execution_id)
        correlation = root.label(CORRELATION) or root.id
        remaining = set(flow_dependencies.of_flow(
            engine.list_flows(), (root.namespace, root.flow_id),
            destination_only=destination_only, expand_all=expand_all).nodes)
        sent: dict[str, Execution] = {}
        while True:
            for execution in await _correlated(engine, correlation):
                key = (execution.namespace, execution.flow_id)
                if key not in remaining or sent.get(execution.id) == execution:
                    continue
                sent[execution.id] = execution
                if not finished(execution):
                    yield DependencyEvent("progress", execution)
                    continue
                yield DependencyEvent("end", execution)
                remaining.discard(key)
                if not remaining:
                    yield DependencyEvent("end-all", execution_id=execution.id)
                    return
            try:
                await sub.get(keepalive)
            except TimeoutError:
                yield DependencyEvent("idle")
            sub.lagged = False
            while not sub.queue.empty():
                sub.queue.get_nowait()
    finally:
        sub.close()
