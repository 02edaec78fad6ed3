"""Core tasks that need no outside world: Log, Fail, OutputValues, Return, Sleep."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import Field

from flowdeck.engine.tasks.base import Duration, RunnableTask, TaskContext, TaskFailure

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")


class Log(RunnableTask):
    """Writes one log line per message."""

    message: str | list[str]
    level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] = "INFO"

    async def execute(self, ctx: TaskContext) -> dict[str, Any] | None:
        messages = self.message if isinstance(self.message, list) else [self.message]
        ctx.log_lines(self.level, [str(ctx.render(m)) for m in messages])
        return None


class Fail(RunnableTask):
    """Fails the execution on purpose, optionally only when `condition` renders true."""

    errorMessage: str = "Task failure"
    condition: str | None = None

    async def execute(self, ctx: TaskContext) -> dict[str, Any] | None:
        if self.condition is not None:
            rendered = str(ctx.render(self.condition)).strip().lower()
            if rendered in ("", "false", "0", "none", "null"):
                return None
        raise TaskFailure(str(ctx.render(self.errorMessage)))


class OutputValues(RunnableTask):
    """Publishes rendered values as `outputs.<id>.values.<key>`."""

    values: dict[str, Any] = Field(default_factory=dict)

    async def execute(self, ctx: TaskContext) -> dict[str, Any] | None:
        return {"values": ctx.render(self.values)}


class Return(RunnableTask):
    """Kestra's debug Return: renders `format` into `outputs.<id>.value`."""

    format: str | None = None

    async def execute(self, ctx: TaskContext) -> dict[str, Any] | None:
        return {"value": ctx.render(self.format) if self.format is not None else None}


class Sleep(RunnableTask):
    """Waits for `duration`; killing the execution cuts the wait short."""

    duration: Duration

    async def execute(self, ctx: TaskContext) -> dict[str, Any] | None:
        await asyncio.sleep(self.duration.total_seconds())
        return None


TASKS: dict[str, type[RunnableTask]] = {
    "io.kestra.plugin.core.log.Log": Log,
    "io.kestra.plugin.core.execution.Fail": Fail,
    "io.kestra.plugin.core.output.OutputValues": OutputValues,
    "io.kestra.plugin.core.debug.Return": Return,
    "io.kestra.plugin.core.flow.Sleep": Sleep,
}
