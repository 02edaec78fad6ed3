"""The staging flows' names and what a finished staging execution says.

Shared by the engine (which runs the flows), the server (its simplified status document) and
the client layer (the deck and the CLI read the same answer whether the engine is local or
remote), so it lives below all three: names, the bundled sources, and pure functions over
core models.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from flowdeck.core.models import Execution, LogEntry

NAMESPACE = "dev.deployment"
CLONE_FLOW = "clone-staging-api"
LIST_FLOW = "list-staging-environments"
DELETE_FLOW = "delete-staging-environment"


def bundled_flow_sources() -> list[str]:
    """The YAML of the three bundled staging flows (`flowdeck/examples/staging/*.yml`)."""
    folder = resources.files("flowdeck.examples").joinpath("staging")
    return [item.read_text(encoding="utf-8")
            for item in sorted(folder.iterdir(), key=lambda i: i.name)
            if item.name.endswith(".yml")]


def response_of(execution: Execution) -> dict[str, Any] | None:
    """The `response` a staging flow produced: the flow output, else the last task output."""
    outputs = execution.outputs or {}
    value = outputs.get("response")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if isinstance(value, dict):
        return value
    for task_run in reversed(execution.task_runs):
        found = (task_run.outputs or {}).get("response")
        if isinstance(found, dict) and task_run.state.current in ("SUCCESS", "WARNING"):
            return found
    return None


def strip_failure(task_id: str, message: str) -> str:
    """`task 'x' failed: reason` -> `reason` (the spec reports the reason alone)."""
    prefix = f"task '{task_id}' failed: "
    return message[len(prefix):] if message.startswith(prefix) else message


def failure_reason(execution: Execution, logs: list[LogEntry]) -> str:
    """One line saying why an execution did not succeed: the failing task's last error."""
    state = execution.state.current
    for task_run in execution.task_runs:
        if task_run.state.current != "FAILED":
            continue
        errors = [e.message for e in logs
                  if e.task_run_id == task_run.id and e.level == "ERROR"]
        if errors:
            return strip_failure(task_run.task_id, errors[-1])
    errors = [e.message for e in logs if e.level == "ERROR"]
    if errors:
        return errors[-1]
    if state == "KILLED":
        return "the execution was killed"
    if state == "CANCELLED":
        warnings = [e.message for e in logs if e.level == "WARN"]
        return warnings[-1] if warnings else "the execution was cancelled"
    return f"the execution ended {state}"
