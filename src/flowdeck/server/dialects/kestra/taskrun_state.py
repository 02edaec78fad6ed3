"""Kestra's task-run state change: `POST /executions/{id}/actions/state` (2.x) and `POST
/executions/{id}/state` (1.x), body `{"taskRunId", "state"}`; 200 with the Execution. And
`…/actions/resume-from-breakpoint` (1.x `…/resume-from-breakpoint`): flowdeck sets no
breakpoints, so it is always Kestra's 409 for an execution not stopped at one.

The task run ends in the state given (SUCCESS, WARNING or FAILED) and the finished execution
goes on from there as its next attempt (`ExecutionService.set_task_run_state`). The 1.x path has
the shape of create, so it is resolved as the other 1.x actions are (`actions.legacy_json`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from flowdeck.core.errors import ValidationError
from flowdeck.server.access import OPERATOR
from flowdeck.server.deps import get_engine
from flowdeck.server.dialects.kestra.actions import legacy_json
from flowdeck.server.dialects.kestra.bodies import json_value
from flowdeck.server.dialects.kestra.executions import Doc, as_json

router = APIRouter(tags=["executions"], dependencies=OPERATOR)
EXPECTED = '{"taskRunId": "...", "state": "SUCCESS"}'


async def do_set_state(request: Request, execution_id: str) -> Doc:
    body = await json_value(request, EXPECTED)
    task_run_id = body.get("taskRunId") if isinstance(body, dict) else None
    state = body.get("state") if isinstance(body, dict) else None
    if not isinstance(task_run_id, str) or not task_run_id or not isinstance(state, str):
        raise ValidationError([("body", f"expected {EXPECTED}")])
    engine = get_engine(request)
    execution = await engine.executions.set_task_run_state(
        execution_id, task_run_id, state.strip().upper())
    return as_json(engine, execution)


@router.post("/executions/{execution_id}/actions/state",
             summary="Set a task run's state and go on from it (finished executions)")
async def set_state_v2(request: Request, execution_id: str) -> JSONResponse:
    return JSONResponse(await do_set_state(request, execution_id))


@router.post("/executions/{execution_id}/state", summary="Set a task run's state (1.x path)")
async def set_state_v1(request: Request, execution_id: str) -> Response:
    return await legacy_json(request, execution_id, "state", do_set_state)


async def do_resume_from_breakpoint(request: Request, execution_id: str) -> Doc:
    engine = get_engine(request)
    return as_json(engine, await engine.executions.resume_from_breakpoint(execution_id))


@router.post("/executions/{execution_id}/actions/resume-from-breakpoint",
             summary="Resume from a breakpoint (flowdeck sets none: 409)")
async def resume_from_breakpoint_v2(request: Request, execution_id: str) -> JSONResponse:
    return JSONResponse(await do_resume_from_breakpoint(request, execution_id))


@router.post("/executions/{execution_id}/resume-from-breakpoint",
             summary="Resume from a breakpoint (1.x path)")
async def resume_from_breakpoint_v1(request: Request, execution_id: str) -> Response:
    return await legacy_json(request, execution_id, "resume-from-breakpoint",
                             do_resume_from_breakpoint)
