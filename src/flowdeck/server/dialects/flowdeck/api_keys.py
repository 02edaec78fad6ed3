"""The public API's keys, managed over HTTP by the admin (flowdeck's own routes).

- `GET /api-keys` → `[ApiKey]` (oldest first);
- `POST /api-keys` `{"name", "workflows": [...], "usageLimit", "expiresIn": "P30D",
  "webhookUrl", "webhookEvents": [...], "webhookSecret"}` → 201 the new key, with its secret
  as `key`: the only answer that ever holds it;
- `GET /api-keys/{id}` → ApiKey; `POST /api-keys/{id}/revoke` → the revoked ApiKey.

An ApiKey is `{id, name, prefix, status, active, allowedWorkflows, usageLimit, usageCount,
usageMonth, webhookUrl, webhookEvents, hasWebhookSecret, createdAt, expiresAt, revokedAt,
lastUsedAt}`: never the secret, its hash or the webhook's signing secret.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from flowdeck.core.errors import ValidationError
from flowdeck.core.public import DEFAULT_USAGE_LIMIT
from flowdeck.core.timefmt import parse_duration
from flowdeck.server.access import ADMIN
from flowdeck.server.deps import get_engine, json_object

router = APIRouter(tags=["api-keys"], dependencies=ADMIN)
FIELDS = frozenset({"name", "workflows", "allowedWorkflows", "usageLimit", "expiresIn",
                    "webhookUrl", "webhookEvents", "webhookSecret"})


def text_or_none(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or isinstance(value, str):
        return value
    raise ValidationError([(name, "must be a string or null")])


def text_list(body: dict[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValidationError([(name, "must be a list of strings")])


def duration_or_none(body: dict[str, Any], name: str) -> timedelta | None:
    text = text_or_none(body, name)
    if text is None or not text.strip():
        return None
    try:
        return parse_duration(text.strip())
    except ValueError as exc:
        raise ValidationError([(name, str(exc))]) from None


def usage_limit(body: dict[str, Any]) -> int:
    value = body.get("usageLimit")
    if value is None:
        return DEFAULT_USAGE_LIMIT
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError([("usageLimit", "must be a whole number")])
    return value


@router.get("/api-keys", summary="List the public API's keys (never their secrets)")
async def list_keys(request: Request) -> JSONResponse:
    engine = get_engine(request)
    now = engine.clock.now()
    return JSONResponse([key.to_dict(now) for key in await engine.public.list_keys()])


@router.post("/api-keys", status_code=201,
             summary="Create a public API key (its secret is in this answer only)")
async def create_key(request: Request) -> JSONResponse:
    engine = get_engine(request)
    body = await json_object(request)
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise ValidationError([(name, "is not a field of an API key") for name in unknown])
    name = body.get("name")
    if not isinstance(name, str):
        raise ValidationError([("name", "is required (a string)")])
    workflows = text_list(body, "workflows")
    if workflows is None:
        workflows = text_list(body, "allowedWorkflows")
    created = await engine.public.create_key(
        name, workflows=workflows or [], usage_limit=usage_limit(body),
        expires_in=duration_or_none(body, "expiresIn"),
        webhook_url=text_or_none(body, "webhookUrl"),
        webhook_events=text_list(body, "webhookEvents"),
        webhook_secret=text_or_none(body, "webhookSecret"))
    return JSONResponse(created.to_dict(engine.clock.now()), status_code=201)


@router.get("/api-keys/{key_id}", summary="One public API key")
async def get_key(request: Request, key_id: str) -> JSONResponse:
    engine = get_engine(request)
    return JSONResponse((await engine.public.get_key(key_id)).to_dict(engine.clock.now()))


@router.post("/api-keys/{key_id}/revoke", summary="Revoke a public API key for good")
async def revoke_key(request: Request, key_id: str) -> JSONResponse:
    engine = get_engine(request)
    return JSONResponse((await engine.public.revoke_key(key_id)).to_dict(engine.clock.now()))
