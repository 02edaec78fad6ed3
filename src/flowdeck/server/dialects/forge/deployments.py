"""Deployments (`/v1/deployments`) and release approvals (`/v1/approvals`).

A deployment to an environment that needs an approval (production) must name the
`approval_id` of an active, unexpired approval of that release for that environment, made by
someone other than the release's creator; refusals are 403 `authorization_failed` with the
reason. flowdeck's extensions: `POST /v1/deployments/requests` (a deployment waiting in the
approval queue for someone else's approval) and `DELETE /v1/approvals/{id}` (revoke).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from flowdeck.core.errors import NotFoundError
from flowdeck.core.forge import ReleaseApproval
from flowdeck.server.access import APPROVER, OPERATOR, VIEWER, Caller
from flowdeck.server.deps import EngineDep
from flowdeck.server.dialects.forge.common import body, given, listing, page, segments, who

router = APIRouter(tags=["forge"])
TEMPLATES = ("/v1/deployments/{environment}/{repo}/{project} or .../history "
             "(repo is owner/name)")


@router.post("/v1/deployments", status_code=201, dependencies=OPERATOR)
async def create_deployment(request: Request, engine: EngineDep,
                            caller: Caller) -> dict[str, Any]:
    data = await body(request)
    deployment = await engine.forge.create_deployment(
        given(data, "release_id"), given(data, "environment"), by=who(caller),
        approval_id=given(data, "approval_id"))
    return deployment.created()


@router.post("/v1/deployments/requests", status_code=201, dependencies=OPERATOR)
async def request_deployment(request: Request, engine: EngineDep,
                             caller: Caller) -> dict[str, Any]:
    data = await body(request)
    found = await engine.forge.request_deployment(given(data, "release_id"),
                                                  given(data, "environment"), by=who(caller))
    return {"execution_id": found.execution_id, "release_id": found.release_id,
            "environment": found.environment, "requested_by": found.requested_by,
            "status": found.status}


@router.get("/v1/deployments/{path:path}", dependencies=VIEWER)
async def read_deployments(path: str, request: Request, engine: EngineDep) -> dict[str, Any]:
    parts = segments(path, "deployment", TEMPLATES)
    if len(parts) == 4:
        env, repository, project = parts[0], "/".join(parts[1:3]), parts[3]
        current = await engine.forge.current_deployment(env, repository, project)
        return current.current()
    if len(parts) == 5 and parts[4] == "history":
        env, repository, project = parts[0], "/".join(parts[1:3]), parts[3]
        limit, offset = page(request)
        found = await engine.forge.deployment_history(env, repository, project, limit, offset)
        return listing("deployments", [d.history_entry() for d in found.items], found.total,
                       found.limit, found.offset)
    raise NotFoundError(f"no deployment at this path: use {TEMPLATES}")


def approval_document(approval: ReleaseApproval) -> dict[str, Any]:
    """The document's approval, with who revoked it when (flowdeck's extension)."""
    doc = approval.to_dict()
    doc["release_id"] = approval.release_id
    doc["environment"] = approval.environment
    if approval.revoked_at is not None:
        doc["revoked_at"] = approval.revoked_at
        doc["revoked_by"] = approval.revoked_by
    if approval.used_by_deployment is not None:
        doc["used_by_deployment"] = approval.used_by_deployment
    return doc


@router.post("/v1/approvals", status_code=201, dependencies=APPROVER)
async def create_approval(request: Request, engine: EngineDep, caller: Caller) -> dict[str, Any]:
    data = await body(request)
    approval = await engine.forge.create_approval(
        given(data, "release_id"), given(data, "environment"), given(data, "justification"),
        by=who(caller))
    return approval.created()


@router.get("/v1/approvals/{release_id}/{environment}", dependencies=VIEWER)
async def approval_status(release_id: str, environment: str,
                          engine: EngineDep) -> dict[str, Any]:
    return approval_document(await engine.forge.approval_status(release_id, environment))


@router.delete("/v1/approvals/{approval_id}", dependencies=APPROVER)
async def revoke_approval(approval_id: str, engine: EngineDep, caller: Caller) -> dict[str, Any]:
    return approval_document(await engine.forge.revoke_approval(approval_id, by=who(caller)))
