"""Flow and task-run outputs (Kestra 2.0 `OutputController`, and spec 001's task-run route).

2.0 dropped outputs from the execution payload; clients read them here instead:
`/outputs/executions/{id}` (the flow outputs map), `/outputs/tasks/{id}` (which task runs
have outputs) and `/outputs/tasks/{id}/{taskRunId}` (one task run's outputs map). Spec 001
names the last one `/executions/{id}/taskruns/{taskRunId}/outputs`. Unknown ids are 404s.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from flowdeck.core.errors import NotFoundError
from flowdeck.server.access import VIEWER
from flowdeck.server.deps import get_engine

router = APIRouter(tags=["outputs"], dependencies=VIEWER)


@router.get("/outputs/executions/{execution_id}")
async def execution_outputs(execution_id: str, request: Request) -> dict[str, Any]:
    execution = await get_engine(request).get_execution(execution_id)
    return execution.outputs or {}


@router.get("/outputs/tasks/{execution_id}")
async def task_outputs_information(execution_id: str, request: Request
                                   ) -> list[dict[str, Any]]:
    execution = await get_engine(request).get_execution(execution_id)
    out = []
    for tr in execution.task_runs:
        if tr.outputs is None:
            continue
        info: dict[str, Any] = {"taskId": tr.task_id, "taskRunId": tr.id}
        if tr.value is not None:
            info["value"] = tr.value
        if tr.iteration is not None:
            info["iteration"] = tr.iteration
        info["inline"] = True  # outputs live in the execution record, not in storage
        out.append(info)
    return out


async def _task_run_outputs(request: Request, execution_id: str,
                            task_run_id: str) -> dict[str, Any]:
    execution = await get_engine(request).get_execution(execution_id)
    task_run = execution.find_task_run(task_run_id)
    if task_run is None:
        raise NotFoundError(f"no task run '{task_run_id}' in execution '{execution_id}'")
    return task_run.outputs or {}


@router.get("/outputs/tasks/{execution_id}/{task_run_id}")
async def task_run_outputs(execution_id: str, task_run_id: str,
                           request: Request) -> dict[str, Any]:
    return await _task_run_outputs(request, execution_id, task_run_id)


@router.get("/executions/{execution_id}/taskruns/{task_run_id}/outputs")
async def task_run_outputs_spec(execution_id: str, task_run_id: str,
                                request: Request) -> dict[str, Any]:
    return await _task_run_outputs(request, execution_id, task_run_id)
