"""Releases (`/v1/releases`): create, get by any identifier, list a project's.

A repository identifier has a slash (`acme/shop`), so the paths are read as segments:
`/v1/releases/{owner}/{name}/{project}` lists, `/v1/releases/{owner}/{name}/{project}/{ref}`
gets one (by id, number, tag or commit SHA). `acme%2Fshop` arrives decoded, as `acme/shop`.
`tag` (and `oci_digest`) in the create body, `pipeline_run_id` in a release, and `?expand=full`
(a list of whole releases instead of the document's summaries) are flowdeck's extensions.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from flowdeck.core.errors import NotFoundError
from flowdeck.core.forge import Release
from flowdeck.server.access import OPERATOR, VIEWER, Caller
from flowdeck.server.deps import EngineDep
from flowdeck.server.dialects.forge.common import body, given, listing, page, segments, who

router = APIRouter(tags=["forge"])
TEMPLATES = ("/v1/releases/{repo}/{project} or /v1/releases/{repo}/{project}/{release-id} "
             "(repo is owner/name)")


def release_document(release: Release) -> dict[str, Any]:
    """The document's release, and the pipeline run it came from (flowdeck's extension)."""
    return {**release.to_dict(), "pipeline_run_id": release.pipeline_run_id}


@router.post("/v1/releases", status_code=201, dependencies=OPERATOR)
async def create_release(request: Request, engine: EngineDep, caller: Caller) -> dict[str, Any]:
    data = await body(request)
    release = await engine.forge.create_release(
        given(data, "repository"), given(data, "project"), given(data, "commit_sha"),
        given(data, "artifacts"), by=who(caller), pipeline_run_id=given(data, "pipeline_run_id"),
        tag=given(data, "tag"), oci_digest=given(data, "oci_digest"))
    return release.created()


@router.get("/v1/releases/{path:path}", dependencies=VIEWER)
async def read_releases(path: str, request: Request, engine: EngineDep) -> dict[str, Any]:
    parts = segments(path, "release", TEMPLATES)
    if len(parts) == 3:
        limit, offset = page(request)
        found = await engine.forge.list_releases("/".join(parts[:2]), parts[2], limit, offset)
        full = request.query_params.get("expand") == "full"
        return listing("releases", [release_document(r) if full else r.summary()
                                    for r in found.items], found.total, found.limit,
                       found.offset)
    if len(parts) == 4:
        return release_document(await engine.forge.get_release("/".join(parts[:2]), parts[2],
                                                               parts[3]))
    raise NotFoundError(f"no release at this path: use {TEMPLATES}")
