"""What an HTTP API ("dialect") is to the server: one object the host mounts.

A dialect lives in `server/dialects/<name>/` and exposes one `Dialect`: the path prefixes it owns,
a factory for its routes, how its errors look, how its callers identify themselves, which of its
routes are open, and optionally a rate limit, a start-up hook and OpenAPI tags. `create_app`
mounts a list of them and knows nothing of any one; no dialect imports another.

Errors travel as `ApiError`, a neutral description (status, message, the path to name, field
problems, extra members, headers) that each dialect renders in its own body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from starlette.responses import Response

if TYPE_CHECKING:
    from fastapi import APIRouter, Request
    from starlette.routing import BaseRoute

    from flowdeck.engine.engine import Engine
    from flowdeck.server.auth import Authenticator, Identity
    from flowdeck.server.options import ServerOptions
    from flowdeck.server.ratelimit import RateLimit


@dataclass(frozen=True, slots=True)
class ApiError:
    """One error answer, before a dialect gives it its body."""

    status: int
    message: str
    #: The request path to name in the body (a webhook key already replaced by `***`).
    path: str
    #: Field-level problems: (where, what is wrong).
    problems: tuple[tuple[str, str], ...] = ()
    #: Extra members a dialect may carry over (e.g. who decided a contested approval).
    details: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


class ApiFailure(Exception):
    """Raise to answer with `error`, rendered by the dialect that serves the request."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


ErrorRenderer = Callable[[ApiError], Response]


class IdentityScheme(Protocol):
    """How a dialect's callers say who they are (HTTP Basic, Bearer tokens, API keys...)."""

    @property
    def challenge(self) -> str | None:
        """The `WWW-Authenticate` value of a 401, or None for none."""
        ...

    async def identify(self, request: Request, auth: Authenticator) -> Identity:
        """The caller, or raise `ApiFailure` (401, or 429 while the address is locked out)."""
        ...


@dataclass(frozen=True, slots=True)
class Routes:
    """A router of a dialect, mounted at `prefix`. A dialect lists its routers one by one
    rather than nesting them in one: each level of nesting costs every request a walk."""

    router: APIRouter
    prefix: str = ""
    include_in_schema: bool = True


@dataclass(frozen=True, slots=True)
class DialectContext:
    """What a dialect's route factory may use: the engine and the server's options."""

    engine: Engine
    options: ServerOptions


@dataclass(frozen=True, slots=True)
class Dialect:
    """One API served by the host."""

    name: str
    #: Paths it owns; the longest matching prefix picks the dialect of an unrouted request.
    prefixes: tuple[str, ...]
    #: Builds its routers for one app (called once per `create_app`), matched in this order.
    routes: Callable[[DialectContext], Sequence[Routes]]
    errors: ErrorRenderer
    identity: IdentityScheme
    #: Full path templates served without credentials; a route that declares itself open
    #: but is not listed here is refused.
    open_routes: frozenset[str] = frozenset()
    #: Plain routes matched before every other one (hot reads that skip dependency solving);
    #: each carries the `Access` it needs as its `access` attribute.
    fast_routes: Callable[[DialectContext], Sequence[BaseRoute]] | None = None
    #: A rate limit for every routed request of this dialect, built once per app.
    rate_limit: Callable[[ServerOptions], RateLimit] | None = None
    #: Run by `flowdeck serve` once the engine has started; may return a line to print.
    on_startup: Callable[[Engine], Awaitable[str | None]] | None = None
    openapi_tags: tuple[Mapping[str, Any], ...] = ()
    #: What routes reading their own requests cannot tell FastAPI: given a method and a full
    #: path template, extra OpenAPI operation fields (`parameters`, `requestBody`).
    openapi: Callable[[str, str], Mapping[str, Any]] | None = None


def owns(prefix: str, path: str) -> bool:
    """Whether `path` is `prefix` or below it (whole segments: `/api/v10` is not `/api/v1`)."""
    if prefix in ("", "/"):
        return True
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")
