"""Kestra's execution actions: kill, pause, resume, restart, replay, labels, change-status.

Served in both styles:

- 2.x, `/executions/{id}/actions/<action>`, answers 200 with the Execution JSON (kestrapy 2.x
  calls `resp.json()` on every one of them);
- 1.x, `/executions/{id}/<action>`, answers as 1.x did: kill 202 and pause 200 with an empty
  body, resume 204, the others 200 with the Execution JSON.

A 1.x action path has the same shape as create (`POST /executions/{namespace}/{flowId}`);
like Kestra, the action wins, unless no execution has that id and a flow of that namespace and
id exists, in which case it is a create.

Every action needs the operator role; resuming an execution that waits on an approval decides
that approval, so the engine asks for the approver role then.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from flowdeck.core.errors import (
    BadRequestError,
    ConflictError,
    FlowdeckError,
    NotFoundError,
    ValidationError,
)
from flowdeck.core.states import is_terminal
from flowdeck.server.access import OPERATOR, current_identity
from flowdeck.server.deps import Uploads, bool_param, get_engine, json_value
from flowdeck.server.dialects.kestra.executions import (
    Doc,
    as_json,
    create,
    no_breakpoints,
    revision_param,
)

router = APIRouter(tags=["executions"], dependencies=OPERATOR)

Action = Callable[[Request, str], Awaitable[Doc]]
UNNAMED_KINDS = frozenset({"anonymous", "open"})


async def do_kill(request: Request, execution_id: str) -> Doc:
    engine = get_engine(request)
    cascade = bool_param(request.query_params, "isOnKillCascade", True)
    try:
        return as_json(engine, await engine.kill(execution_id))
    except ConflictError:
        current = await engine.get_execution(execution_id)
        if cascade and is_terminal(current.state.current):
            return as_json(engine, current)  # Kestra re-emits the kill; nothing is left to stop
        raise


async def do_pause(request: Request, execution_id: str) -> Doc:
    engine = get_engine(request)
    return as_json(engine, await engine.pause(execution_id))


async def do_resume(request: Request, execution_id: str) -> Doc:
    engine = get_engine(request)
    caller = await current_identity(request)
    await engine.get_execution(execution_id)  # 404 before reading the body
    uploads = Uploads(engine)
    try:
        inputs = await uploads.read(request)
        named = caller.kind not in UNNAMED_KINDS
        resumed = await engine.resume_and_wait(
            execution_id, inputs, by=caller.name if named else None,
            role=caller.role if named else None)
    except BaseException:
        uploads.discard()
        raise
    return as_json(engine, resumed)


async def do_restart(request: Request, execution_id: str) -> Doc:
    engine = get_engine(request)
    revision = revision_param(request)
    task_run_id = request.query_params.get("taskRunId") or None
    execution = await engine.get_execution(execution_id)
    if revision is not None and revision != execution.flow_revision:
        raise ValidationError([("revision", f"a restart runs revision {execution.flow_revision}"
                                            " of the flow again; use replay?revision= to run "
                                            "another revision")])
    await engine.settled(execution_id)
    return as_json(engine, await engine.restart(execution_id, task_run_id=task_run_id))


async def do_replay(request: Request, execution_id: str) -> Doc:
    engine = get_engine(request)
    no_breakpoints(request)
    revision = revision_param(request)
    task_run_id = request.query_params.get("taskRunId") or None
    await engine.settled(execution_id)
    replay = await engine.replay(execution_id, task_run_id=task_run_id, revision=revision)
    return as_json(engine, replay)


async def do_replay_with_inputs(request: Request, execution_id: str) -> Doc:
    engine = get_engine(request)
    no_breakpoints(request)
    revision = revision_param(request)
    task_run_id = request.query_params.get("taskRunId") or None
    source = await engine.settled(execution_id)
    uploads = Uploads(engine)
    try:
        given = await uploads.read(request)
        # The parts given replace those inputs; the others keep their original values.
        inputs = {**source.inputs, **given}
        replay = await engine.replay(execution_id, task_run_id=task_run_id, revision=revision,
                                     inputs=inputs)
    except BaseException:
        uploads.discard()
        raise
    return as_json(engine, replay)


async def label_body(request: Request) -> list[tuple[str, str]]:
    body = await json_value(request)
    if not isinstance(body, list):
        raise ValidationError([("body", 'must be a JSON list of {"key": ..., "value": ...}')])
    labels = []
    for i, item in enumerate(body):
        if not isinstance(item, dict):
            raise ValidationError([(f"[{i}]", 'must be an object {"key": ..., "value": ...}')])
        key, value = item.get("key"), item.get("value")
        if not isinstance(key, str) or not key.strip():
            raise ValidationError([(f"[{i}].key", "must be a non-empty string")])
        if value is None or isinstance(value, dict | list):
            raise ValidationError([(f"[{i}].value", "must be a string")])
        labels.append((key, value if isinstance(value, str) else json.dumps(value)))
    return labels


async def do_labels(request: Request, execution_id: str) -> Doc:
    engine = get_engine(request)
    execution = await engine.get_execution(execution_id)
    if not is_terminal(execution.state.current):
        raise BadRequestError(f"execution {execution_id} is {execution.state.current}; labels "
                              "can only be set on a terminated execution")
    labels = await label_body(request)
    await engine.settled(execution_id)
    return as_json(engine, await engine.set_labels(execution_id, labels))


async def do_change_status(request: Request, execution_id: str) -> Doc:
    engine = get_engine(request)
    status = (request.query_params.get("status") or "").strip().upper()
    if not status:
        raise BadRequestError("query parameter 'status' is required, e.g. ?status=SUCCESS")
    await engine.settled(execution_id)
    return as_json(engine, await engine.change_status(execution_id, status))


# -- 2.x: /executions/{id}/actions/<action> → 200 + Execution --------------------------------


@router.delete("/executions/{execution_id}/actions/kill", summary="Kill an execution")
async def kill_v2(request: Request, execution_id: str) -> JSONResponse:
    return JSONResponse(await do_kill(request, execution_id))


@router.post("/executions/{execution_id}/actions/pause", summary="Pause a running execution")
async def pause_v2(request: Request, execution_id: str) -> JSONResponse:
    return JSONResponse(await do_pause(request, execution_id))


@router.post("/executions/{execution_id}/actions/resume",
             summary="Resume a paused execution (optional multipart onResume inputs)")
async def resume_v2(request: Request, execution_id: str) -> JSONResponse:
    return JSONResponse(await do_resume(request, execution_id))


@router.post("/executions/{execution_id}/actions/restart",
             summary="Restart a failed execution (?taskRunId= restarts from that task run)")
async def restart_v2(request: Request, execution_id: str) -> JSONResponse:
    return JSONResponse(await do_restart(request, execution_id))


@router.post("/executions/{execution_id}/actions/replay",
             summary="Replay as a new execution (?taskRunId=&revision=)")
async def replay_v2(request: Request, execution_id: str) -> JSONResponse:
    return JSONResponse(await do_replay(request, execution_id))


@router.post("/executions/{execution_id}/actions/replay-with-inputs",
             summary="Replay with new inputs (multipart)")
async def replay_with_inputs_v2(request: Request, execution_id: str) -> JSONResponse:
    return JSONResponse(await do_replay_with_inputs(request, execution_id))


@router.post("/executions/{execution_id}/actions/labels",
             summary='Set labels on a terminated execution: [{"key","value"}]')
async def labels_v2(request: Request, execution_id: str) -> JSONResponse:
    return JSONResponse(await do_labels(request, execution_id))


@router.post("/executions/{execution_id}/actions/change-status",
             summary="Change the final status of a terminated execution (?status=)")
async def change_status_v2(request: Request, execution_id: str) -> JSONResponse:
    return JSONResponse(await do_change_status(request, execution_id))


# -- 1.x: /executions/{id}/<action> ----------------------------------------------------------


async def legacy_post(request: Request, execution_id: str, action_name: str,
                      action: Action) -> Doc | JSONResponse:
    """Run a 1.x action, or a create when the path names a flow and no execution."""
    engine = get_engine(request)
    try:
        await engine.get_execution(execution_id)
    except NotFoundError:
        try:
            engine.get_flow(execution_id, action_name)
        except FlowdeckError:
            raise NotFoundError(f"no execution '{execution_id}'") from None
        return await create(request, execution_id, action_name)
    return await action(request, execution_id)


@router.delete("/executions/{execution_id}/kill", status_code=202,
               summary="Kill an execution (1.x: 202, empty body)")
async def kill_v1(request: Request, execution_id: str) -> Response:
    await do_kill(request, execution_id)
    return Response(status_code=202)


@router.post("/executions/{execution_id}/pause", summary="Pause (1.x: 200, empty body)")
async def pause_v1(request: Request, execution_id: str) -> Response:
    result = await legacy_post(request, execution_id, "pause", do_pause)
    return result if isinstance(result, Response) else Response(status_code=200)


@router.post("/executions/{execution_id}/resume", status_code=204,
             summary="Resume (1.x: 204, optional multipart onResume inputs)")
async def resume_v1(request: Request, execution_id: str) -> Response:
    result = await legacy_post(request, execution_id, "resume", do_resume)
    return result if isinstance(result, Response) else Response(status_code=204)


async def legacy_json(request: Request, execution_id: str, name: str,
                      action: Action) -> Response:
    result = await legacy_post(request, execution_id, name, action)
    return result if isinstance(result, Response) else JSONResponse(result)


@router.post("/executions/{execution_id}/restart", summary="Restart (1.x path)")
async def restart_v1(request: Request, execution_id: str) -> Response:
    return await legacy_json(request, execution_id, "restart", do_restart)


@router.post("/executions/{execution_id}/replay", summary="Replay (1.x path)")
async def replay_v1(request: Request, execution_id: str) -> Response:
    return await legacy_json(request, execution_id, "replay", do_replay)


@router.post("/executions/{execution_id}/replay-with-inputs",
             summary="Replay with new inputs (1.x path)")
async def replay_with_inputs_v1(request: Request, execution_id: str) -> Response:
    return await legacy_json(request, execution_id, "replay-with-inputs", do_replay_with_inputs)


@router.post("/executions/{execution_id}/labels", summary="Set labels (1.x path)")
async def labels_v1(request: Request, execution_id: str) -> Response:
    return await legacy_json(request, execution_id, "labels", do_labels)


@router.post("/executions/{execution_id}/change-status", summary="Change status (1.x path)")
async def change_status_v1(request: Request, execution_id: str) -> Response:
    return await legacy_json(request, execution_id, "change-status", do_change_status)
