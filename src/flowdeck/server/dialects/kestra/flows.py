"""Kestra flows routes: create, read, update, delete, search, list, revisions and validate.

Paths are relative to the tenant prefix (`/api/v1/main` or tenant-less `/api/v1`). The literal
routes (`/flows/search`, `/flows/distinct-namespaces`, `/flows/validate`) are declared before
`/flows/{namespace}` so a namespace never captures them. Flow sources are YAML
(`application/x-yaml`); JSON answers are Kestra's `Flow` / `FlowWithSource` shapes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from flowdeck.core.errors import (
    BadRequestError,
    ConflictError,
    InvalidFlowError,
    NotFoundError,
)
from flowdeck.engine.flows import FlowDefinition
from flowdeck.engine.inputs import load_yaml
from flowdeck.server.dialects.kestra.common import (
    Filter,
    bool_param,
    get_engine,
    int_param,
    paged,
    parse_filters,
    parse_sort,
)

router = APIRouter(tags=["flows"])

SYSTEM_NAMESPACE = "system"
ALREADY_EXISTS = "https://kestra.io/docs/api-reference/problems/entity-already-exists"
#: Kestra splits a multi-document source on lines that hold only `---`.
DOCUMENT_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)
FLOW_SORT_KEYS: dict[str, Callable[[FlowDefinition], Any]] = {
    "id": lambda f: f.id,
    "flowId": lambda f: f.id,
    "namespace": lambda f: f.namespace,
    "revision": lambda f: f.revision,
    "updated": lambda f: f.updated or "",
    "description": lambda f: f.description or "",
}
STRING_OPERATIONS = {"EQUALS", "NOT_EQUALS", "CONTAINS", "NOT_CONTAINS", "STARTS_WITH",
                     "ENDS_WITH", "PREFIX", "REGEX", "IN", "NOT_IN"}


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
    out = flow.to_dict(with_source=with_source)
    if deleted:
        out["deleted"] = True
    return out


# -- create, validate, search: literal paths first ------------------------------------------


@router.post("/flows", summary="Create a flow from its YAML source")
async def create_flow(request: Request) -> JSONResponse:
    engine = get_engine(request)
    try:
        flow = await engine.create_flow(await yaml_body(request))
    except ConflictError as exc:  # newest Kestra: 409 entity-already-exists
        raise ConflictError(str(exc), {"type": ALREADY_EXISTS,
                                       "title": "Entity already exists"}) from None
    return JSONResponse(flow_json(flow))


@router.post("/flows/validate", summary="Validate one or more flow sources (separated by ---)")
async def validate_flows(request: Request) -> JSONResponse:
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
        try:
            flow = engine.validate_flow(document)
        except InvalidFlowError as exc:
            results.append(violation(index, document, "\n".join(
                f"{path}: {msg}" if path else msg for path, msg in exc.problems)))
        else:
            results.append({"index": index, "flow": flow.id, "namespace": flow.namespace,
                            "outdated": False, "deprecationPaths": [], "warnings": [],
                            "infos": []})
    return JSONResponse(results)


def violation(index: int, document: str | None, constraints: str) -> dict[str, Any]:
    """A `ValidateConstraintViolation` for an invalid document; id/namespace when readable."""
    out: dict[str, Any] = {"index": index}
    if document is not None:
        try:
            raw = load_yaml(document)
        except Exception:  # unreadable YAML: the constraints say why
            raw = None
        if isinstance(raw, dict):
            if isinstance(raw.get("id"), str):
                out["flow"] = raw["id"]
            if isinstance(raw.get("namespace"), str):
                out["namespace"] = raw["namespace"]
    out.update({"constraints": constraints, "outdated": False, "deprecationPaths": [],
                "warnings": [], "infos": []})
    return out


@router.get("/flows/search", summary="Search flows (filters[...], legacy q/namespace/labels)")
async def search_flows(request: Request) -> JSONResponse:
    engine = get_engine(request)
    params = request.query_params
    page = int_param(params, "page", 1, high=1_000_000)
    size = int_param(params, "size", 10)
    sort = flow_sort(params.getlist("sort"), params)
    predicates = flow_predicates(parse_filters(params))
    predicates.extend(legacy_flow_predicates(params))
    matches = [f for f in engine.list_flows() if all(p(f) for p in predicates)]
    for name, desc in reversed(sort):
        matches.sort(key=FLOW_SORT_KEYS[name], reverse=desc)
    start = (page - 1) * size
    items = [flow_json(f, with_source=False) for f in matches[start:start + size]]
    return JSONResponse(paged(items, len(matches)))


@router.get("/flows/distinct-namespaces", summary="Namespaces that hold at least one flow")
async def distinct_namespaces(request: Request, q: str | None = None) -> JSONResponse:
    engine = get_engine(request)
    needle = (q or "").lower()
    return JSONResponse([ns for ns in engine.namespaces() if needle in ns.lower()])


# -- one namespace, one flow -----------------------------------------------------------------


@router.get("/flows/{namespace}", summary="Flows of one namespace (not of its children)")
async def list_namespace(request: Request, namespace: str) -> JSONResponse:
    engine = get_engine(request)
    return JSONResponse([flow_json(f, with_source=False)
                         for f in engine.list_flows(namespace)])


@router.get("/flows/{namespace}/{flow_id}", summary="Get a flow (source, revision, allowDeleted)")
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


@router.put("/flows/{namespace}/{flow_id}", summary="Update a flow (a new revision)")
async def update_flow(request: Request, namespace: str, flow_id: str) -> JSONResponse:
    engine = get_engine(request)
    engine.get_flow(namespace, flow_id)  # 404 before looking at the body, as Kestra does
    flow = await engine.update_flow(namespace, flow_id, await yaml_body(request))
    return JSONResponse(flow_json(flow))


@router.delete("/flows/{namespace}/{flow_id}", status_code=204, summary="Delete a flow")
async def delete_flow(request: Request, namespace: str, flow_id: str) -> Response:
    engine = get_engine(request)
    await engine.delete_flow(namespace, flow_id)
    return Response(status_code=204)


@router.get("/flows/{namespace}/{flow_id}/revisions", summary="Every revision of a flow")
async def flow_revisions(request: Request, namespace: str, flow_id: str) -> JSONResponse:
    engine = get_engine(request)
    revisions = await engine.flow_revisions(namespace, flow_id)
    return JSONResponse([flow_json(f) for f in revisions])


# -- search helpers --------------------------------------------------------------------------

Predicate = Callable[[FlowDefinition], bool]


def flow_sort(raw: list[str], params: Any) -> list[tuple[str, bool]]:
    if not any(item.strip() for item in raw):
        return [("namespace", False), ("id", False)]
    sort = parse_sort(params)
    for name, _ in sort:
        if name not in FLOW_SORT_KEYS:
            raise BadRequestError(f"cannot sort flows by '{name}'; use one of "
                                  f"{', '.join(sorted(FLOW_SORT_KEYS))}")
    return sort


def text_matcher(field: str, op: str, value: str) -> Callable[[str], bool]:
    """How a string field matches one `filters[field][op]=value`."""
    if op not in STRING_OPERATIONS:
        raise BadRequestError(f"operation {op} is not supported for filters[{field}]")
    values = [v.strip() for v in value.split(",") if v.strip()]
    if op == "EQUALS":
        return lambda s: s == value
    if op == "NOT_EQUALS":
        return lambda s: s != value
    if op == "CONTAINS":
        return lambda s: value.lower() in s.lower()
    if op == "NOT_CONTAINS":
        return lambda s: value.lower() not in s.lower()
    if op == "STARTS_WITH":
        return lambda s: s.startswith(value)
    if op == "ENDS_WITH":
        return lambda s: s.endswith(value)
    if op == "PREFIX":  # Kestra's namespace prefix: the namespace itself or a child of it
        return lambda s: s == value or s.startswith(value + ".")
    if op == "IN":
        return lambda s: s in values
    if op == "NOT_IN":
        return lambda s: s not in values
    try:
        pattern = re.compile(value)
    except re.error as exc:
        raise BadRequestError(f"filters[{field}][REGEX] is not a valid regular expression: "
                              f"{exc}") from None
    return lambda s: pattern.search(s) is not None


def label_pairs(f: Filter) -> list[tuple[str, str]]:
    if f.key:
        return [(f.key, f.value)]
    pairs = []
    for item in (v.strip() for v in f.value.split(",")):
        if not item:
            continue
        key, sep, val = item.partition(":")
        if not sep or not key:
            raise BadRequestError(f"filters[labels] values must look like key:value, got '{item}'")
        pairs.append((key, val))
    return pairs


def has_labels(pairs: list[tuple[str, str]]) -> Predicate:
    return lambda flow: all((k, v) in flow.labels for k, v in pairs)


def in_scope(scopes: list[str]) -> Predicate:
    wanted = set()
    for scope in scopes:
        upper = scope.strip().upper()
        if upper not in ("USER", "SYSTEM"):
            raise BadRequestError(f"scope must be USER or SYSTEM, got '{scope}'")
        wanted.add(upper)
    return lambda flow: ("SYSTEM" if flow.namespace == SYSTEM_NAMESPACE else "USER") in wanted


def matches_q(q: str) -> Predicate:
    needle = q.lower()
    return lambda flow: (needle in flow.id.lower() or needle in flow.namespace.lower()
                         or needle in (flow.description or "").lower())


def on_namespace(match: Callable[[str], bool]) -> Predicate:
    return lambda flow: match(flow.namespace)


def on_id(match: Callable[[str], bool]) -> Predicate:
    return lambda flow: match(flow.id)


def negated(predicate: Predicate) -> Predicate:
    return lambda flow: not predicate(flow)


def flow_predicates(filters: list[Filter]) -> list[Predicate]:
    predicates: list[Predicate] = []
    for f in filters:
        if f.field == "q":
            predicates.append(matches_q(f.value))
        elif f.field == "namespace":
            predicates.append(on_namespace(text_matcher("namespace", f.op, f.value)))
        elif f.field in ("flowId", "id"):
            predicates.append(on_id(text_matcher(f.field, f.op, f.value)))
        elif f.field == "labels":
            if f.op not in ("EQUALS", "NOT_EQUALS", "IN"):
                raise BadRequestError(f"operation {f.op} is not supported for filters[labels]")
            wanted = has_labels(label_pairs(f))
            predicates.append(negated(wanted) if f.op == "NOT_EQUALS" else wanted)
        elif f.field == "scope":
            scopes = [s for s in f.value.split(",") if s.strip()]
            scoped = in_scope(scopes)
            predicates.append(negated(scoped) if f.op in ("NOT_EQUALS", "NOT_IN") else scoped)
        else:
            raise BadRequestError(f"cannot filter flows by '{f.field}'; use q, namespace, "
                                  "flowId, labels or scope")
    return predicates


def legacy_flow_predicates(params: Any) -> list[Predicate]:
    """≤0.21 parameters: `q`, `namespace` (a prefix), `labels=key:value`, `scope`."""
    predicates: list[Predicate] = []
    if params.get("q"):
        predicates.append(matches_q(params["q"]))
    if params.get("namespace"):
        predicates.append(on_namespace(text_matcher("namespace", "PREFIX", params["namespace"])))
    pairs = []
    for raw in params.getlist("labels"):
        key, sep, value = raw.partition(":")
        if not sep or not key:
            raise BadRequestError(f"labels must look like key:value, got '{raw}'")
        pairs.append((key, value))
    if pairs:
        predicates.append(has_labels(pairs))
    scopes = [s for raw in params.getlist("scope") for s in raw.split(",") if s.strip()]
    if scopes:
        predicates.append(in_scope(scopes))
    return predicates
