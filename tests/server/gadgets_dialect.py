"""A throwaway dialect, defined entirely here: what adding an API takes (one object).

`/gadgets/v1/...`, errors as `{"fault": {"status", "text", "where"}}`, callers identified by an
`X-Gadget-Key` header (its own scheme, no challenge), five requests per minute per caller in a
fixed window with `X-RateLimit-Reset` in epoch milliseconds (the window's clock comes from
`extra["gadget_clock"]`, so tests control it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from flowdeck.engine.keys import Role
from flowdeck.server.access import OPEN_ROUTE, OPERATOR, SERVICE, VIEWER, Caller
from flowdeck.server.auth import ANONYMOUS, Authenticator, Identity
from flowdeck.server.dialect import ApiError, ApiFailure, Dialect, DialectContext, Routes
from flowdeck.server.options import ServerOptions
from flowdeck.server.ratelimit import FixedWindow, RateLimit

PREFIX = "/gadgets/v1"
KEYS = {f"k-{role}": Identity("gadget-key", f"{role}-gadgeteer", str(role), f"id-{role}")
        for role in Role}
LIMIT = 5


def render(error: ApiError) -> JSONResponse:
    return JSONResponse({"fault": {"status": error.status, "text": error.message,
                                   "where": error.path}},
                        status_code=error.status, headers=dict(error.headers))


@dataclass(frozen=True, slots=True)
class GadgetKeys:
    challenge: str | None = None

    async def identify(self, request: Request, auth: Authenticator) -> Identity:
        if not auth.required:
            return ANONYMOUS
        found = KEYS.get(request.headers.get("x-gadget-key", ""))
        if found is None:
            raise ApiFailure(ApiError(401, "unknown gadget key", request.url.path))
        return found


class Gadget(BaseModel):
    name: str
    weight: int


def routes(context: DialectContext) -> list[Routes]:
    router = APIRouter(prefix=PREFIX, tags=["gadgets"])
    stock: list[Gadget] = []

    @router.get("/items", dependencies=VIEWER)
    async def items() -> list[Gadget]:
        return stock

    @router.post("/items", dependencies=OPERATOR, status_code=201)
    async def add(gadget: Gadget, caller: Caller) -> dict[str, str]:
        stock.append(gadget)
        return {"added": gadget.name, "by": caller.name}

    @router.get("/boom", dependencies=VIEWER)
    async def boom() -> None:
        raise RuntimeError("a bug in a gadget")

    @router.get("/hooks/{key}", dependencies=OPEN_ROUTE)
    async def hook(key: str, caller: Caller) -> dict[str, str]:
        return {"kind": caller.kind}

    @router.put("/calibration", dependencies=SERVICE)
    async def calibrate(caller: Caller) -> dict[str, str]:
        return {"calibrated_by": caller.name}

    return [Routes(router)]


def rate_limit(options: ServerOptions) -> RateLimit:
    clock: Callable[[], float] = options.extra.get("gadget_clock", time.time)
    return RateLimit(FixedWindow(LIMIT, 60.0, clock=clock), key="key", reset_unit="epoch_ms",
                     message="slow down, gadgeteer")


GADGETS = Dialect(
    name="gadgets",
    prefixes=(PREFIX,),
    routes=routes,
    errors=render,
    identity=GadgetKeys(),
    open_routes=frozenset({f"{PREFIX}/hooks/{{key}}"}),
    rate_limit=rate_limit,
)
