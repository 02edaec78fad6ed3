"""What Kestra's core task properties mean when a task runs here.

Every task accepts the properties Kestra documents for all tasks. Those with a meaning on one
engine act as in Kestra:

- `runIf`: an expression rendered just before the task would start; when it is falsy (`false`,
  `0`, `-0`, empty, as Kestra's `TruthUtils` reads it) the task run ends SKIPPED without
  running, which its block counts as a success;
- `allowWarning`: a task run that ends WARNING ends SUCCESS instead;
- `logLevel`: the task's own lines below that level are not stored.

The others are accepted and change nothing here, each for a reason a log line gives when the
task starts: `workerGroup` (one engine runs every task), `taskCache` (no task output cache),
`logToFile` (logs are always stored, and served line by line). `version` (the plugin version)
and `description` are documentation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowdeck.core.errors import FlowdeckError

if TYPE_CHECKING:
    from flowdeck.engine.tasks.base import TaskDef

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")
FALSY = frozenset({"false", "0", "-0", ""})
#: Accepted properties that change nothing on this engine, and why (said at task start).
IGNORED = {
    "workerGroup": "ignored: one flowdeck engine runs every task",
    "taskCache": "ignored: flowdeck keeps no task output cache",
    "logToFile": "ignored: flowdeck stores every log line and serves them one by one",
}


class RunIfError(FlowdeckError):
    """A `runIf` expression that could not be rendered."""


def is_truthy(value: Any) -> bool:
    """Kestra's `TruthUtils.isTruthy` over a rendered value."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() not in FALSY


def should_run(task: TaskDef, render: Any) -> bool:
    """Whether `task` runs: its `runIf` rendered (with `render`) is truthy. A plain `true`
    (the default) is not rendered at all."""
    condition = task.runIf
    if condition is True or condition is None:
        return True
    if condition is False:
        return False
    try:
        return is_truthy(render(condition))
    except FlowdeckError as exc:
        raise RunIfError(f"runIf '{condition}': {exc}") from None


def settle(task: TaskDef, state: str) -> str:
    """A task run's final state once `allowWarning` is applied."""
    if state == "WARNING" and task.allowWarning:
        return "SUCCESS"
    return state


def logs_at(task: TaskDef, level: str) -> bool:
    """Whether a line at `level` from `task` is stored (its `logLevel` is the minimum)."""
    if task.logLevel is None:
        return True
    wanted = task.logLevel.upper()
    if wanted not in LEVELS or level.upper() not in LEVELS:
        return True
    return LEVELS.index(level.upper()) >= LEVELS.index(wanted)


def ignored_notes(task: TaskDef) -> list[str]:
    """One line per accepted property this engine ignores, naming why."""
    return [f"task '{task.id}': {name} {why}" for name, why in IGNORED.items()
            if getattr(task, name, None) not in (None, False)]
