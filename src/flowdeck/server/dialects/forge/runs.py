"""Pipeline runs (`/v1/runs`), a step's log lines, and the workers' internal status updates.

A run is an execution of the repository's pipeline flow; its steps' `logs_url` is made absolute
on this server. `PUT /v1/tasks/{id}/status` and `/v1/steps/{id}/status` are for worker service
accounts only (the `service` role), and only on `flowdeck.pipeline.External` tasks (anything
the engine runs itself answers 409).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from flowdeck.core.errors import ValidationError
from flowdeck.core.forge import PipelineRun
from flowdeck.server.access import OPERATOR, SERVICE, VIEWER, Caller
from flowdeck.server.deps import EngineDep
from flowdeck.server.dialects.forge.common import body, given, listing, page, who

router = APIRouter(tags=["forge"])


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def run_document(run: PipelineRun, request: Request) -> dict[str, Any]:
    """`GET /v1/runs/{id}`: the document's shape, each step's `logs_url` absolute."""
    doc = run.to_dict()
    base = base_url(request)
    for phase in doc["phases"]:
        for task in phase["tasks"]:
            for step in task["steps"]:
                if step["logs_url"].startswith("/"):
                    step["logs_url"] = base + step["logs_url"]
    return doc


@router.post("/v1/runs", status_code=201, dependencies=OPERATOR)
async def create_run(request: Request, engine: EngineDep, caller: Caller) -> dict[str, Any]:
    data = await body(request)
    run = await engine.forge.create_run(
        given(data, "repository"), given(data, "branch"), given(data, "commit_sha"),
        given(data, "triggered_by") or who(caller), given(data, "trigger_type") or "manual",
        by=who(caller))
    return run.created()


@router.get("/v1/runs", dependencies=VIEWER)
async def list_runs(request: Request, engine: EngineDep) -> dict[str, Any]:
    repository = request.query_params.get("repository")
    if not repository:
        raise ValidationError([("repository", "is required (owner/name)")])
    branch = request.query_params.get("branch") or None
    limit, offset = page(request)
    found = await engine.forge.list_runs(repository, branch, limit, offset)
    return listing("runs", [run.summary() for run in found.items], found.total, found.limit,
                   found.offset)


@router.get("/v1/runs/{run_id}", dependencies=VIEWER)
async def get_run(run_id: str, request: Request, engine: EngineDep) -> dict[str, Any]:
    return run_document(await engine.forge.get_run(run_id), request)


@router.delete("/v1/runs/{run_id}", status_code=204, dependencies=OPERATOR)
async def cancel_run(run_id: str, engine: EngineDep) -> Response:
    await engine.forge.cancel_run(run_id)
    return Response(status_code=204)


@router.get("/v1/runs/{run_id}/steps/{step_id}/logs", dependencies=VIEWER)
async def step_logs(run_id: str, step_id: str, engine: EngineDep) -> PlainTextResponse:
    text = await engine.forge.step_logs(run_id, step_id)
    return PlainTextResponse(text, media_type="text/plain; charset=utf-8")


# -- internal: workers report back ----------------------------------------------------------


@router.put("/v1/tasks/{task_id}/status", dependencies=SERVICE)
async def task_status(task_id: str, request: Request, engine: EngineDep) -> dict[str, Any]:
    data = await body(request)
    task = await engine.forge.update_task_status(task_id, given(data, "status"),
                                                 given(data, "error"))
    return {**task.to_dict(), "error": task.error}


@router.put("/v1/steps/{step_id}/status", dependencies=SERVICE)
async def step_status(step_id: str, request: Request, engine: EngineDep) -> dict[str, Any]:
    data = await body(request)
    step = await engine.forge.update_step_status(step_id, given(data, "status"),
                                                 given(data, "exit_code"),
                                                 data.get("logs_s3_key"))
    return {**step.to_dict(), "logs_s3_key": step.logs_s3_key}
