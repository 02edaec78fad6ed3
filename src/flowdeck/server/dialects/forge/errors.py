"""The forge API's error body: `{"error": {"code", "message", "details"}}` (spec 002).

Every error under `/v1` comes in this body, whoever raised it (a route, the engine, FastAPI's
own validation, the body limit, the auth layer, the rate limit, an unrouted path). The codes
are the document's: `invalid_request` (400: a malformed body, a bad value, naming the field in
`details.field`), `authentication_failed` (401), `authorization_failed` (403),
`resource_not_found` (404), `resource_conflict` (409), `internal_error` (5xx). The document
has no code for the few statuses it does not list; they get the nearest one
(`invalid_request` for 405 and 413) or, for 429, `rate_limit_exceeded` with `Retry-After`.

A field problem the engine reports as 422 is answered 400, the status the document gives
invalid input.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from flowdeck.server.dialect import ApiError

CODES = {
    400: "invalid_request",
    401: "authentication_failed",
    403: "authorization_failed",
    404: "resource_not_found",
    405: "invalid_request",
    409: "resource_conflict",
    410: "resource_not_found",
    413: "invalid_request",
    415: "invalid_request",
    422: "invalid_request",
    429: "rate_limit_exceeded",
}
#: Statuses answered as another one (the document gives invalid input 400).
STATUS = {422: 400}


def code_for(status: int) -> str:
    if status >= 500:
        return "internal_error"
    return CODES.get(status, "invalid_request")


def render(error: ApiError) -> JSONResponse:
    status = STATUS.get(error.status, error.status)
    details: dict[str, Any] = {}
    if error.problems:
        details["field"] = error.problems[0][0] or "body"
        details["problems"] = [{"field": where or "body", "message": what}
                               for where, what in error.problems]
    details.update(error.details)
    retry = error.headers.get("Retry-After")
    if retry is not None and retry.isdigit():
        details["retry_after_seconds"] = int(retry)
    allowed = error.headers.get("Allow")
    if allowed:
        details["allowed_methods"] = [m.strip() for m in allowed.split(",") if m.strip()]
    message = error.message
    if status == 405 and allowed:
        message = f"{message}: this path takes {allowed}"
    body = {"error": {"code": code_for(status), "message": message,
                      "details": details}}
    return JSONResponse(body, status_code=status, headers=dict(error.headers))
