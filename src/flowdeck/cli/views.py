"""How executions read on a terminal: the list row, the detail, and why a run failed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flowdeck.cli.common import EXIT_FAILED, EXIT_OK, EXIT_PAUSED, Printer
from flowdeck.client.backend import Backend
from flowdeck.core.models import Execution, LogEntry, TaskRun
from flowdeck.core.sanitize import sanitize_line
from flowdeck.core.states import is_terminal

EXECUTION_HEADERS = ["ID", "STATE", "FLOW", "STARTED", "DURATION", "TASKS"]
#: Log lines shown for a failed task (the tail of what it logged).
FAILURE_LINES = 5
#: Characters of one input or output value on a line of `executions show`.
VALUE_WIDTH = 200


def exit_code(execution: Execution) -> int:
    """0 for SUCCESS, 3 while it waits (PAUSED), 1 for every other state it ended in."""
    state = execution.state.current
    if state == "SUCCESS":
        return EXIT_OK
    if state == "PAUSED":
        return EXIT_PAUSED
    return EXIT_FAILED


def short_duration(ex: Execution) -> str:
    # Not StateInfo.duration_seconds: that stops at the last state change, so a RUNNING
    # execution would show the time it took to start.
    end = ex.state.end_date or datetime.now(UTC)
    seconds = max(0.0, (end - ex.state.start_date).total_seconds())
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def execution_row(ex: Execution) -> list[str]:
    done = sum(1 for t in ex.task_runs if is_terminal(t.state.current))
    return [ex.id, ex.state.current, f"{ex.namespace}.{ex.flow_id}",
            ex.state.start_date.strftime("%Y-%m-%d %H:%M:%S"), short_duration(ex),
            f"{done}/{len(ex.task_runs)}"]


def value_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                           sort_keys=True, default=str)
    return sanitize_line(text, VALUE_WIDTH)


def show_values(title: str, values: dict[str, Any], p: Printer) -> None:
    """A blank line, `title`, then one `key  value` line each (values as compact JSON)."""
    p.line()
    p.line(title)
    width = max(len(k) for k in values)
    for key, value in values.items():
        p.line(f"  {sanitize_line(key, 60).ljust(width)}  {value_text(value)}")


def first_failed_task(execution: Execution) -> TaskRun | None:
    """The task run that failed first: the cause (error handlers that fail come later)."""
    failed = [t for t in execution.task_runs if t.state.current == "FAILED"]
    return min(failed, key=lambda t: t.state.start_date) if failed else None


async def failure_lines(backend: Backend, execution: Execution,
                        task: TaskRun | None) -> list[LogEntry]:
    """The failed task's last lines (of its last attempt: its output's tail and the error,
    stderr included); with no failed task, the execution's last ERROR lines."""
    if task is None:
        return (await backend.logs(execution.id, min_level="ERROR"))[-FAILURE_LINES:]
    own = [e for e in await backend.logs(execution.id) if e.task_run_id == task.id]
    last_attempt = [e for e in own if e.attempt_number == len(task.attempts) - 1]  # 0-based
    return (last_attempt or own)[-FAILURE_LINES:]


async def show_failure(backend: Backend, execution: Execution, p: Printer, *,
                       title: str | None = None) -> None:
    """Which task failed and its last error lines (for a run that did not succeed); with a
    `title`, under a blank line and that title. Nothing when there is nothing to say."""
    task = first_failed_task(execution)
    lines = await failure_lines(backend, execution, task)
    if task is None and not lines:
        return
    if title is not None:
        p.line()
        p.line(title)
    if task is not None:
        attempts = len(task.attempts)
        p.line(f"task {task.task_id} FAILED after {attempts} attempt"
               f"{'' if attempts == 1 else 's'}" + (":" if lines else ""))
    for entry in lines:
        p.log(entry, indent="  ")


async def show_execution(backend: Backend, execution: Execution, p: Printer) -> None:
    """The row, its task runs, its inputs and outputs, and why it failed if it did."""
    p.table(EXECUTION_HEADERS, [execution_row(execution)])
    p.line()
    p.table(["TASK", "STATE", "ATTEMPTS", "VALUE"], [
        [t.task_id, t.state.current, str(len(t.attempts)), t.value or ""]
        for t in execution.task_runs])
    if execution.inputs:
        show_values("INPUTS", execution.inputs, p)
    if execution.outputs:
        show_values("OUTPUTS", execution.outputs, p)
    task_outputs = {t.task_id + (f"[{t.value}]" if t.value is not None else ""): t.outputs
                    for t in execution.task_runs if t.outputs}
    if task_outputs:
        show_values("TASK OUTPUTS", task_outputs, p)
    if not is_terminal(execution.state.current) or execution.state.current == "SUCCESS":
        return
    await show_failure(backend, execution, p, title="ERROR")
