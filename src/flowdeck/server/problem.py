"""RFC 9457 `application/problem+json` bodies, plus the `message` member older clients read.

A `ProblemRenderer` is an error renderer for dialects that answer in problem+json; each names
its own `type` base. `KESTRA_PROBLEMS` is the flavour Kestra's API documents (its problem types,
and `X-Kestra-Edition` on a 404), which the Kestra-family dialects share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import JSONResponse

from flowdeck.server.dialect import ApiError

PROBLEM = "application/problem+json"
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
#: Members a dialect's extra details may not replace.
PROTECTED = frozenset({"status", "detail", "instance", "message"})


@dataclass(frozen=True, slots=True)
class ProblemRenderer:
    """Renders an `ApiError` as problem+json with `type` = `base` + a slug of the status."""

    base: str
    #: Headers added to every answer of a status (e.g. a 404's edition header).
    status_headers: Mapping[int, Mapping[str, str]] = field(default_factory=dict)

    def __call__(self, error: ApiError) -> JSONResponse:
        extra: dict[str, Any] = {}
        if error.problems:
            extra["errors"] = [{"path": path, "detail": msg} for path, msg in error.problems]
        extra.update(error.details)
        return self.problem(error.status, error.message, error.path,
                            headers=dict(error.headers), extra=extra)

    def problem(self, status: int, detail: str, instance: str, *,
                headers: dict[str, str] | None = None,
                extra: dict[str, Any] | None = None) -> JSONResponse:
        slug, title = SLUGS.get(status, ("error", "Error"))
        body: dict[str, Any] = {"type": self.base + slug, "title": title, "status": status,
                                "detail": detail, "instance": instance,
                                "message": f"{title}: {detail}" if detail else title}
        if extra:  # a more precise `type` may replace ours; the other members stay as they are
            body.update({k: v for k, v in extra.items() if k not in PROTECTED})
        response = JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)
        for name, value in self.status_headers.get(status, {}).items():
            response.headers[name] = value
        return response


KESTRA_PROBLEMS = ProblemRenderer("https://kestra.io/docs/api-reference/problems/",
                                  {404: {"X-Kestra-Edition": "OSS"}})
