"""The host: the dialects of one app, and the decisions that depend on which one a request hits.

- **Which dialect.** A routed request belongs to the dialect whose router holds its route; any
  other (no route, or an error before routing such as a 413) to the dialect with the longest
  prefix that owns its path, else to the first dialect of the list.
- **Mount order.** Fast routes first (plain routes for the hottest paths, `/ping` and the
  dialects' own), then the host's other routes, then the dialects' routers, the most specific
  first (the longest prefix first; ties keep the list order), so `/api/v1/public/...` is
  matched before Kestra's `/api/v1/{...}`.
- **Access.** `admit` runs a route's declared access: the dialect's rate limit, its identity
  scheme, the roles. A dialect route without a rule, or declaring itself open without being in
  its dialect's `open_routes`, stops the app from being built; on every request,
  `check_declared` refuses a route without a rule (one added later) and `admit` an open marker
  on a route the host did not verify.
- **Errors.** `render` hands an `ApiError` to the dialect's renderer. A dialect limiting by
  address counts every request under its paths, not only admitted ones: one that no route
  admitted (unrouted, 405, or refused before routing, such as a 413) is counted as its error is
  rendered (a 429 if it is over the limit); and a rendered error carries the limit headers the
  request was given, since a 500 is sent past the middleware that adds them to other answers.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from flowdeck.server.access import Access, access_of
from flowdeck.server.auth import OPEN, Authenticator, Identity, client_ip, redact
from flowdeck.server.dialect import (
    ApiError,
    ApiFailure,
    Dialect,
    DialectContext,
    Routes,
    owns,
)
from flowdeck.server.ratelimit import RateLimit

log = logging.getLogger("flowdeck.server")

LIMITED = "rate_limited"


class Host:
    """The dialects of one app; `app.state.host`."""

    def __init__(self, dialects: Sequence[Dialect], auth: Authenticator,
                 context: DialectContext) -> None:
        if not dialects:
            raise ValueError("the server needs at least one dialect")
        names = [d.name for d in dialects]
        if len(set(names)) != len(names):
            raise ValueError(f"two dialects share a name: {names}")
        self.dialects = tuple(dialects)
        self.auth = auth
        self.context = context
        self.fallback = self.dialects[0]
        self._prefixes = sorted(((p, d) for d in self.dialects for p in d.prefixes),
                                key=lambda item: -len(item[0]))
        self._route_dialect: dict[int, Dialect] = {}
        self._access: dict[int, tuple[BaseRoute, tuple[Access, ...]]] = {}
        self._open_ok: set[int] = set()
        self._limits = {d.name: d.rate_limit(context.options) for d in self.dialects
                        if d.rate_limit is not None}

    # -- building --------------------------------------------------------------------------

    def mount(self, app: FastAPI, own: APIRouter, own_fast: Sequence[BaseRoute],
              own_open: frozenset[str]) -> None:
        """Mount the host's routes, then every dialect (see the module docstring)."""
        fast = [self._fast(route, self.fallback, own_open, stamp=False) for route in own_fast]
        self._include(app, [Routes(own)], self.fallback, own_open, stamp=False)
        for dialect in self.dialects:
            if dialect.fast_routes is not None:
                fast.extend(self._fast(route, dialect, dialect.open_routes, stamp=True)
                            for route in dialect.fast_routes(self.context))
        app.router.routes[0:0] = fast
        order = sorted(enumerate(self.dialects),
                       key=lambda item: (-max(map(len, item[1].prefixes), default=0), item[0]))
        for _, dialect in order:
            self._include(app, dialect.routes(self.context), dialect, dialect.open_routes,
                          stamp=True)

    def _fast(self, route: BaseRoute, dialect: Dialect, open_paths: frozenset[str], *,
              stamp: bool) -> BaseRoute:
        if stamp:
            self._route_dialect[id(route)] = dialect
        self._verify(route, str(getattr(route, "path", route)), dialect, open_paths)
        return route

    def _include(self, app: FastAPI, mounts: Sequence[Routes], dialect: Dialect,
                 open_paths: frozenset[str], *, stamp: bool) -> None:
        for mount in mounts:
            start = len(app.router.routes)
            app.include_router(mount.router, prefix=mount.prefix,
                               include_in_schema=mount.include_in_schema)
            for context in iter_route_contexts(app.router.routes[start:]):
                route = context.original_route
                if stamp:
                    self._route_dialect[id(route)] = dialect
                self._verify(route, str(context.path), dialect, open_paths)

    def _verify(self, route: BaseRoute, path: str, dialect: Dialect,
                open_paths: frozenset[str]) -> None:
        rules = self.declared(route)
        if not rules:
            raise ValueError(f"route {path!r} of dialect '{dialect.name}' declares no access "
                             "(require(...) or OPEN_ROUTE)")
        if any(rule.open for rule in rules):
            if len(rules) > 1:
                raise ValueError(f"route {path!r} is declared both open and not")
            if path not in open_paths:
                raise ValueError(f"route {path!r} declares itself open but dialect "
                                 f"'{dialect.name}' does not list it as open")
            self._open_ok.add(id(route))

    # -- which dialect -------------------------------------------------------------------------

    def dialect_for(self, scope: Scope) -> Dialect:
        route = scope.get("route")
        if route is not None:
            found = self._route_dialect.get(id(route))
            if found is not None:
                return found
        path: str = scope.get("path", "")
        for prefix, dialect in self._prefixes:
            if owns(prefix, path):
                return dialect
        return self.fallback

    def render(self, scope: Scope, error: ApiError) -> Response:
        dialect = self.dialect_for(scope)
        return dialect.errors(self._limited(scope, dialect, error))

    def _limited(self, scope: Scope, dialect: Dialect, error: ApiError) -> ApiError:
        """`error` with the rate-limit headers of its request (see the module docstring)."""
        state = scope.setdefault("state", {})
        limit = self._limits.get(dialect.name) if self._limits else None
        if limit is not None and limit.key == "ip" and not state.get(LIMITED):
            state[LIMITED] = True
            client = scope.get("client")
            decision = limit.limiter.hit(client[0] if client else "unknown")
            headers = limit.headers(decision)
            state.setdefault("response_headers", []).extend(headers.items())
            if not decision.allowed:
                error = ApiError(429, limit.message, error.path, headers=headers)
        given = state.get("response_headers")
        if not given:
            return error
        return dataclasses.replace(error, headers={**dict(given), **error.headers})

    # -- access ------------------------------------------------------------------------------

    def declared(self, route: Any) -> tuple[Access, ...]:
        """The access rules a route declares (cached per route object)."""
        known = self._access.get(id(route))
        if known is not None and known[0] is route:
            return known[1]
        rules: list[Access] = []
        direct = getattr(route, "access", None)
        if isinstance(direct, Access):
            rules.append(direct)
        if isinstance(route, APIRoute):
            pending = list(route.dependant.dependencies)
            while pending:
                dependency = pending.pop()
                rule = access_of(dependency.call)
                if rule is not None:
                    rules.append(rule)
                pending.extend(dependency.dependencies)
        self._access[id(route)] = (route, tuple(rules))
        return tuple(rules)

    def route_for(self, app: FastAPI, method: str, path: str) -> BaseRoute | None:
        """The route `method path` reaches in `app` (as the router would pick it), or None."""
        scope = {"type": "http", "method": method, "path": path, "root_path": "",
                 "headers": [], "query_string": b""}
        for context in iter_route_contexts(app.routes):
            match, _ = context.matches(scope)
            if match is Match.FULL:
                return context.original_route
        return None

    async def check_declared(self, request: Request) -> None:
        if not self.declared(request.scope.get("route")):
            self._refuse(request, "declares no access rule")

    def _refuse(self, request: Request, why: str) -> None:
        """Fail closed: log which endpoint was reached and answer the 401 challenge."""
        log.error("%s %s reached %r, which %s; refused", request.method,
                  redact(request.url.path), request.scope.get("endpoint"), why)
        scheme = self.dialect_for(request.scope).identity
        raise ApiFailure(ApiError(
            401, "this route is not open; it needs credentials", redact(request.url.path),
            headers={"WWW-Authenticate": scheme.challenge} if scheme.challenge else {}))

    async def identify(self, request: Request) -> Identity:
        """The caller by the dialect's scheme, checked once per request."""
        return await self._identify(request, self.dialect_for(request.scope))

    async def _identify(self, request: Request, dialect: Dialect) -> Identity:
        state = request.scope.setdefault("state", {})
        known = state.get("identity")
        if isinstance(known, Identity) and known is not OPEN:
            return known
        identity = await dialect.identity.identify(request, self.auth)
        state["identity"] = identity
        return identity

    async def admit(self, request: Request, access: Access,
                    route: BaseRoute | None = None) -> Identity:
        """The caller, if `access` admits it (else `ApiFailure`). A plain route passes itself
        as `route` (the router records only FastAPI routes in the scope)."""
        scope = request.scope
        if route is not None:
            scope["route"] = route
        dialect = self.dialect_for(scope)
        limit = self._limits.get(dialect.name) if self._limits else None
        if limit is not None and limit.key == "ip":
            self.limit(request, limit, client_ip(request))
        if access.open:
            if id(scope.get("route")) not in self._open_ok:
                self._refuse(request, "is not an open route of its dialect")
            scope.setdefault("state", {})["identity"] = OPEN
            identity = OPEN
        else:
            identity = await self._identify(request, dialect)
            if not access.admits(identity):
                shown = redact(request.url.path)
                raise ApiFailure(ApiError(
                    403, f"role '{identity.role}' may not {request.method} {shown}; it needs "
                         f"{access.describe()}", shown))
        if limit is not None and limit.key != "ip":
            self.limit(request, limit, self._limit_key(request, limit, identity))
        return identity

    def rate_limit_of(self, scope: Scope) -> RateLimit | None:
        """The rate limit of the dialect serving `scope`, for an identity scheme that counts
        a request it refuses (None: that dialect has no limit)."""
        return self._limits.get(self.dialect_for(scope).name)

    def _limit_key(self, request: Request, limit: RateLimit, identity: Identity) -> str:
        if identity.kind in ("anonymous", "open"):
            return "ip:" + client_ip(request)
        if limit.key == "key" and identity.token_id:
            return "key:" + identity.token_id
        return f"{identity.kind}:{identity.name}"

    def limit(self, request: Request, limit: RateLimit, key: str) -> None:
        """Count the request once; its headers go on the response, a refusal is a 429."""
        state = request.scope.setdefault("state", {})
        if state.get(LIMITED):
            return
        state[LIMITED] = True
        decision = limit.limiter.hit(key)
        headers = limit.headers(decision)
        state.setdefault("response_headers", []).extend(headers.items())
        if not decision.allowed:
            raise ApiFailure(ApiError(429, limit.message, redact(request.url.path),
                                      headers=headers))
