"""Kestra's execution files: `GET /executions/{id}/file?path=` (the bytes), `/file/metas`
(`{"size"}`) and `/file/preview?maxRows=` (`{"extension", "content", "type": "TEXT"}`), for
the files uploaded as the execution's FILE inputs (`engine/execution_files.py`).

`/file/metas` and `/file/preview` have the shape of the staging dialect's
`/executions/{namespace}/{flowId}/{executionId}`, so they are also served as plain routes
matched before it (`fast.py`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from flowdeck.core.errors import BadRequestError
from flowdeck.engine import execution_files
from flowdeck.server.access import VIEWER
from flowdeck.server.deps import get_engine, int_param

router = APIRouter(tags=["executions"], dependencies=VIEWER)


def _uri(request: Request) -> str:
    uri = request.query_params.get("path")
    if not uri:
        raise BadRequestError("query parameter 'path' is required (the file's URI)")
    return uri


@router.get("/executions/{execution_id}/file", response_class=FileResponse,
            summary="Download a file of an execution (?path=, an input file's URI)")
async def download(request: Request, execution_id: str) -> FileResponse:
    path = await execution_files.execution_file(get_engine(request), execution_id,
                                                _uri(request))
    return FileResponse(path, media_type="application/octet-stream", filename=path.name)


@router.get("/executions/{execution_id}/file/metas", summary="A file's size (?path=)")
async def metas(execution_id: str, request: Request) -> dict[str, Any]:
    path = await execution_files.execution_file(get_engine(request), execution_id,
                                                _uri(request))
    return {"size": path.stat().st_size}


@router.get("/executions/{execution_id}/file/preview",
            summary="The first lines of a text file (?path=&maxRows=)")
async def preview(execution_id: str, request: Request) -> dict[str, Any]:
    rows = int_param(request.query_params, "maxRows", 100, high=10_000)
    shown = await execution_files.preview(get_engine(request), execution_id, _uri(request),
                                          rows)
    return {"extension": shown.extension, "content": shown.content, "type": "TEXT"}
