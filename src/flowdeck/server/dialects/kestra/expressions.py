"""Kestra's expression evaluation: `POST /executions/{id}/actions/eval` and
`…/actions/eval/{taskRunId}` (1.x: `/executions/{id}/eval/{taskRunId}`), the template as a
`text/plain` body; 200 with `{"result"}`, or `{"error"}` when it cannot render
(`engine/expression_eval.py`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from flowdeck.core.errors import ValidationError
from flowdeck.engine.expression_eval import evaluate
from flowdeck.server.access import OPERATOR
from flowdeck.server.deps import get_engine

router = APIRouter(tags=["executions"], dependencies=OPERATOR)


async def _evaluate(request: Request, execution_id: str,
                    task_run_id: str | None) -> JSONResponse:
    try:
        expression = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError([("body", "the expression must be UTF-8 text")]) from None
    outcome = await evaluate(get_engine(request), execution_id, expression, task_run_id)
    answer = {"result": outcome.result} if outcome.error is None else {"error": outcome.error}
    return JSONResponse(answer)


@router.post("/executions/{execution_id}/actions/eval",
             summary="Render an expression with the execution's variables (text/plain body)")
async def eval_execution(request: Request, execution_id: str) -> JSONResponse:
    return await _evaluate(request, execution_id, None)


@router.post("/executions/{execution_id}/actions/eval/{task_run_id}",
             summary="Render an expression as a task run sees it (text/plain body)")
async def eval_task_run_v2(request: Request, execution_id: str,
                           task_run_id: str) -> JSONResponse:
    return await _evaluate(request, execution_id, task_run_id)


@router.post("/executions/{execution_id}/eval/{task_run_id}",
             summary="Render an expression as a task run sees it (1.x path)")
async def eval_task_run_v1(request: Request, execution_id: str,
                           task_run_id: str) -> JSONResponse:
    return await _evaluate(request, execution_id, task_run_id)
