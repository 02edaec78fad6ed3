"""Flowable tasks: they orchestrate children through the runner's walker and have no attempts.

Parallel, Sequential, If and ForEach shape the run; Pause waits for a person (or its
`pauseDuration`); Subflow starts a child execution and waits for it.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from flowdeck.core.errors import FlowdeckError
from flowdeck.engine.inputs import InputDef, coerce
from flowdeck.engine.tasks.base import Duration, FlowableTask, TaskContext, TaskDef


class Sequential(FlowableTask):
    """Runs its tasks one after another."""

    tasks: list[Any] = Field(default_factory=list)
    child_fields = ("tasks",)
    required_children = ("tasks",)

    async def orchestrate(self, ctx: TaskContext, walker: Any) -> str:
        state: str = await walker.run_block(self.tasks, ctx.task_run)
        return state


class Parallel(FlowableTask):
    """Runs its tasks at the same time, at most `concurrent` at once (0 = no limit)."""

    tasks: list[Any] = Field(default_factory=list)
    concurrent: int = Field(default=0, ge=0)
    child_fields = ("tasks",)
    required_children = ("tasks",)

    async def orchestrate(self, ctx: TaskContext, walker: Any) -> str:
        branches = [([t], None, None) for t in self.tasks]
        state: str = await walker.run_concurrently(branches, ctx.task_run, self.concurrent)
        return state


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "null", "none", "no")
    return bool(value)


class If(FlowableTask):
    """Runs `then` when `condition` renders true, `else` otherwise."""

    condition: str
    then: list[Any] = Field(default_factory=list)
    else_: list[Any] = Field(default_factory=list, alias="else")
    child_fields = ("then", "else_")
    required_children = ("then",)

    async def orchestrate(self, ctx: TaskContext, walker: Any) -> str:
        chosen = _truthy(ctx.render(self.condition))
        ctx.task_run.outputs = {"evaluationResult": chosen}
        block = self.then if chosen else self.else_
        if not block:
            return "SUCCESS"
        state: str = await walker.run_block(block, ctx.task_run)
        return state


class ForEach(FlowableTask):
    """Runs its tasks once per value; `concurrencyLimit` iterations at once (0 = no limit)."""

    values: Any
    concurrencyLimit: int = Field(default=1, ge=0)
    tasks: list[Any] = Field(default_factory=list)
    child_fields = ("tasks",)
    required_children = ("tasks",)

    def resolve_values(self, ctx: TaskContext) -> list[Any]:
        raw = ctx.render(self.values)
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                raise FlowdeckError(f"values must be a list or a JSON array, got {raw!r}") from None
        if not isinstance(raw, list):
            raise FlowdeckError(f"values must be a list, got {type(raw).__name__}")
        return raw

    async def orchestrate(self, ctx: TaskContext, walker: Any) -> str:
        values = self.resolve_values(ctx)
        branches = [
            (self.tasks, v if isinstance(v, str) else json.dumps(v), i)
            for i, v in enumerate(values)
        ]
        state: str = await walker.run_concurrently(branches, ctx.task_run, self.concurrencyLimit)
        return state


class Pause(FlowableTask):
    """Pauses the execution until resumed; `pauseDuration` resumes it by itself."""

    pauseDuration: Duration | None = None
    delay: Duration | None = None
    onResume: list[InputDef] = Field(default_factory=list)
    behavior: str = "RESUME"
    tasks: list[Any] = Field(default_factory=list)
    child_fields = ("tasks",)

    async def orchestrate(self, ctx: TaskContext, walker: Any) -> str:
        duration = self.pauseDuration or self.delay or self.timeout
        decision = await walker.wait_for_decision(ctx, duration)
        if decision.kind == "timeout":
            behavior = self.behavior.upper()
            if behavior == "FAIL":
                ctx.log("ERROR", "pause duration elapsed: failing as configured")
                return "FAILED"
            if behavior == "WARN":
                return "WARNING"
            if behavior == "CANCEL":
                return "CANCELLED"
            ctx.log("INFO", "pause duration elapsed: resuming")
            defaults = {i.id: coerce(i, i.defaults) for i in self.onResume
                        if i.defaults is not None}
            ctx.task_run.outputs = {"onResume": defaults}
        else:
            ctx.task_run.outputs = {"onResume": decision.inputs}
        if self.tasks:
            state: str = await walker.run_block(self.tasks, ctx.task_run)
            return state
        return "SUCCESS"


class Subflow(FlowableTask):
    """Starts another flow's execution; waits for it unless `wait: false`."""

    namespace: str
    flowId: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] | list[dict[str, str]] = Field(default_factory=dict)
    wait: bool = True
    transmitFailed: bool = True
    inheritLabels: bool = False
    revision: int | None = None

    async def orchestrate(self, ctx: TaskContext, walker: Any) -> str:
        state: str = await walker.run_subflow(ctx, self)
        return state


TASKS: dict[str, type[TaskDef]] = {
    "io.kestra.plugin.core.flow.Sequential": Sequential,
    "io.kestra.plugin.core.flow.Parallel": Parallel,
    "io.kestra.plugin.core.flow.If": If,
    "io.kestra.plugin.core.flow.ForEach": ForEach,
    "io.kestra.plugin.core.flow.Pause": Pause,
    "io.kestra.plugin.core.flow.Subflow": Subflow,
}
