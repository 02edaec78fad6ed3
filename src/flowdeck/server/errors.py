"""Every error of the app becomes an `ApiError`, rendered by the dialect that serves the request.

Engine errors map to one status each (404 unknown, 409 wrong state, 410 expired, 422 invalid,
400 bad query, 403 not allowed, 503 with `Retry-After` while the store cannot write); FastAPI's
own validation is 422 for a body and 400 for a query or path value; anything unexpected is a
500 with no stack trace and no detail that could leak.

A path that no route serves (404) or serves with other methods (405) is revealed only to a
caller who may call the API at all: without credentials it is the dialect's 401.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from flowdeck.core.errors import (
    BadRequestError,
    ConflictError,
    EngineLockedError,
    ExpiredError,
    FlowdeckError,
    NotFoundError,
    PermissionDenied,
    StorageUnavailable,
    ValidationError,
)
from flowdeck.server.auth import Identity
from flowdeck.server.dialect import ApiError, ApiFailure
from flowdeck.server.sse import TooManyStreams

log = logging.getLogger("flowdeck.server")
UNEXPECTED = "an unexpected error occurred; see the server log"


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
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, EngineLockedError | StorageUnavailable):
        return 503
    if isinstance(exc, TooManyStreams):
        return 503 if exc.server_wide else 429
    return 422


def engine_error(exc: FlowdeckError, path: str,
                 redact: Callable[[str], str] = lambda text: text) -> ApiError:
    """The `ApiError` of an engine error (`redact` scrubs secrets from its messages)."""
    problems: tuple[tuple[str, str], ...] = ()
    if isinstance(exc, ValidationError) and exc.problems:
        problems = tuple((where, redact(msg)) for where, msg in exc.problems)
    details = exc.details if isinstance(exc, ConflictError) else {}
    headers = ({"Retry-After": "5"} if isinstance(exc, TooManyStreams | StorageUnavailable)
               else {})
    return ApiError(status_for(exc), redact(str(exc)), path, problems, details, headers)


def validation_error(exc: RequestValidationError, path: str) -> ApiError:
    problems = []
    in_body = False
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        in_body = in_body or (bool(loc) and loc[0] == "body")
        where = ".".join(loc[1:]) if len(loc) > 1 else ".".join(loc)
        problems.append(f"{where}: {err.get('msg', 'invalid')}")
    return ApiError(422 if in_body else 400, "; ".join(problems), path)


def allowed_methods(request: Request) -> str:
    """Every method some route serves on this path, for a 405's `Allow` (Starlette names only
    the first route that matched the path, though several routes may share it)."""
    methods: set[str] = set()
    for context in iter_route_contexts(request.app.routes):
        match, _ = context.matches(request.scope)
        if match is not Match.NONE:
            methods |= set(getattr(context.original_route, "methods", None) or ())
    methods.discard("HEAD")
    return ", ".join(sorted(methods))


def install(app: FastAPI) -> None:
    def render(request: Request, error: ApiError) -> Response:
        return request.app.state.host.render(request.scope, error)  # type: ignore[no-any-return]

    @app.exception_handler(ApiFailure)
    async def _failure(request: Request, exc: ApiFailure) -> Response:
        return render(request, exc.error)

    @app.exception_handler(FlowdeckError)
    async def _flowdeck(request: Request, exc: FlowdeckError) -> Response:
        return render(request, engine_error(exc, request.url.path))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return render(request, validation_error(exc, request.url.path))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else ""
        if exc.status_code in (404, 405) and not isinstance(
                getattr(request.state, "identity", None), Identity):
            try:  # no route admitted this caller yet: first, may it call the API at all?
                await request.app.state.host.identify(request)
            except ApiFailure as failure:
                return render(request, failure.error)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route for {request.method} {request.url.path}"
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
        return render(request, ApiError(exc.status_code, detail, request.url.path,
                                        headers=headers))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("unexpected error on %s %s: %s: %.200s", request.method, request.url.path,
                  type(exc).__name__, exc)
        return render(request, ApiError(500, UNEXPECTED, request.url.path))
