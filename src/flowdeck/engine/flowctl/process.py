"""Running a FlowCtl task's command: the engine's shell machinery plus the output tail.

The command runs through `engine.tasks.shell.run_process` (its own process group, stdout and
stderr streamed into the task's logs, the whole group terminated on kill or timeout); the
last lines it printed are kept for the task's `result`.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowdeck.core.models import Execution, TaskRun
from flowdeck.engine.tasks.base import TaskContext, TaskFailure
from flowdeck.engine.tasks.shell import CommandFailed, run_process

TAIL_LINES = 20
TAIL_LINE_CHARS = 500


class FlowctlFailure(TaskFailure):
    """A failed attempt with what is known of its result (exit code, output tail)."""

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result


class TailingContext:
    """A task context that also keeps the last lines the command printed."""

    def __init__(self, ctx: TaskContext, lines: int = TAIL_LINES) -> None:
        self._ctx = ctx
        self.tail: deque[str] = deque(maxlen=lines)
        self.execution: Execution = ctx.execution
        self.task_run: TaskRun = ctx.task_run
        self.attempt_number: int = ctx.attempt_number

    @property
    def workdir(self) -> Path:
        return self._ctx.workdir

    def create_workdir(self) -> Path:
        return self._ctx.create_workdir()

    def prepare_next_workdir(self) -> None:
        self._ctx.prepare_next_workdir()

    @property
    def services(self) -> Any:
        return self._ctx.services

    def render(self, value: Any) -> Any:
        return self._ctx.render(value)

    def render_context(self) -> Mapping[str, Any]:
        return self._ctx.render_context()

    def log(self, level: str, message: str) -> None:
        self.log_lines(level, [message])

    def log_lines(self, level: str, lines: list[str]) -> None:
        self.tail.extend(line[:TAIL_LINE_CHARS] for line in lines[-TAIL_LINES:])
        self._ctx.log_lines(level, lines)

    def log_backlogged(self) -> bool:
        return self._ctx.log_backlogged()

    async def log_room(self) -> None:
        await self._ctx.log_room()

    def output(self) -> str:
        return "\n".join(self.tail)


def as_text(value: Any) -> str:
    """A payload scalar as a command sees it: strings as they are, others as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def environment(ctx: TaskContext, *layers: Mapping[str, Any] | None) -> dict[str, str]:
    """The engine's task environment, the FlowCtl variables, then each layer on top."""
    env = dict(ctx.services.task_env)
    labels = dict(ctx.execution.labels)
    task = ctx.task_run
    env["FLOWCTL_WORKFLOW_ID"] = labels.get("flowctl.workflow_id", "")
    env["FLOWCTL_TASK_RUN_ID"] = task.id
    for layer in layers:
        for key, value in (layer or {}).items():
            env[str(key)] = as_text(value)
    return env


async def run_command(ctx: TaskContext, argv: list[str], env: dict[str, str],
                      cwd: Path) -> dict[str, Any]:
    """Run argv; the result is `exit_code` and `output` (the last lines), plus `outputs`
    when the command printed `::{"outputs": {...}}::` lines. A non-zero exit raises
    FlowctlFailure carrying that result."""
    tailing = TailingContext(ctx)
    try:
        outputs = await run_process(tailing, argv, env, cwd,
                                    while_running=ctx.prepare_next_workdir)
    except CommandFailed as exc:
        raise FlowctlFailure(str(exc), {"exit_code": exc.exit_code,
                                        "output": tailing.output()}) from None
    result: dict[str, Any] = {"exit_code": outputs.get("exitCode", 0),
                              "output": tailing.output()}
    if outputs.get("vars"):
        result["outputs"] = outputs["vars"]
    return result


#: Clones with dulwich in a child process, so a kill stops it like any command and its
#: progress lands in the task's log. argv: source, target directory, branch ("" = default).
CLONE_SCRIPT = """\
import sys
from dulwich import porcelain
source, target, branch = sys.argv[1], sys.argv[2], sys.argv[3] or None
try:
    repo = porcelain.clone(source, target, branch=branch, errstream=sys.stderr.buffer)
except Exception as exc:
    message = str(exc) or type(exc).__name__
    print(f"clone failed: {type(exc).__name__}: {message}", file=sys.stderr)
    sys.exit(2)
try:
    head = repo.head().decode()
finally:
    repo.close()
print('::{"outputs": {"commit": "%s"}}::' % head)
"""
