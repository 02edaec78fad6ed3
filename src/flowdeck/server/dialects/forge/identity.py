"""Who calls the forge API: a Bearer token (the document's only credential), nothing else.

HTTP Basic is not accepted here; a request without a Bearer token is told so in a 401
(`authentication_failed`, `WWW-Authenticate: Bearer realm="forge"`), as is an unknown, revoked
or expired token. With the server's authentication off (loopback, no credentials configured)
every caller is `anonymous`, as on the server's other APIs.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from flowdeck.server.auth import Authenticator, HttpCredentials, Identity, redact
from flowdeck.server.dialect import ApiError, ApiFailure

CHALLENGE = 'Bearer realm="forge"'
MISSING = "a Bearer token is required: send Authorization: Bearer <token>"
_TOKENS = HttpCredentials(basic=False, bearer=True, challenge=CHALLENGE)


@dataclass(frozen=True, slots=True)
class BearerTokens:
    challenge: str | None = CHALLENGE

    async def identify(self, request: Request, auth: Authenticator) -> Identity:
        if auth.required:
            scheme, _, rest = (request.headers.get("authorization") or "").strip().partition(" ")
            if scheme.lower() != "bearer" or not rest.strip():
                raise ApiFailure(ApiError(401, MISSING, redact(request.url.path),
                                          headers={"WWW-Authenticate": CHALLENGE}))
        return await _TOKENS.identify(request, auth)


BEARER = BearerTokens()
