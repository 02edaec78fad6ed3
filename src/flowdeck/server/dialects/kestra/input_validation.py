"""Kestra's input validation: `POST /executions/{namespace}/{flowId}/validate` (a new
execution's inputs and labels) and `POST /executions/{id}/actions/resume/validate` (1.x:
`/executions/{id}/resume/validate`, a paused execution's `onResume` inputs), multipart as
create and resume take them. Nothing is created or resumed; uploaded files are dropped.

The answer is Kestra's `{id, namespace, inputs: [{input, value, enabled, isDefault, errors}],
checks}`: every declared input, with its problems (`engine/input_check.py`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from flowdeck.engine.input_check import InputsCheck
from flowdeck.server.access import OPERATOR
from flowdeck.server.deps import Uploads, get_engine
from flowdeck.server.dialects.kestra.common import labels_param
from flowdeck.server.dialects.kestra.executions import revision_param

router = APIRouter(tags=["executions"], dependencies=OPERATOR)


def present(check: InputsCheck) -> dict[str, Any]:
    inputs = []
    for item in check.inputs:
        entry: dict[str, Any] = {"input": item.declaration, "enabled": item.enabled,
                                 "isDefault": item.is_default,
                                 "errors": [{"message": message} for message in item.errors]}
        if item.value is not None:
            entry["value"] = item.value
        inputs.append(entry)
    return {"id": check.flow_id, "namespace": check.namespace, "inputs": inputs, "checks": []}


async def _with_inputs(request: Request,
                       check: Callable[[dict[str, Any]], Awaitable[InputsCheck]]
                       ) -> JSONResponse:
    uploads = Uploads(get_engine(request))
    try:
        return JSONResponse(present(await check(await uploads.read(request))))
    finally:
        uploads.discard()


async def _resume(request: Request, execution_id: str) -> JSONResponse:
    engine = get_engine(request)
    await engine.get_execution(execution_id)  # 404 before reading the body
    return await _with_inputs(
        request, lambda inputs: engine.executions.check_resume_inputs(execution_id, inputs))


@router.post("/executions/{execution_id}/actions/resume/validate",
             summary="Check the onResume inputs of a paused execution (multipart)")
async def validate_resume_v2(request: Request, execution_id: str) -> JSONResponse:
    return await _resume(request, execution_id)


@router.post("/executions/{execution_id}/resume/validate",
             summary="Check the onResume inputs of a paused execution (1.x path)")
async def validate_resume_v1(request: Request, execution_id: str) -> JSONResponse:
    return await _resume(request, execution_id)


@router.post("/executions/{namespace}/{flow_id}/validate",
             summary="Check a new execution's inputs and labels (multipart); nothing is created")
async def validate_new(request: Request, namespace: str, flow_id: str) -> JSONResponse:
    engine = get_engine(request)
    labels_param(request.query_params)  # a malformed label is refused as create refuses it
    revision = revision_param(request)
    await engine.get_flow_revision(namespace, flow_id, revision)  # 404 before the body
    return await _with_inputs(request, lambda inputs: engine.executions.check_inputs(
        namespace, flow_id, inputs, revision))
