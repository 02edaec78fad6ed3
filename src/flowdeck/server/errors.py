"""Errors as RFC 9457 `application/problem+json`, plus the `message` field older clients read.

Every engine error maps to one status (404 unknown, 409 wrong state, 410 expired, 422 invalid,
400 bad query); anything unexpected is a 500 with no stack trace and no detail that could leak.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from flowdeck.core.errors import (
    BadRequestError,
    ConflictError,
    EngineLockedError,
    ExpiredError,
    FlowdeckError,
    NotFoundError,
    ValidationError,
)
from flowdeck.server.sse import TooManyStreams

log = logging.getLogger("flowdeck.server")
PROBLEM = "application/problem+json"
BASE = "https://kestra.io/docs/api-reference/problems/"
SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    410: ("resource-expired", "Resource expired"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("invalid-entity", "Invalid entity"),
    429: ("too-many-requests", "Too many requests"),
    500: ("internal-error", "Internal server error"),
    503: ("service-unavailable", "Service unavailable"),
}


def problem(status: int, detail: str, instance: str, *, headers: dict[str, str] | None = None,
            extra: dict[str, Any] | None = None) -> JSONResponse:
    slug, title = SLUGS.get(status, ("error", "Error"))
    body: dict[str, Any] = {"type": BASE + slug, "title": title, "status": status,
                            "detail": detail, "instance": instance,
                            "message": f"{title}: {detail}" if detail else title}
    if extra:  # a more precise `type` may replace ours; the other members stay as they are
        protected = {"status", "detail", "instance", "message"}
        body.update({k: v for k, v in extra.items() if k not in protected})
    response = JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)
    if status == 404:
        response.headers["X-Kestra-Edition"] = "OSS"
    return response


def status_for(exc: FlowdeckError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, ExpiredError):
        return 410
    if isinstance(exc, ValidationError):
        return 422
    if isinstance(exc, BadRequestError):
        return 400
    if isinstance(exc, EngineLockedError):
        return 503
    if isinstance(exc, TooManyStreams):
        return 503 if exc.server_wide else 429
    return 422


def install(app: FastAPI) -> None:
    @app.exception_handler(FlowdeckError)
    async def _flowdeck(request: Request, exc: FlowdeckError) -> Response:
        status = status_for(exc)
        extra: dict[str, Any] = {}
        if isinstance(exc, ValidationError) and exc.problems:
            extra["errors"] = [{"path": path, "detail": msg} for path, msg in exc.problems]
        if isinstance(exc, ConflictError) and exc.details:
            extra.update(exc.details)
        return problem(status, str(exc), request.url.path, extra=extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        in_body = False
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ())]
            in_body = in_body or (bool(loc) and loc[0] == "body")
            where = ".".join(loc[1:]) if len(loc) > 1 else ".".join(loc)
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        status = 422 if in_body else 400
        return problem(status, "; ".join(problems), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else ""
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route for {request.method} {request.url.path}"
        return problem(exc.status_code, detail, request.url.path,
                       headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("unexpected error on %s %s: %s: %.200s", request.method, request.url.path,
                  type(exc).__name__, exc)
        return problem(500, "an unexpected error occurred; see the server log",
                       request.url.path)
