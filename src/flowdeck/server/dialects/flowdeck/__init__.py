"""flowdeck's own extensions beside Kestra's API, mounted with and without the `main` tenant.

- `/approvals...`: the human gate (list, get, approve, reject, bulk-approve, follow);
- `/me`: the caller's kind, name and role;
- `/tokens...`, `/api-keys...`: reserved for the admin.

The deck and the CLI read these with the Kestra API, so they speak the same problem+json and
take the same credentials.
"""

from __future__ import annotations

from flowdeck.server.auth import KESTRA_CREDENTIALS
from flowdeck.server.dialect import Dialect, DialectContext, Routes
from flowdeck.server.dialects.flowdeck import approvals, me, reserved
from flowdeck.server.problem import KESTRA_PROBLEMS

TENANTS = ("/api/v1/main", "/api/v1")
AREAS = ("approvals", "me", *reserved.AREAS)


def routes(context: DialectContext) -> list[Routes]:
    return [Routes(router, tenant, include_in_schema=tenant.endswith("/main"))
            for tenant in TENANTS for router in (approvals.router, me.router, reserved.router)]


DIALECT = Dialect(
    name="flowdeck",
    prefixes=tuple(f"{tenant}/{area}" for tenant in TENANTS for area in AREAS),
    routes=routes,
    errors=KESTRA_PROBLEMS,
    identity=KESTRA_CREDENTIALS,
)
