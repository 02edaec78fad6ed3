"""The public API's error body: `{"message", "error", "statusCode"}` for every status.

`error` is the status's reason phrase ("Unauthorized", "Not Found"...). A 429 is the body the
API documents, `{"statusCode", "message": "Rate limit exceeded", "error": "Too Many Requests",
"retryAfter"}`, with `Retry-After` and the `X-RateLimit-*` headers. Nothing else is added: a
field problem is named in `message` (`input.csvData[3]: ...`), as is who decided an approval
first.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi.responses import JSONResponse

from flowdeck.server.dialect import ApiError

RATE_LIMITED = "Rate limit exceeded"
INVALID_BODY = "Request body must be a JSON object"


def reason(status: int) -> str:
    """`Not Found`, `Too Many Requests`... (`Payload Too Large` for 413, as the API's
    framework says it)."""
    if status == 413:
        return "Payload Too Large"
    if status == 422:
        return "Unprocessable Entity"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def retry_after(error: ApiError) -> int:
    try:
        return max(1, int(error.headers.get("Retry-After", "1")))
    except ValueError:
        return 1


def render(error: ApiError) -> JSONResponse:
    body: dict[str, Any]
    if error.status == 429:
        body = {"statusCode": 429, "message": RATE_LIMITED, "error": reason(429),
                "retryAfter": retry_after(error)}
    else:
        body = {"message": error.message, "error": reason(error.status),
                "statusCode": error.status}
    return JSONResponse(body, status_code=error.status, headers=dict(error.headers))
