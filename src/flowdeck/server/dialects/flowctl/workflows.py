"""FlowCtl workflows and tasks: `/api/v1/workflows...`, `/api/v1/tasks/{id}`.

Each route parses, makes one `engine.flowctl` call and answers the spec's shape:

- `POST /workflows`: 201 with the whole workflow, queued at once; a definition the engine
  refuses (a cycle, an unknown dependency or type, a missing name or type, ...) is a 400
  naming the tasks, as is a body that is not JSON;
- `GET /workflows?page=&limit=&status=`: newest first, `page` 1 and `limit` 10 by default, a
  `limit` above 100 read as 100; `{workflows, total, page, limit, total_pages}`;
- `GET /workflows/{id}`, `GET /workflows/{id}/tasks`, `GET /tasks/{id}`: 404 when unknown;
- `PUT /workflows/{id}/cancel`: stops every running task's process group and answers once the
  workflow is cancelled; 404 unknown, 409 when it had already finished.

The body is read here rather than by FastAPI, so the caller's access is checked before
anything in it is, and hostile JSON (invalid UTF-8, deep nesting, a 5,000-digit number) is a
400 with a message, never a 500; a large body is parsed off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from flowdeck.core.errors import ValidationError
from flowdeck.server.access import OPERATOR, VIEWER, Caller
from flowdeck.server.auth import Identity
from flowdeck.server.deps import EngineDep, int_param
from flowdeck.server.dialect import ApiError, ApiFailure

router = APIRouter(prefix="/api/v1", tags=["flowctl"])

#: Bodies larger than this are parsed in a worker thread (the loop keeps serving).
PARSE_INLINE_BYTES = 256 * 1024
#: A page number past this cannot hold anything (and would overflow SQLite's OFFSET).
MAX_PAGE = 1_000_000_000


def _refused(request: Request, message: str) -> ApiFailure:
    return ApiFailure(ApiError(400, message, request.url.path))


def _decode(raw: bytes) -> Any:
    return json.loads(raw.decode("utf-8"))


async def definition_of(request: Request) -> Any:
    """The JSON body, or a 400 saying what is wrong with it."""
    raw = await request.body()
    if not raw.strip():
        raise _refused(request, "the request body must be a workflow in JSON: "
                                '{"name": ..., "tasks": [...]}')
    try:
        if len(raw) > PARSE_INLINE_BYTES:
            return await asyncio.to_thread(_decode, raw)
        return _decode(raw)
    except UnicodeDecodeError:
        raise _refused(request, "the request body is not valid UTF-8") from None
    except RecursionError:
        raise _refused(request, "invalid JSON: nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise _refused(request, f"invalid JSON: {exc}") from None
    except ValueError:  # an integer past Python's digit limit
        raise _refused(request, "invalid JSON: a number has more than "
                                f"{sys.get_int_max_str_digits()} digits") from None


def submitter(caller: Identity) -> str:
    """Who submitted, as the workflow records it (nobody in particular with auth off)."""
    return caller.name if caller.kind not in ("anonymous", "open") else ""


@router.post("/workflows", status_code=201, dependencies=OPERATOR,
             summary="Create a workflow (a JSON DAG of tasks) and queue it")
async def create_workflow(request: Request, engine: EngineDep, caller: Caller) -> JSONResponse:
    definition = await definition_of(request)
    try:
        view = await engine.flowctl.submit(definition, submitter(caller))
    except ValidationError as exc:  # the spec answers a refused definition with 400
        raise _refused(request, str(exc)) from None
    return JSONResponse(view.to_dict(), status_code=201)


@router.get("/workflows", dependencies=VIEWER,
            summary="Workflows, newest first: ?page=1&limit=10 (at most 100)&status=")
async def list_workflows(request: Request, engine: EngineDep) -> dict[str, Any]:
    params = request.query_params
    page = int_param(params, "page", 1, 1, MAX_PAGE)
    limit = int_param(params, "limit", 10, 1, MAX_PAGE)
    status = params.get("status") or None
    found = await engine.flowctl.list_workflows(page=page, limit=limit, status=status)
    return found.to_dict()


@router.get("/workflows/{workflow_id}", dependencies=VIEWER, summary="A workflow")
async def get_workflow(workflow_id: str, engine: EngineDep) -> dict[str, Any]:
    return (await engine.flowctl.get(workflow_id)).to_dict()


@router.get("/workflows/{workflow_id}/tasks", dependencies=VIEWER,
            summary="A workflow's tasks (summaries)")
async def workflow_tasks(workflow_id: str, engine: EngineDep) -> dict[str, Any]:
    return {"tasks": [task.summary() for task in await engine.flowctl.tasks(workflow_id)]}


@router.put("/workflows/{workflow_id}/cancel", dependencies=OPERATOR,
            summary="Cancel a workflow: its running tasks are stopped")
async def cancel_workflow(workflow_id: str, engine: EngineDep,
                          caller: Caller) -> dict[str, str]:
    await engine.flowctl.cancel(workflow_id, submitter(caller) or "anonymous")
    return {"message": "Workflow cancelled"}


@router.get("/tasks/{task_id}", dependencies=VIEWER, summary="A task")
async def get_task(task_id: str, engine: EngineDep) -> dict[str, Any]:
    return (await engine.flowctl.task(task_id)).to_dict()

