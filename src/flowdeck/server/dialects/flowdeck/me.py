"""`GET /me`: who the server takes the caller for, so a client can hide what it may not do.

Answers `{"kind", "name", "role"}`: `basic` (the configured user, admin), `token` (an API
token's name and role), or `anonymous`/`admin` when auth is off.
"""

from __future__ import annotations

from fastapi import APIRouter

from flowdeck.server.access import VIEWER, Caller

router = APIRouter(tags=["flowdeck"])


@router.get("/me", dependencies=VIEWER, summary='The caller: {"kind", "name", "role"}')
async def me(caller: Caller) -> dict[str, str]:
    return {"kind": caller.kind, "name": caller.name, "role": caller.role}
