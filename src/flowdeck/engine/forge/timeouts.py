"""How pipeline flows run: phase timeouts by kind and a cap on a repository's runs at once.

A phase's kind is read from its task id (`discover…` → discovery, `deploy…` → deployment,
`release…` → release, `artifact…`/`package…`/`publish…` → artifact, anything else → CI); its
own `timeout` wins over the default. A runnable phase's timeout bounds each attempt (as any
task's `timeout` does); a block phase (Sequential, Parallel, an external task...) is bounded as
a whole, and what still runs inside it when time is up is stopped and fails.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from flowdeck.core.forge import PIPELINE_NAMESPACE_PREFIX
from flowdeck.engine.flows import ConcurrencyDef

if TYPE_CHECKING:
    from flowdeck.engine.flows import FlowDefinition
    from flowdeck.engine.tasks.base import TaskDef

#: (kind, words in the phase task's id that select it, default timeout), first match wins.
PHASE_KINDS: tuple[tuple[str, tuple[str, ...], timedelta], ...] = (
    ("discovery", ("discover",), timedelta(minutes=10)),
    ("deployment", ("deploy",), timedelta(minutes=10)),
    ("release", ("release",), timedelta(minutes=15)),
    ("artifact", ("artifact", "package", "publish"), timedelta(minutes=20)),
)
CI = ("ci", timedelta(minutes=30))


def is_pipeline(flow: FlowDefinition) -> bool:
    return flow.namespace.startswith(PIPELINE_NAMESPACE_PREFIX)


def phase_kind(task_id: str) -> tuple[str, timedelta]:
    """(kind, default timeout) of a phase named `task_id`."""
    lowered = task_id.lower()
    for kind, words, default in PHASE_KINDS:
        if any(word in lowered for word in words):
            return kind, default
    return CI


def phase_timeout(flow: FlowDefinition, task: TaskDef, top_level: bool) -> timedelta | None:
    """How long a pipeline phase may run (None for anything that is not a pipeline phase)."""
    if not top_level or not is_pipeline(flow) or not any(t is task for t in flow.tasks):
        return None  # errors and finally tasks are not phases
    return task.timeout if task.timeout is not None else phase_kind(task.id)[1]


class PipelinePolicy:
    """The engine's `FlowPolicy` for pipeline flows: phase timeouts, and a repository's runs
    held to `max_runs` at once (more queue)."""

    def __init__(self, max_runs: int) -> None:
        self.max_runs = max_runs

    def concurrency(self, flow: FlowDefinition,
                    current: ConcurrencyDef | None) -> ConcurrencyDef | None:
        if not is_pipeline(flow):
            return current
        if current is None:
            return ConcurrencyDef(limit=self.max_runs, behavior="QUEUE")
        return ConcurrencyDef(limit=min(current.limit, self.max_runs),
                              behavior=current.behavior, key=current.key)

    def task_timeout(self, flow: FlowDefinition, task: TaskDef,
                     top_level: bool) -> timedelta | None:
        return phase_timeout(flow, task, top_level)
