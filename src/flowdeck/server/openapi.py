"""The OpenAPI document: FastAPI's, completed with what routes that read their own requests
cannot tell FastAPI.

Most routes parse their query and body themselves (Kestra's `filters[field][OP]` keys, YAML
bodies, multipart inputs), so FastAPI sees no parameters and no body. Each dialect may describe
them (`Dialect.openapi`: method and path template to extra operation fields), and every
operation gets the error answers it can give, in its dialect's own body: the renderer is asked
for a sample of each status, whose content type and members become the documented schema.
Built once per app, on first request of `/openapi.json`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from flowdeck.server.dialect import ApiError, Dialect
from flowdeck.server.host import Host

DESCRIPTIONS = {
    400: "A malformed query or path value, named in the body",
    401: "No or invalid credentials",
    403: "The caller's role may not do this",
    404: "No such object, or no such route",
    409: "The object is in the wrong state; the body says who or what changed it",
    410: "The object has expired",
    413: "The request body is over the 10 MiB limit",
    422: "Invalid input; the body names the field",
    429: "Too many requests, failed authentications or open streams (Retry-After)",
    500: "An unexpected error (no detail is given)",
    503: "The store cannot take writes right now, or the server is at its stream cap "
         "(Retry-After)",
}
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def error_response(dialect: Dialect, status: int, path: str) -> dict[str, Any]:
    """The documented answer of `status` on `path`, from a sample rendered by the dialect."""
    sample = dialect.errors(ApiError(status, DESCRIPTIONS[status], path))
    media = (sample.media_type or "application/json").split(";")[0]
    try:
        body = json.loads(bytes(sample.body))
    except ValueError:
        return {"description": DESCRIPTIONS[status], "content": {media: {}}}
    schema: dict[str, Any] = {"type": _json_type(body)}
    if isinstance(body, dict):
        schema["properties"] = {key: {"type": _json_type(value)} for key, value in body.items()}
    return {"description": DESCRIPTIONS[status],
            "content": {media: {"schema": schema, "example": body}}}


def _statuses(method: str, operation: Mapping[str, Any], path: str,
              open_route: bool) -> list[int]:
    found = {500}
    if not open_route:
        found |= {401, 403, 429}
    params = operation.get("parameters", [])
    if any(p.get("in") == "query" for p in params):
        found.add(400)
    if "{" in path:
        found |= {400, 404}
    if "requestBody" in operation or method in WRITES:
        found |= {413, 422}
    if method in WRITES:
        found |= {409, 503}
    return sorted(found)


def _merge(operation: dict[str, Any], extra: Mapping[str, Any]) -> None:
    known = {(p.get("name"), p.get("in")) for p in operation.get("parameters", [])}
    for param in extra.get("parameters", ()):
        if (param["name"], param["in"]) not in known:
            operation.setdefault("parameters", []).append(dict(param))
    if "requestBody" in extra and "requestBody" not in operation:
        operation["requestBody"] = dict(extra["requestBody"])


def describe(app: FastAPI, host: Host) -> dict[str, Any]:
    """FastAPI's document for `app`, completed as the module docstring says."""
    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes, tags=app.openapi_tags)
    paths: dict[str, dict[str, Any]] = schema.get("paths", {})
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = context.path_format or ""
        if not isinstance(route, APIRoute) or path not in paths:
            continue
        dialect = host.dialect_for({"route": route, "path": path})
        open_route = any(rule.open for rule in host.declared(route))
        for method in sorted(context.methods or ()):
            operation = paths[path].get(method.lower())
            if operation is None:
                continue
            if dialect.openapi is not None:
                _merge(operation, dialect.openapi(method, path))
            responses = operation.setdefault("responses", {})
            if _fastapi_422(responses):
                responses["422"] = error_response(dialect, 422, path)
            for status in _statuses(method, operation, path, open_route):
                responses.setdefault(str(status), error_response(dialect, status, path))
    return schema


def _fastapi_422(responses: Mapping[str, Any]) -> bool:
    """FastAPI's own 422 (HTTPValidationError), which no dialect answers with."""
    content = responses.get("422", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    return str(schema.get("$ref", "")).endswith("/HTTPValidationError")
