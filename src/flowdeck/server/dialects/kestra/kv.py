"""Kestra's KV store routes (1.x `KVController` and the 2.0 additions).

A PUT body is a JSON literal typed the way Kestra's ION reader types it (`"hello"` is a
STRING, `42` a NUMBER, `{...}` JSON, a bare `2025-06-01` a DATE ...); an optional `ttl`
header (ISO-8601 duration) makes the entry expire. A missing key is a 404, an expired one 410.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from flowdeck.core.errors import BadRequestError, ValidationError
from flowdeck.core.timefmt import parse_duration
from flowdeck.engine.flows import NAMESPACE
from flowdeck.engine.kv import KVEntry, KVStore, parse_literal
from flowdeck.server.access import OPERATOR, VIEWER
from flowdeck.server.deps import get_engine, int_param, json_value
from flowdeck.server.dialects.kestra.common import paged, parse_filters

router = APIRouter(tags=["kv"])

#: Sortable fields of a KV listing, as the client names them.
SORT_FIELDS = {"key": "key", "namespace": "namespace", "creationDate": "creationDate",
               "updateDate": "updateDate", "updated": "updateDate",
               "expirationDate": "expirationDate", "description": "description",
               "revision": "revision"}


def _check_namespace(namespace: str) -> None:
    if not NAMESPACE.fullmatch(namespace):
        raise ValidationError([("namespace", f"'{namespace}' must match {NAMESPACE.pattern}")])


def _ttl(request: Request) -> timedelta | None:
    raw = request.headers.get("ttl")
    if raw is None or not raw.strip():
        return None
    try:
        return parse_duration(raw.strip())
    except ValueError as exc:
        raise BadRequestError(f"header 'ttl': {exc}") from None


@router.get("/namespaces/{namespace}/kv/inheritance", dependencies=VIEWER)
async def list_with_inheritance(namespace: str, request: Request) -> list[dict[str, Any]]:
    """Entries of the parent namespaces only, the nearest parent winning for a shared key."""
    kv: KVStore = get_engine(request).kv
    parts = namespace.split(".")
    parents = [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]  # nearest first
    seen: dict[str, KVEntry] = {}
    for parent in parents:
        for entry in await kv.list(parent):
            seen.setdefault(entry.key, entry)
    return [seen[k].summary() for k in sorted(seen)]


@router.get("/namespaces/{namespace}/kv", dependencies=VIEWER)
async def list_namespace(namespace: str, request: Request) -> list[dict[str, Any]]:
    return [e.summary() for e in await get_engine(request).kv.list(namespace)]


@router.delete("/namespaces/{namespace}/kv", dependencies=OPERATOR)
async def delete_many(namespace: str, request: Request) -> dict[str, Any]:
    body = await json_value(request)
    keys = body.get("keys") if isinstance(body, dict) else None
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ValidationError([("keys", "must be a list of key names, e.g. "
                                        "{\"keys\": [\"a\", \"b\"]}")])
    kv = get_engine(request).kv
    deleted = [key for key in dict.fromkeys(keys) if await kv.delete(namespace, key)]
    return {"keys": deleted}


@router.put("/namespaces/{namespace}/kv/{key:path}", dependencies=OPERATOR)
async def put_value(namespace: str, key: str, request: Request) -> Response:
    _check_namespace(namespace)
    KVStore.check_key(key)
    ttl = _ttl(request)
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError([("value", "the body must be UTF-8 text holding a JSON value")]
                              ) from None
    kv_type, value = parse_literal(text)
    await get_engine(request).kv.put(namespace, key, value, kv_type=kv_type, ttl=ttl)
    return Response(status_code=200)


@router.get("/namespaces/{namespace}/kv/{key:path}", dependencies=VIEWER)
async def get_value(namespace: str, key: str, request: Request) -> dict[str, Any]:
    entry = await get_engine(request).kv.get(namespace, key)
    return entry.detail()


@router.delete("/namespaces/{namespace}/kv/{key:path}", dependencies=OPERATOR)
async def delete_value(namespace: str, key: str, request: Request) -> JSONResponse:
    return JSONResponse(await get_engine(request).kv.delete(namespace, key))


def _matches(value: str | None, op: str, wanted: str) -> bool:
    value = value or ""
    if op == "EQUALS":
        return value == wanted
    if op == "NOT_EQUALS":
        return value != wanted
    if op in ("STARTS_WITH", "PREFIX"):
        # A namespace prefix is a namespace and its children, as elsewhere in Kestra.
        return value == wanted or value.startswith(wanted if op == "STARTS_WITH"
                                                   else wanted.rstrip(".") + ".")
    if op == "ENDS_WITH":
        return value.endswith(wanted)
    if op == "CONTAINS":
        return wanted.lower() in value.lower()
    if op == "NOT_CONTAINS":
        return wanted.lower() not in value.lower()
    if op == "IN":
        return value in {v.strip() for v in wanted.split(",")}
    if op == "NOT_IN":
        return value not in {v.strip() for v in wanted.split(",")}
    raise BadRequestError(f"filter operation '{op}' is not supported on KV entries")


@router.get("/kv", dependencies=VIEWER)
async def list_all(request: Request) -> dict[str, Any]:
    """2.0 listing: `page`, `size`, `sort` and `filters[namespace|key|q][OP]=...`."""
    params = request.query_params
    page = int_param(params, "page", 1, high=1_000_000)
    size = int_param(params, "size", 10)
    entries = [e.summary() for e in await get_engine(request).kv.list()]
    for f in parse_filters(params):
        if f.field == "namespace":
            entries = [e for e in entries if _matches(e["namespace"], f.op, f.value)]
        elif f.field in ("key", "q"):
            op = "CONTAINS" if f.field == "q" and f.op == "EQUALS" else f.op
            entries = [e for e in entries if _matches(e["key"], op, f.value)]
        else:
            raise BadRequestError(f"cannot filter KV entries by '{f.field}'; use namespace, "
                                  "key or q")
    if params.get("namespace"):  # the pre-filter form
        entries = [e for e in entries if e["namespace"] == params["namespace"]]
    sorts = []
    for raw in params.getlist("sort"):
        for item in raw.split(","):
            if not item:
                continue
            name, _, direction = item.partition(":")
            direction = direction.lower() or "asc"
            if name not in SORT_FIELDS or direction not in ("asc", "desc"):
                raise BadRequestError(f"cannot sort KV entries by '{item}'; use one of "
                                      f"{', '.join(sorted(SORT_FIELDS))} with :asc or :desc")
            sorts.append((SORT_FIELDS[name], direction == "desc"))
    for field, descending in reversed(sorts or [("namespace", False), ("key", False)]):
        present = [e for e in entries if e.get(field) is not None]
        absent = [e for e in entries if e.get(field) is None]
        present.sort(key=lambda e, f=field: e[f], reverse=descending)  # type: ignore[misc]
        entries = present + absent
    start = (page - 1) * size
    return paged(entries[start:start + size], len(entries))
