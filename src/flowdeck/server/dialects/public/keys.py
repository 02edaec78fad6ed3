"""Who calls the public API: `Authorization: Bearer <API key>`, and nothing else.

The key is one of the public API's keys (`engine.public`: 64 hex characters, looked up by its
SHA-256 and compared in constant time); a Kestra API token or the server's Basic user is not
one. The key is required even on a loopback server without auth: it decides which executions
the caller may see. Anything else (no header, another scheme, a malformed, unknown or
revoked-and-deleted key) is the same 401 "Invalid API key". A revoked or expired key is
still identified: each route answers it with the 403 the API documents.

A refused caller still counts against the rate limit, by address (a caller with a key counts
by its key), so every answer carries the `X-RateLimit-*` headers and a stream of bad keys is
throttled like any other stream of calls.

The caller is an `Identity` of kind `api-key` named after the key, with the key's id as
`token_id` and the approver role: within this API (the only one a public key opens) a key may
read, execute and decide its own executions. The key itself is left in `request.state` for
the routes (`CallerKey`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from flowdeck.core.public import INVALID_KEY, ApiKey, InvalidApiKey
from flowdeck.engine.keys import Role
from flowdeck.server.auth import Authenticator, Identity, client_ip, redact
from flowdeck.server.dialect import ApiError, ApiFailure

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine
    from flowdeck.server.host import Host

KIND = "api-key"
#: Where the identified key waits for the route.
STATE_KEY = "public_api_key"


def bearer_secret(request: Request) -> str | None:
    """The credentials of `Authorization: Bearer <secret>` (any case of `Bearer`), or None."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, secret = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return secret.strip() or None


@dataclass(frozen=True, slots=True)
class PublicApiKeys:
    """The public dialect's `IdentityScheme`."""

    challenge: str | None = 'Bearer realm="public"'

    async def identify(self, request: Request, auth: Authenticator) -> Identity:
        engine: Engine = request.app.state.engine
        host: Host = request.app.state.host
        limit = host.rate_limit_of(request.scope)
        try:
            key = await engine.public.authenticate(bearer_secret(request))
        except InvalidApiKey:
            if limit is not None:
                host.limit(request, limit, "ip:" + client_ip(request))  # may answer 429
            raise ApiFailure(ApiError(
                401, INVALID_KEY, redact(request.url.path),
                headers={"WWW-Authenticate": self.challenge} if self.challenge else {},
            )) from None
        request.scope.setdefault("state", {})[STATE_KEY] = key
        if limit is not None:  # counted here too when no route admits it (an unrouted path)
            host.limit(request, limit, "key:" + key.id)
        return Identity(KIND, key.name, Role.APPROVER.value, key.id)


PUBLIC_API_KEYS = PublicApiKeys()


async def caller_key(request: Request) -> ApiKey:
    """The API key the route's access check identified (async: FastAPI would run a plain
    function in its thread pool, a thread hop on every call for a dictionary lookup)."""
    key = request.scope.get("state", {}).get(STATE_KEY)
    if not isinstance(key, ApiKey):
        raise ApiFailure(ApiError(401, INVALID_KEY, redact(request.url.path)))
    return key


CallerKey = Annotated[ApiKey, Depends(caller_key)]
