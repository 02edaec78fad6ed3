"""Who may call a route, declared on the route itself.

Every route declares its access as a dependency, next to its path:

    @router.post("/approvals/{id}/approve", dependencies=APPROVER)
    @router.post("/executions/webhook/...", dependencies=OPEN_ROUTE)

`require(*roles)` admits a caller holding any of the roles (on the ladder viewer < operator <
approver < admin a higher role holds the lower ones; `service` holds only itself); `OPEN_ROUTE`
admits anyone without looking at credentials, and only on a route its dialect lists in
`open_routes`. A handler that needs the caller asks for `Caller` (an `Identity`).

Fail closed: the app-wide dependency `declared_access` refuses a request whose route declares
neither (a route added without a rule, or one shadowing an open route), before anything else
runs; `tests/server/test_route_access.py` walks every mounted route to prove each declares one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam
from starlette.routing import BaseRoute

from flowdeck.engine.keys import Role
from flowdeck.server.auth import Identity


@dataclass(frozen=True, slots=True)
class Access:
    """What a route needs: one of `roles`, or nothing at all when `open`."""

    roles: frozenset[Role] = frozenset()
    open: bool = False

    def admits(self, identity: Identity) -> bool:
        return self.open or any(identity.allows(role) for role in self.roles)

    def describe(self) -> str:
        if self.open:
            return "open"
        if self.roles == {Role.SERVICE}:
            return "'service'"
        names = sorted(self.roles, key=list(Role).index)
        return " or ".join(f"'{r}'" for r in names) + " or above"


class Gate(Protocol):
    """The host's side of an access check (see `server/host.py`)."""

    async def admit(self, request: Request, access: Access,
                    route: BaseRoute | None = None) -> Identity: ...

    async def check_declared(self, request: Request) -> None: ...

    async def identify(self, request: Request) -> Identity: ...


def gate(request: Request) -> Gate:
    found: Gate = request.app.state.host
    return found


AccessCheck = Callable[[Request], Awaitable[Identity]]


def _check(access: Access) -> AccessCheck:
    async def check(request: Request) -> Identity:
        return await gate(request).admit(request, access)

    check.access = access  # type: ignore[attr-defined]
    check.__name__ = f"access_{'open' if access.open else '_'.join(sorted(access.roles))}"
    return check


@cache
def _checks(roles: frozenset[Role], open_: bool) -> AccessCheck:
    return _check(Access(roles, open_))


def require(*roles: Role) -> AccessCheck:
    """A dependency admitting a caller that holds any of `roles`."""
    if not roles:
        raise ValueError("require() needs at least one role; use OPEN_ROUTE for none")
    return _checks(frozenset(roles), False)


def access_of(call: Any) -> Access | None:
    """The access a dependency callable declares, if it is one of ours."""
    found = getattr(call, "access", None)
    return found if isinstance(found, Access) else None


def _depends(check: AccessCheck) -> list[DependsParam]:
    return [Depends(check)]


#: Route `dependencies=` for the common cases.
VIEWER = _depends(require(Role.VIEWER))
OPERATOR = _depends(require(Role.OPERATOR))
APPROVER = _depends(require(Role.APPROVER))
ADMIN = _depends(require(Role.ADMIN))
SERVICE = _depends(require(Role.SERVICE))
OPEN_ROUTE = _depends(_checks(frozenset(), True))


async def declared_access(request: Request) -> None:
    """App-wide: refuse a request whose route declares no access rule (fail closed)."""
    await gate(request).check_declared(request)


async def current_identity(request: Request) -> Identity:
    """The caller the route's access check admitted."""
    known = getattr(request.state, "identity", None)
    if isinstance(known, Identity):
        return known
    return await gate(request).identify(request)


Caller = Annotated[Identity, Depends(current_identity)]
