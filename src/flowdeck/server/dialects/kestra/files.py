"""Kestra's namespace-file routes (`NamespaceFileController`).

`path` is an absolute path inside the namespace (`/scripts/a.py`; the leading `/` is optional).
Every path goes through `NamespaceFiles.resolve`, which refuses `..` and `.` segments with a
422, so no request can reach a file outside the namespace's directory.

Uploads are `multipart/form-data` with a part named `fileContent`; a raw body is accepted too.
A `.zip` upload is extracted at the namespace root, as Kestra does, and a YAML file uploaded
under `/_flows/` is imported as a flow of that namespace (`engine/namespace_import.py`).
"""

from __future__ import annotations

import asyncio
import io
import zipfile
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from flowdeck.core.errors import BadRequestError, NotFoundError, ValidationError
from flowdeck.engine.engine import Engine
from flowdeck.engine.files import NamespaceFiles
from flowdeck.engine.flows import NAMESPACE
from flowdeck.server.access import OPERATOR, VIEWER
from flowdeck.server.deps import attachment, get_engine


async def namespace_pattern(namespace: str) -> None:
    """Every file route: the namespace must be a namespace name, as flows and KV require."""
    if not NAMESPACE.fullmatch(namespace):
        raise ValidationError([("namespace", f"'{namespace}' must match {NAMESPACE.pattern}")])


router = APIRouter(tags=["files"], dependencies=[Depends(namespace_pattern)])

OCTET = "application/octet-stream"


def _required(request: Request, name: str = "path") -> str:
    value = request.query_params.get(name)
    if value is None or not value.strip("/ "):
        raise BadRequestError(f"query parameter '{name}' is required (a path such as "
                              "/scripts/run.py)")
    return value


def _is_root(path: str | None) -> bool:
    return path is None or not path.strip("/")


@router.get("/namespaces/{namespace}/files/directory", dependencies=VIEWER)
async def list_directory(namespace: str, request: Request) -> list[dict[str, Any]]:
    path = request.query_params.get("path")
    files = get_engine(request).files
    return [a.to_dict() for a in files.list_dir(namespace, None if _is_root(path) else path)]


@router.post("/namespaces/{namespace}/files/directory", dependencies=OPERATOR)
async def make_directory(namespace: str, request: Request) -> Response:
    get_engine(request).files.mkdir(namespace, _required(request))
    return Response(status_code=200)


@router.get("/namespaces/{namespace}/files/stats", dependencies=VIEWER)
async def stats(namespace: str, request: Request) -> dict[str, Any]:
    path = request.query_params.get("path")
    files: NamespaceFiles = get_engine(request).files
    if _is_root(path):
        root = files.resolve(namespace, None)
        if not root.exists():  # the root of a namespace without files is an empty directory
            return {"fileName": root.name, "lastModifiedTime": 0, "creationTime": 0,
                    "type": "Directory", "size": 0, "metadata": {}}
        return files.stats(namespace, None).to_dict()
    return files.stats(namespace, path).to_dict()


@router.get("/namespaces/{namespace}/files/search", dependencies=VIEWER)
async def search(namespace: str, request: Request) -> list[str]:
    return get_engine(request).files.search(namespace, request.query_params.get("q") or "")


@router.get("/namespaces/{namespace}/files/revisions", dependencies=VIEWER)
async def revisions(namespace: str, request: Request) -> list[dict[str, Any]]:
    """Files are not versioned here: an existing file has exactly revision 1."""
    path = _required(request)
    get_engine(request).files.get(namespace, path)
    return [{"revision": 1}]


def _archive(engine: Engine, namespace: str) -> bytes:
    files = engine.files
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files.search(namespace, ""):
            archive.writestr(path.lstrip("/"), files.get(namespace, path))
        for flow in engine.list_flows(namespace):
            archive.writestr(f"_flows/{flow.id}.yml", flow.source)
    return buffer.getvalue()


@router.get("/namespaces/{namespace}/files/export", dependencies=VIEWER)
async def export(namespace: str, request: Request) -> Response:
    """A zip of the namespace's files and flows, compressed off the event loop."""
    content = await asyncio.to_thread(_archive, get_engine(request), namespace)
    return Response(content, media_type=OCTET, headers={  # as Kestra answers
        "Content-Disposition": attachment(f"{namespace}_files.zip")})


@router.get("/namespaces/{namespace}/files", dependencies=VIEWER)
async def get_file(namespace: str, request: Request) -> Response:
    """The raw bytes of a file; without `path`, the listing of the root (spec 001)."""
    engine = get_engine(request)
    path = request.query_params.get("path")
    if _is_root(path):
        return JSONResponse([a.to_dict() for a in engine.files.list_dir(namespace, None)])
    assert path is not None
    revision = request.query_params.get("revision")
    if revision not in (None, "", "1"):
        engine.files.get(namespace, path)  # 404 first for a missing file
        raise NotFoundError(f"no revision {revision} of '{path}' in namespace '{namespace}'")
    target = engine.files.resolve(namespace, path)
    if target.is_dir():
        raise NotFoundError(f"'{path}' is a directory in namespace '{namespace}'; list it with "
                            "/files/directory")
    content = engine.files.get(namespace, path)
    return Response(content, media_type=OCTET)


@router.post("/namespaces/{namespace}/files", dependencies=OPERATOR)
async def upload(namespace: str, request: Request) -> Response:
    engine = get_engine(request)
    path = request.query_params.get("path")
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        part = form.get("fileContent")
        if part is None:
            raise ValidationError([("fileContent", "the multipart body needs a part named "
                                                   "'fileContent'")])
        if isinstance(part, UploadFile):
            content = await part.read()
            filename = part.filename or ""
        else:
            content, filename = part.encode("utf-8"), ""
        if filename.lower().endswith(".zip"):
            await engine.namespace_import.unpack_archive(namespace, content)
            return Response(status_code=200)
    else:
        content = await request.body()
    if _is_root(path):
        raise BadRequestError("query parameter 'path' is required (a file path such as "
                              "/scripts/run.py)")
    assert path is not None
    await engine.namespace_import.put_file(namespace, path, content)
    return Response(status_code=200)


@router.put("/namespaces/{namespace}/files", dependencies=OPERATOR)
async def move(namespace: str, request: Request) -> Response:
    source = _required(request, "from")
    dest = _required(request, "to")
    get_engine(request).files.move(namespace, source, dest)
    return Response(status_code=200)


@router.delete("/namespaces/{namespace}/files", dependencies=OPERATOR)
async def delete(namespace: str, request: Request) -> Response:
    get_engine(request).files.delete(namespace, _required(request))
    return Response(status_code=200)
