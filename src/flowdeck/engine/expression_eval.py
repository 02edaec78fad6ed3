"""Kestra's expression evaluation on an execution (`POST /executions/{id}/actions/eval[/
{taskRunId}]`): a template rendered with the variables the execution's tasks see (a task run's
own `task` and `taskrun` when one is named), to debug an expression without running anything.

SECRET inputs are the stored, masked values (`******`): an evaluation never shows one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowdeck.core.errors import NotFoundError
from flowdeck.engine.runner import ExecutionRunner
from flowdeck.engine.templating import TemplateError

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine


@dataclass(frozen=True, slots=True)
class EvalResult:
    result: str | None = None
    error: str | None = None


async def evaluate(engine: Engine, execution_id: str, expression: str,
                   task_run_id: str | None = None) -> EvalResult:
    execution = await engine.get_execution(execution_id)
    flow = await engine.flows.get_revision(execution.namespace, execution.flow_id,
                                           execution.flow_revision)
    runner = ExecutionRunner(engine, execution, flow)
    if task_run_id is None:
        context = runner.base_context()
    else:
        task_run = execution.find_task_run(task_run_id)
        task = flow.tasks_by_id.get(task_run.task_id) if task_run is not None else None
        if task_run is None or task is None:
            raise NotFoundError(f"no task run '{task_run_id}' in execution {execution_id}")
        context = runner.template_context(task, task_run)
    try:
        return EvalResult(result=engine.renderer.render(expression, context))
    except TemplateError as exc:
        return EvalResult(error=exc.reason)
