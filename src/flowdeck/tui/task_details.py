"""What the execution screen's task details (`d`) say about each task of a flow.

The task tree shows what ran; the details show every task the flow declares, run or not, with
its type and properties from the flow definition next to what its runs made of it (state,
attempts, outputs). A task type can describe itself and its children in its own vocabulary:
`DESCRIBERS` maps a type to a function that does, and any other task gets the general
description. FlowCtl's workflow task is one: its tasks show as the FlowCtl API shows them
(type, status, priority, dependencies, retries, payload, result or error), built by the same
`flowdeck.core.flowctl` functions as the API's own answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flowdeck.core.flowctl import WORKFLOW_TYPE, build_workflow_view
from flowdeck.core.models import Execution, TaskRun

#: Keys of a task definition shown elsewhere (or nested tasks, described on their own).
STRUCTURE = frozenset({"id", "type", "tasks", "then", "else", "cases", "errors", "finally",
                       "dependsOn", "retry", "description"})
NESTED = ("tasks", "then", "else")
#: A FlowCtl status as the Kestra state whose colour it takes.
STATUS_STATES = {"pending": "CREATED", "running": "RUNNING", "completed": "SUCCESS",
                 "failed": "FAILED", "retrying": "RETRYING", "cancelled": "KILLED"}


@dataclass(frozen=True, slots=True)
class TaskDetail:
    """One task: a first line (name, kind, state, short facts), then labelled lines."""

    depth: int
    name: str
    kind: str
    #: What the state is called here, and the Kestra state whose colour it is shown in.
    state: str
    color_state: str
    facts: tuple[str, ...] = ()
    rows: tuple[tuple[str, str], ...] = ()


Describer = Callable[[Mapping[str, Any], Execution, int], list[TaskDetail]]


def compact(value: Any) -> str:
    """A value on one line: text as it is, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def pairs(values: Mapping[str, Any]) -> str:
    """`key=value key=value`, each value on one line."""
    return " ".join(f"{key}={compact(value)}" for key, value in values.items())


def short_type(type_name: str) -> str:
    """`io.kestra.plugin.core.log.Log` -> `Log`."""
    return type_name.rsplit(".", 1)[-1] or type_name


def _runs_of(execution: Execution, task_id: str) -> list[TaskRun]:
    return [tr for tr in execution.task_runs if tr.task_id == task_id]


def general(task: Mapping[str, Any], execution: Execution, depth: int) -> list[TaskDetail]:
    """Any task: its type and declared properties, and its runs' state, attempts, outputs."""
    task_id = str(task.get("id") or "?")
    runs = _runs_of(execution, task_id)
    last = runs[-1] if runs else None
    state = last.state.current if last is not None else "not started"
    facts: list[str] = []
    if last is not None:
        attempts = sum(len(tr.attempts) for tr in runs)
        facts.append(f"attempts {attempts}")
    if len(runs) > 1:
        facts.append(f"runs {len(runs)}")
    retry = task.get("retry")
    if isinstance(retry, Mapping) and isinstance(retry.get("maxAttempts"), int):
        facts.append(f"max attempts {retry['maxAttempts']}")
    rows: list[tuple[str, str]] = []
    depends = task.get("dependsOn")
    if isinstance(depends, list) and depends:
        rows.append(("depends on", ", ".join(map(str, depends))))
    properties = {k: v for k, v in task.items() if k not in STRUCTURE}
    if properties:
        rows.append(("properties", pairs(properties)))
    outputs = {k: v for tr in runs for k, v in (tr.outputs or {}).items()}
    if outputs:
        rows.append(("outputs", pairs(outputs)))
    out = [TaskDetail(depth, task_id, short_type(str(task.get("type") or "?")), state,
                      last.state.current if last is not None else "CREATED", tuple(facts),
                      tuple(rows))]
    for key in NESTED:
        out.extend(describe_tasks(task.get(key), execution, depth + 1))
    return out


def flowctl_workflow(task: Mapping[str, Any], execution: Execution,
                     depth: int) -> list[TaskDetail]:
    """A FlowCtl workflow: the workflow, then its tasks in the FlowCtl API's vocabulary."""
    view = build_workflow_view(execution, task)
    config = view.config
    facts = tuple(f"{label} {config[key]}" for key, label in (
        ("max_concurrency", "max concurrency"), ("timeout", "timeout")) if key in config)
    out = [TaskDetail(depth, view.name, "workflow", view.status,
                      STATUS_STATES.get(view.status, "CREATED"), facts)]
    for item in view.tasks:
        rows: list[tuple[str, str]] = []
        if item.dependencies:
            rows.append(("depends on", ", ".join(item.dependencies)))
        if item.payload:
            rows.append(("payload", pairs(item.payload)))
        if item.error:
            rows.append(("error", item.error))
        if item.result:
            rows.append(("result", pairs(item.result)))
        out.append(TaskDetail(depth + 1, item.name, item.type, item.status,
                              STATUS_STATES.get(item.status, "CREATED"),
                              (f"priority {item.priority}",
                               f"retries {item.retry_count}/{item.max_retries}"),
                              tuple(rows)))
    return out


#: Task types that describe themselves (and their children); the rest: `general`.
DESCRIBERS: dict[str, Describer] = {WORKFLOW_TYPE: flowctl_workflow}


def describe_tasks(tasks: Any, execution: Execution, depth: int = 0) -> list[TaskDetail]:
    """Every task of a flow's `tasks` (raw definitions), in order, nested ones indented."""
    if not isinstance(tasks, list):
        return []
    out: list[TaskDetail] = []
    for task in tasks:
        if isinstance(task, Mapping):
            describer = DESCRIBERS.get(str(task.get("type")), general)
            out.extend(describer(task, execution, depth))
    return out


def prefers_details(tasks: Any) -> bool:
    """Whether the details say more than the task tree (a task that describes itself)."""
    return isinstance(tasks, list) and any(
        isinstance(t, Mapping) and str(t.get("type")) in DESCRIBERS for t in tasks)
