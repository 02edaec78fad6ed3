"""Kestra flows routes: create, read, update, delete, search, list, revisions and validate.

`PUT /flows/{namespace}/{id}` creates the flow when it does not exist (spec 001's
"Create/Update Flow"); the source must define that namespace and id.

Paths are relative to the tenant prefix (`/api/v1/main` or tenant-less `/api/v1`). The literal
routes (`/flows/search`, `/flows/distinct-namespaces`, `/flows/validate`) are declared before
`/flows/{namespace}` so a namespace never captures them. Flow sources are YAML
(`application/x-yaml`); JSON answers are Kestra's `Flow` / `FlowWithSource` shapes.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import QueryParams

from flowdeck.core.errors import ConflictError, InvalidFlowError, NotFoundError, ValidationError
from flowdeck.core.yamlsafe import YamlTooBig
from flowdeck.engine.flow_search import FlowFilter, FlowQuery
from flowdeck.engine.flows import FlowDefinition
from flowdeck.engine.inputs import INLINE_PARSE_CHARS, PARSE_POOL, PARSE_TIMEOUT_S, load_yaml
from flowdeck.server.access import OPERATOR, VIEWER
from flowdeck.server.deps import bool_param, get_engine, int_param
from flowdeck.server.dialects.kestra.common import paged, parse_filters, parse_sort

router = APIRouter(tags=["flows"])

#: What Kestra answers a second create of the same flow (422, "Invalid entity: flow.id: ...").
ALREADY_EXISTS = "Flow id already exists"
#: Kestra splits a multi-document source on lines that hold only `---`.
DOCUMENT_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)


async def yaml_body(request: Request) -> str:
    raw = await request.body()
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidFlowError([("", "the flow source must be UTF-8 text")]) from None
    if not source.strip():
        raise InvalidFlowError([("", "the request body is empty; send the flow YAML "
                                     "with Content-Type: application/x-yaml")])
    return source


def flow_json(flow: FlowDefinition, *, with_source: bool = True,
              deleted: bool = False) -> dict[str, Any]:
    return flow.to_dict(with_source=with_source, deleted=deleted)


# -- create, validate, search: literal paths first ------------------------------------------


@router.post("/flows", dependencies=OPERATOR, summary="Create a flow from its YAML source")
async def create_flow(request: Request) -> JSONResponse:
    engine = get_engine(request)
    try:
        flow = await engine.create_flow(await yaml_body(request))
    except ConflictError:  # Kestra 1.x/2.0 (and the clients written for them): a 422
        raise InvalidFlowError([("flow.id", ALREADY_EXISTS)]) from None
    return JSONResponse(flow_json(flow))


@router.post("/flows/validate", dependencies=OPERATOR,
             summary="Validate one or more flow sources (separated by ---)")
async def validate_flows(request: Request) -> JSONResponse:
    """Kestra's answer: a list of results, a violation for an invalid flow. A document the
    bounded YAML reader refuses (an alias bomb, too big, too deep) is a 422 instead: it is not
    read at all. Every document is read off the event loop when it is big."""
    engine = get_engine(request)
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return JSONResponse([violation(0, None, "the flow source must be UTF-8 text")])
    documents = [doc for doc in DOCUMENT_SEPARATOR.split(text) if doc.strip()]
    if not documents:
        return JSONResponse([violation(0, None, "the flow source is empty")])
    results = []
    for index, document in enumerate(documents):
        parsed = await read_document(index, document)
        try:
            flow = await engine.validate_flow_async(document)
        except InvalidFlowError as exc:
            results.append(violation(index, parsed, "\n".join(
                f"{path}: {msg}" if path else msg for path, msg in exc.problems)))
        else:
            results.append({"index": index, "flow": flow.id, "namespace": flow.namespace,
                            "outdated": False, "deprecationPaths": [], "warnings": [],
                            "infos": []})
    return JSONResponse(results)


def _read(document: str) -> Any:
    try:
        return load_yaml(document)
    except YamlTooBig:
        raise
    except Exception:  # unreadable YAML: the violation's constraints say why
        return None


async def read_document(index: int, document: str) -> Any:
    """The document's YAML (None when it is not YAML), read within the flow limits and off
    the event loop when big; a 422 naming the document when the limits refuse it."""
    try:
        if len(document) <= INLINE_PARSE_CHARS:
            return _read(document)
        future = asyncio.get_running_loop().run_in_executor(PARSE_POOL, _read, document)
        return await asyncio.wait_for(future, PARSE_TIMEOUT_S)
    except YamlTooBig as exc:
        raise ValidationError([(f"[{index}]", str(exc))]) from None
    except TimeoutError:
        raise ValidationError([(f"[{index}]", "the document took too long to read")]) from None


def violation(index: int, raw: Any, constraints: str) -> dict[str, Any]:
    """A `ValidateConstraintViolation` for an invalid document; id/namespace when readable."""
    out: dict[str, Any] = {"index": index}
    if isinstance(raw, dict):
        if isinstance(raw.get("id"), str):
            out["flow"] = raw["id"]
        if isinstance(raw.get("namespace"), str):
            out["namespace"] = raw["namespace"]
    out.update({"constraints": constraints, "outdated": False, "deprecationPaths": [],
                "warnings": [], "infos": []})
    return out


def flow_query(params: QueryParams) -> FlowQuery:
    """`filters[...]` and the ≤0.21 parameters (`q`, `namespace`, `labels`, `scope`)."""
    query = FlowQuery(page=int_param(params, "page", 1, high=1_000_000),
                      size=int_param(params, "size", 10))
    if any(item.strip() for item in params.getlist("sort")):
        query.sort = parse_sort(params)
    query.filters = [FlowFilter(f.field, f.op, f.value, f.key) for f in parse_filters(params)]
    query.q = params.get("q") or None
    query.namespace = params.get("namespace") or None
    query.labels = params.getlist("labels")
    query.scopes = [s for raw in params.getlist("scope") for s in raw.split(",") if s.strip()]
    return query


@router.get("/flows/search", dependencies=VIEWER,
            summary="Search flows (filters[...], legacy q/namespace/labels)")
async def search_flows(request: Request) -> JSONResponse:
    flows, total = get_engine(request).flows.search(flow_query(request.query_params))
    return JSONResponse(paged([flow_json(f, with_source=False) for f in flows], total))


@router.get("/flows/distinct-namespaces", dependencies=VIEWER,
            summary="Namespaces that hold at least one flow")
async def distinct_namespaces(request: Request, q: str | None = None) -> JSONResponse:
    engine = get_engine(request)
    needle = (q or "").lower()
    return JSONResponse([ns for ns in engine.namespaces() if needle in ns.lower()])


# -- one namespace, one flow -----------------------------------------------------------------


@router.get("/flows/{namespace}", dependencies=VIEWER,
            summary="Flows of one namespace (not of its children)")
async def list_namespace(request: Request, namespace: str) -> JSONResponse:
    engine = get_engine(request)
    return JSONResponse([flow_json(f, with_source=False)
                         for f in engine.list_flows(namespace)])


@router.get("/flows/{namespace}/{flow_id}", dependencies=VIEWER,
            summary="Get a flow (source, revision, allowDeleted)")
async def get_flow(request: Request, namespace: str, flow_id: str) -> JSONResponse:
    engine = get_engine(request)
    params = request.query_params
    # 2.x always answers FlowWithSource; `source=false` asks for the 1.x plain Flow.
    with_source = bool_param(params, "source", True)
    allow_deleted = bool_param(params, "allowDeleted", False)
    revision = int_param(params, "revision", 0, high=2_000_000_000) or None
    deleted = False
    try:
        engine.get_flow(namespace, flow_id)
    except NotFoundError:
        if not allow_deleted:
            raise
        deleted = True
    if deleted:
        revisions = await engine.flow_revisions(namespace, flow_id)  # 404 if it never existed
        flow = revisions[-1]
        if revision is not None:
            flow = await engine.get_flow_revision(namespace, flow_id, revision)
    else:
        flow = await engine.get_flow_revision(namespace, flow_id, revision)
    return JSONResponse(flow_json(flow, with_source=with_source, deleted=deleted))


@router.put("/flows/{namespace}/{flow_id}", dependencies=OPERATOR,
            summary="Create or update a flow (an update is a new revision)")
async def put_flow(request: Request, namespace: str, flow_id: str) -> JSONResponse:
    engine = get_engine(request)
    flow, _ = await engine.flows.put(namespace, flow_id, await yaml_body(request))
    return JSONResponse(flow_json(flow))


@router.delete("/flows/{namespace}/{flow_id}", status_code=204, dependencies=OPERATOR,
               summary="Delete a flow")
async def delete_flow(request: Request, namespace: str, flow_id: str) -> Response:
    engine = get_engine(request)
    await engine.delete_flow(namespace, flow_id)
    return Response(status_code=204)


@router.get("/flows/{namespace}/{flow_id}/revisions", dependencies=VIEWER,
            summary="Every revision of a flow")
async def flow_revisions(request: Request, namespace: str, flow_id: str) -> JSONResponse:
    engine = get_engine(request)
    revisions = await engine.flow_revisions(namespace, flow_id)
    return JSONResponse([flow_json(f) for f in revisions])
