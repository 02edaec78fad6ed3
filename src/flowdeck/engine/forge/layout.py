"""The shape of a pipeline run, read from its flow: phases, their tasks, their steps, and ids.

Phases are the flow's top-level tasks (disabled ones left out), numbered from 1. A Sequential
or Parallel phase's tasks are its children; any other phase is a phase with one task, itself.
A task's steps are its attempts (an engine-run task), the runnable tasks inside it (a block),
or the steps it declares (`flowdeck.pipeline.External`, reported on by a worker).

Ids are deterministic UUIDs (version 5) derived from the run (execution) id, so they exist
before a phase starts and never change: phase `run/phase/<task>`, task `run/task/<task>`, step
`<task id>/attempt:<n>`, `<task id>/task:<inner task>` or `<task id>/step:<name>`. The ids of
tasks and of the steps known in advance are recorded when a run is created (`forge_nodes`),
which is how a worker's status update finds its run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from flowdeck.core.errors import ValidationError
from flowdeck.engine.flows import FlowDefinition
from flowdeck.engine.forge.tasks import External
from flowdeck.engine.forge.timeouts import phase_timeout
from flowdeck.engine.tasks.base import FlowableTask, RunnableTask, TaskDef
from flowdeck.engine.tasks.flowable import Parallel, Sequential

FORGE_IDS = uuid.UUID("6f1c1c52-8e0b-5d2e-9a57-2f6b0c0d7e11")
#: Attempt steps recorded in advance per engine-run task (retries beyond get no record).
MAX_RECORDED_ATTEMPTS = 20


def derived_id(*parts: str) -> str:
    return str(uuid.uuid5(FORGE_IDS, "/".join(parts)))


def phase_id(run_id: str, task_id: str) -> str:
    return derived_id(run_id, "phase", task_id)


def task_uuid(run_id: str, task_id: str) -> str:
    return derived_id(run_id, "task", task_id)


def step_uuid(task: str, key: str) -> str:
    return derived_id(task, key)


@dataclass(frozen=True, slots=True)
class PhaseSpec:
    task: TaskDef
    number: int
    tasks: tuple[TaskDef, ...]
    timeout: timedelta | None


def phases(flow: FlowDefinition) -> list[PhaseSpec]:
    out: list[PhaseSpec] = []
    for task in (t for t in flow.tasks if not t.disabled):
        members: tuple[TaskDef, ...]
        if isinstance(task, Sequential | Parallel):
            members = tuple(c for c in task.tasks if not c.disabled)
        else:
            members = (task,)
        out.append(PhaseSpec(task, len(out) + 1, members, phase_timeout(flow, task, True)))
    return out


def runnable_descendants(task: TaskDef) -> Iterator[TaskDef]:
    for _, children in task.children():
        for child in children:
            if child.disabled:
                continue
            if isinstance(child, RunnableTask):
                yield child
            else:
                yield from runnable_descendants(child)


def check_external_placement(flow: FlowDefinition) -> None:
    """External tasks are reported on by task id: they must be phases or tasks of a phase."""
    allowed = {id(t) for spec in phases(flow) for t in spec.tasks}
    problems = []

    def walk(tasks: list[TaskDef], path: str) -> None:
        for i, task in enumerate(tasks):
            where = f"{path}[{i}]"
            if isinstance(task, External) and id(task) not in allowed:
                problems.append((where, f"'{task.id}' (flowdeck.pipeline.External) must be a "
                                        "phase or a task of a Sequential/Parallel phase"))
            for name, children in task.children():
                walk(children, f"{where}.{name}")

    walk(flow.tasks, "tasks")
    walk(flow.errors, "errors")
    walk(flow.finally_, "finally")
    if problems:
        raise ValidationError(problems, prefix=f"pipeline flow {flow.namespace}.{flow.id}: ")


def step_keys(task: TaskDef) -> list[tuple[str, str]]:
    """(key, name) of the steps known before the task runs."""
    if isinstance(task, External):
        return [(f"step:{name}", name) for name in task.steps]
    if isinstance(task, FlowableTask):
        return [(f"task:{child.id}", child.id) for child in runnable_descendants(task)]
    attempts = 1
    if task.retry is not None:
        attempts = min(task.retry.maxAttempts or MAX_RECORDED_ATTEMPTS, MAX_RECORDED_ATTEMPTS)
    return [(f"attempt:{n}", f"attempt {n}") for n in range(1, attempts + 1)]


NodeRow = tuple[str, str, str, str, str | None, int]


def node_rows(run_id: str, flow: FlowDefinition) -> list[NodeRow]:
    """(id, run id, kind, task id, step, external) of every task and known step of a run."""
    rows: list[NodeRow] = []
    for spec in phases(flow):
        for task in spec.tasks:
            tid = task_uuid(run_id, task.id)
            external = int(isinstance(task, External))
            rows.append((tid, run_id, "task", task.id, None, external))
            rows.extend((step_uuid(tid, key), run_id, "step", task.id, key, external)
                        for key, _ in step_keys(task))
    return rows
