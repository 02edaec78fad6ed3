"""Kestra executions routes: create, get, search, delete, and the execution actions.

Actions are served in both styles:

- 2.x, `/executions/{id}/actions/<action>`, answers 200 with the Execution JSON (kestrapy 2.x
  calls `resp.json()` on every one of them);
- 1.x, `/executions/{id}/<action>`, answers as 1.x did: kill 202 and pause 200 with an empty
  body, resume 204, the others 200 with the Execution JSON.

A 1.x action path has the same shape as create (`POST /executions/{namespace}/{flowId}`);
like Kestra, the action wins, unless no execution has that id and a flow of that namespace and
id exists, in which case it is a create.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from flowdeck.core.errors import (
    BadRequestError,
    ConflictError,
    FlowdeckError,
    NotFoundError,
    ValidationError,
)
from flowdeck.core.ids import new_id
from flowdeck.core.models import Execution
from flowdeck.core.states import is_known, is_terminal
from flowdeck.engine.bus import EXECUTION
from flowdeck.engine.engine import Engine
from flowdeck.engine.query import ExecutionQuery
from flowdeck.server.dialects.kestra.common import (
    bool_param,
    execution_query,
    execution_url,
    get_engine,
    instant_param,
    int_param,
    labels_param,
    paged,
    read_inputs,
)

router = APIRouter(tags=["executions"])

#: How long `wait=true` holds a create request (Kestra: 1 h).
WAIT_TIMEOUT = 3600.0
#: How long an action on a just-finished execution waits for its runner to let go.
SETTLE_TIMEOUT = 10.0
#: How long resume waits for the resumed execution to leave PAUSED before it answers.
RESUME_SETTLE_TIMEOUT = 2.0
MAX_REVISION = 2**31 - 1
Doc = dict[str, Any]


def as_json(engine: Engine, execution: Execution) -> Doc:
    return execution.to_dict(engine.clock.now())


def revision_param(request: Request) -> int | None:
    return int_param(request.query_params, "revision", 0, high=MAX_REVISION) or None


def no_breakpoints(request: Request) -> None:
    if request.query_params.get("breakpoints"):
        raise ValidationError([("breakpoints", "breakpoints are not supported by flowdeck")])


class Uploads:
    """A per-request folder for uploaded FILE inputs, removed again if the request fails."""

    def __init__(self, engine: Engine) -> None:
        self.path = Path(engine.data_dir) / "uploads" / new_id()

    async def read(self, request: Request) -> dict[str, Any]:
        try:
            return await read_inputs(request, self.path)
        finally:
            await request.close()  # the multipart parser's spooled temporary files

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


async def settled(engine: Engine, execution_id: str) -> Execution:
    """The execution; if it is finished, once its runner has let go of it too."""
    execution = await engine.get_execution(execution_id)
    if is_terminal(execution.state.current) and execution_id in engine.runners:
        with contextlib.suppress(TimeoutError):  # then the engine's own check answers 409
            return await engine.wait_until_terminal(execution_id, timeout=SETTLE_TIMEOUT)
    return execution


# -- search ---------------------------------------------------------------------------------


def checked_states(query: ExecutionQuery) -> None:
    for attr in ("states", "exclude_states"):
        values = getattr(query, attr)
        if not values:
            continue
        upper = [v.upper() for v in values]
        unknown = [v for v in upper if not is_known(v)]
        if unknown:
            raise BadRequestError(f"unknown execution state '{unknown[0]}'")
        setattr(query, attr, upper)


async def run_search(request: Request, query: ExecutionQuery) -> JSONResponse:
    engine = get_engine(request)
    checked_states(query)
    executions, total = await engine.search_executions(query)
    now = engine.clock.now()
    return JSONResponse(paged([e.to_dict(now) for e in executions], total))


@router.get("/executions/search", summary="Search executions (filters[...] or legacy params)")
async def search_executions(request: Request) -> JSONResponse:
    engine = get_engine(request)
    return await run_search(request, execution_query(request.query_params, engine.clock.now()))


@router.get("/executions/{execution_id}", summary="Get an execution")
async def get_execution(request: Request, execution_id: str) -> Response:
    engine = get_engine(request)
    return Response(await engine.get_execution_json(execution_id),
                    media_type="application/json")


@router.get("/executions", summary="Executions of a flow: ?namespace=&flowId=&state=&page=&size=")
async def list_executions(request: Request) -> JSONResponse:
    engine = get_engine(request)
    params = request.query_params
    query = execution_query(params, engine.clock.now())
    if params.get("namespace") and not any(k.startswith("filters[namespace]")
                                           for k in params):
        query.namespace_mode = "EQUALS"  # by flow: this namespace, not its children
    return await run_search(request, query)


# -- create ---------------------------------------------------------------------------------


async def create(request: Request, namespace: str, flow_id: str) -> JSONResponse:
    engine = get_engine(request)
    params = request.query_params
    labels = labels_param(params)
    wait = bool_param(params, "wait")
    revision = revision_param(request)
    no_breakpoints(request)
    kind = params.get("kind")
    if kind and kind.upper() != "NORMAL":
        raise ValidationError([("kind", f"only NORMAL executions are supported, not '{kind}'")])
    schedule_date = None
    if params.get("scheduleDate"):
        schedule_date = instant_param("scheduleDate", params["scheduleDate"])
        if schedule_date > engine.clock.now() + timedelta(seconds=1):
            raise ValidationError([("scheduleDate", "executions scheduled for later are not "
                                                    "supported; use a Schedule trigger")])
    await engine.get_flow_revision(namespace, flow_id, revision)  # 404 before the body
    uploads = Uploads(engine)
    try:
        inputs = await uploads.read(request)
        execution = await engine.create_execution(
            namespace, flow_id, inputs=inputs, labels=labels, revision=revision,
            schedule_date=schedule_date)
    except BaseException:
        uploads.discard()
        raise
    doc = as_json(engine, execution)  # now, while it is CREATED
    if wait:
        try:
            doc = as_json(engine, await engine.wait_until_terminal(execution.id,
                                                                   timeout=WAIT_TIMEOUT))
        except TimeoutError:
            doc = await engine.get_execution_doc(execution.id)
    doc["url"] = execution_url(request, namespace, flow_id, execution.id)
    return JSONResponse(doc)


@router.post("/executions/trigger/{namespace}/{flow_id}", deprecated=True,
             summary="Create an execution (deprecated path)")
async def trigger_execution(request: Request, namespace: str, flow_id: str) -> JSONResponse:
    return await create(request, namespace, flow_id)


# -- actions, as functions shared by both path styles -----------------------------------------


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
    await engine.get_execution(execution_id)  # 404 before reading the body
    uploads = Uploads(engine)
    try:
        inputs = await uploads.read(request)
        subscription = engine.bus.subscribe(EXECUTION, execution_id=execution_id)
        try:
            resumed = await engine.resume(execution_id, inputs)
            if resumed.state.current != "PAUSED":
                return as_json(engine, resumed)
            # Kestra answers with the execution already RUNNING again; the engine's runner
            # makes that move a moment later, so wait (briefly) for it to be committed.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RESUME_SETTLE_TIMEOUT):
                    while True:
                        event = await subscription.get()
                        if event.state != "PAUSED":
                            return dict(event.doc)
        finally:
            subscription.close()
        return await engine.get_execution_doc(execution_id)
    except BaseException:
        uploads.discard()
        raise


async def do_restart(request: Request, execution_id: str) -> Doc:
    engine = get_engine(request)
    revision = revision_param(request)
    task_run_id = request.query_params.get("taskRunId") or None
    execution = await engine.get_execution(execution_id)
    if revision is not None and revision != execution.flow_revision:
        raise ValidationError([("revision", f"a restart runs revision {execution.flow_revision}"
                                            " of the flow again; use replay?revision= to run "
                                            "another revision")])
    await settled(engine, execution_id)
    return as_json(engine, await engine.restart(execution_id, task_run_id=task_run_id))


async def do_replay(request: Request, execution_id: str) -> Doc:
    engine = get_engine(request)
    no_breakpoints(request)
    revision = revision_param(request)
    task_run_id = request.query_params.get("taskRunId") or None
    await settled(engine, execution_id)
    replay = await engine.replay(execution_id, task_run_id=task_run_id, revision=revision)
    return as_json(engine, replay)


async def do_replay_with_inputs(request: Request, execution_id: str) -> Doc:
    engine = get_engine(request)
    no_breakpoints(request)
    revision = revision_param(request)
    task_run_id = request.query_params.get("taskRunId") or None
    source = await settled(engine, execution_id)
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
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise ValidationError([("body", f"invalid JSON: {reason}; send "
                                        '[{"key": "...", "value": "..."}]')]) from None
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
    await settled(engine, execution_id)
    return as_json(engine, await engine.set_labels(execution_id, labels))


async def do_change_status(request: Request, execution_id: str) -> Doc:
    engine = get_engine(request)
    status = (request.query_params.get("status") or "").strip().upper()
    if not status:
        raise BadRequestError("query parameter 'status' is required, e.g. ?status=SUCCESS")
    await settled(engine, execution_id)
    return as_json(engine, await engine.change_status(execution_id, status))


Action = Callable[[Request, str], Awaitable[Doc]]


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


# -- create, get, delete -----------------------------------------------------------------------


@router.post("/executions/{namespace}/{flow_id}",
             summary="Create an execution (optional multipart inputs; ?labels=k:v&wait=true)")
async def create_execution(request: Request, namespace: str, flow_id: str) -> JSONResponse:
    return await create(request, namespace, flow_id)


@router.delete("/executions/{execution_id}", status_code=204, summary="Delete an execution")
async def delete_execution(request: Request, execution_id: str) -> Response:
    engine = get_engine(request)
    await settled(engine, execution_id)
    await engine.delete_execution(execution_id)
    return Response(status_code=204)
