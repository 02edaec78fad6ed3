"""Every task type flowdeck runs, by its Kestra name, plus the legacy aliases Kestra accepts."""

from __future__ import annotations

from flowdeck.engine.flowctl import tasks as flowctl
from flowdeck.engine.forge import tasks as forge
from flowdeck.engine.tasks import agents, approval, core, flowable, http, kv, shell, staging
from flowdeck.engine.tasks.base import TaskDef

_MODULES = (core, shell, flowable, http, kv, approval, staging, agents, forge, flowctl)

TASK_TYPES: dict[str, type[TaskDef]] = {}
for _module in _MODULES:
    TASK_TYPES.update(_module.TASKS)

ALIASES: dict[str, str] = {
    "io.kestra.core.tasks.log.Log": "io.kestra.plugin.core.log.Log",
    "io.kestra.core.tasks.flows.Pause": "io.kestra.plugin.core.flow.Pause",
    "io.kestra.core.tasks.flows.Parallel": "io.kestra.plugin.core.flow.Parallel",
    "io.kestra.core.tasks.flows.Sequential": "io.kestra.plugin.core.flow.Sequential",
    "io.kestra.core.tasks.flows.If": "io.kestra.plugin.core.flow.If",
    "io.kestra.core.tasks.flows.ForEach": "io.kestra.plugin.core.flow.ForEach",
    "io.kestra.core.tasks.flows.EachSequential": "io.kestra.plugin.core.flow.ForEach",
    "io.kestra.core.tasks.flows.Subflow": "io.kestra.plugin.core.flow.Subflow",
    "io.kestra.core.tasks.flows.Flow": "io.kestra.plugin.core.flow.Subflow",
    "io.kestra.core.tasks.executions.Fail": "io.kestra.plugin.core.execution.Fail",
    "io.kestra.plugin.core.flow.Fail": "io.kestra.plugin.core.execution.Fail",
    "io.kestra.core.tasks.scripts.Bash": "io.kestra.plugin.scripts.shell.Commands",
    "io.kestra.plugin.core.output.OutputValues": "io.kestra.plugin.core.output.OutputValues",
    "io.kestra.core.tasks.debugs.Return": "io.kestra.plugin.core.debug.Return",
    "io.kestra.plugin.core.http.Request": "io.kestra.plugin.core.http.Request",
}


def canonical_type(name: str) -> str:
    return ALIASES.get(name, name)
