"""What the forge routes share: the JSON body, paging, the caller's name, path segments."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from flowdeck.core.errors import NotFoundError, ValidationError
from flowdeck.server.auth import Identity
from flowdeck.server.deps import json_object

#: The document's default page size.
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000_000


async def body(request: Request) -> dict[str, Any]:
    """The request's JSON object (an empty body is `{}`); anything else is 400 `body`."""
    return await json_object(request)


def page(request: Request) -> tuple[int, int]:
    """`limit` (default 20) and `offset` (default 0) from the query, each named when bad."""
    return (_integer(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
            _integer(request, "offset", 0, 0, MAX_OFFSET))


def _integer(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    text = raw.strip()
    if not (text.isascii() and text.lstrip("-").isdigit()) or len(text) > 12:
        raise ValidationError([(name, f"must be an integer, got '{raw[:40]}'")])
    value = int(text)
    if not low <= value <= high:
        raise ValidationError([(name, f"must be between {low} and {high}")])
    return value


def listing(key: str, items: list[dict[str, Any]], total: int, limit: int,
            offset: int) -> dict[str, Any]:
    """The document's list shape: the items under `key`, then total, limit and offset."""
    return {key: items, "total": total, "limit": limit, "offset": offset}


def who(caller: Identity) -> str:
    """The caller as the forge records it (`created_by`, `approver`, `deployed_by`): the
    token's name; `anonymous` when the server runs without authentication."""
    return caller.name or caller.kind


def segments(path: str, what: str, template: str) -> list[str]:
    """A catch-all path's segments (`acme/shop/api/42`: a repository has a slash, written as
    is or as `%2F`, which arrives decoded); an empty segment is a 404 naming the template."""
    parts = path.split("/")
    if any(not part for part in parts):
        raise NotFoundError(f"no {what} at this path: use {template}")
    return parts



def given(data: dict[str, Any], name: str) -> Any:
    """A body field as sent, None when absent: the engine checks its type and value and
    names the field when it refuses it."""
    return data.get(name)
