"""Phase timeouts of pipeline runs: the API document's defaults by phase kind.

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
