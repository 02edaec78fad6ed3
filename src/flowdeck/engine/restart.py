"""Restart and replay: which task runs run again, and which a replay keeps.

Restart re-runs an execution from its failed task runs (or from one given task run), in the same
execution; replay starts a new execution that keeps the task runs before the one given.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from flowdeck.core.errors import ConflictError, NotFoundError
from flowdeck.core.models import Execution, StateInfo, TaskRun
from flowdeck.core.states import FAILED_STATES, SUCCESSFUL_STATES, TERMINAL_STATES
from flowdeck.engine.flows import FlowDefinition


def reset_for_restart(execution: Execution, flow: FlowDefinition, task_run_id: str | None,
                      now: datetime) -> None:
    """Mark what must run again as RESTARTED and drop what must be re-created."""
    handler_ids = set()

    def collect(tasks: list[Any]) -> None:
        for t in tasks:
            handler_ids.add(t.id)
            for _, children in t.children():
                collect(children)

    collect(flow.errors)
    collect(flow.finally_)
    collect(flow.after_execution)
    by_id = {tr.id: tr for tr in execution.task_runs}
    keep: list[TaskRun] = []
    to_restart: set[str] = set()
    if task_run_id is not None:
        target = by_id.get(task_run_id)
        if target is None:
            raise NotFoundError(f"no task run '{task_run_id}' in execution {execution.id}")
        position = execution.task_runs.index(target)
        ancestors = _ancestors(target, by_id)
        for i, tr in enumerate(execution.task_runs):
            if tr.task_id in handler_ids:
                continue
            if i < position or tr.id == target.id or tr.id in ancestors:
                keep.append(tr)
        to_restart = {target.id, *ancestors}
        kept_ids = {tr.id for tr in keep}
        keep = [tr for tr in keep if tr.parent_task_run_id is None
                or tr.parent_task_run_id in kept_ids]
    else:
        for tr in execution.task_runs:
            if tr.task_id in handler_ids:
                continue
            keep.append(tr)
            if tr.state.current in FAILED_STATES or tr.state.current not in TERMINAL_STATES:
                to_restart.add(tr.id)
                to_restart.update(_ancestors(tr, by_id))
    for tr in keep:
        if tr.id in to_restart and tr.state.current != "RESTARTED":
            for attempt in tr.attempts:
                if attempt.state.current not in TERMINAL_STATES:
                    attempt.state.to("KILLED", now)
            tr.state.to("RESTARTED", now)
    execution.task_runs = keep


#: The states a task run can be set to from the API (Kestra's "change state" of a task run).
TASK_RUN_STATES = frozenset({"SUCCESS", "WARNING", "FAILED"})


def mark_as(execution: Execution, task_run_id: str, state: str, now: datetime) -> None:
    """End the task run `reset_for_restart` kept as RESTARTED in `state`, its last attempt too
    (its flowable ancestors stay RESTARTED: they run on from their children's states)."""
    target = execution.find_task_run(task_run_id)
    if target is None:  # reset_for_restart dropped it: an error or finally handler's run
        raise ConflictError(f"task run '{task_run_id}' belongs to an error or finally "
                            "branch, which runs again on its own")
    for attempt in target.attempts[-1:]:
        attempt.state.to(state, now)
    target.state.to(state, now)


def _ancestors(tr: TaskRun, by_id: dict[str, TaskRun]) -> set[str]:
    out: set[str] = set()
    parent_id = tr.parent_task_run_id
    while parent_id is not None and parent_id not in out:
        out.add(parent_id)
        parent = by_id.get(parent_id)
        parent_id = parent.parent_task_run_id if parent else None
    return out


def copy_before(source: Execution, target: TaskRun, new_id: Callable[[], str],
                execution_id: str) -> list[TaskRun]:
    """Task runs that precede `target`, re-identified for a replay.

    Completed ones are kept as they are (the replay skips them); the target's ancestors are
    kept as fresh CREATED task runs so their completed children stay attached to them.
    """
    position = source.task_runs.index(target)
    by_id = {tr.id: tr for tr in source.task_runs}
    ancestors = _ancestors(target, by_id)
    mapping: dict[str, str] = {}
    copied: list[TaskRun] = []
    for tr in source.task_runs:
        is_ancestor = tr.id in ancestors
        if not is_ancestor and (source.task_runs.index(tr) >= position
                                or tr.state.current not in SUCCESSFUL_STATES):
            continue
        if tr.parent_task_run_id is not None and tr.parent_task_run_id not in mapping:
            continue
        clone = TaskRun.from_dict(tr.to_dict(tr.state.histories[-1].date))
        mapping[tr.id] = clone.id = new_id()
        clone.execution_id = execution_id
        if is_ancestor:
            clone.state = StateInfo.new("CREATED", tr.state.start_date)
            clone.attempts = []
            clone.outputs = None
        if tr.parent_task_run_id is not None:
            clone.parent_task_run_id = mapping[tr.parent_task_run_id]
        copied.append(clone)
    return copied


