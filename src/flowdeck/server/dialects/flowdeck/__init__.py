"""flowdeck's own extensions beside Kestra's API, mounted with and without the `main` tenant.

- `/approvals...`: the human gate (list, get, approve, reject, bulk-approve, follow);
- `/me`: the caller's kind, name and role;
- `/api-keys...`: the public API's keys (admin);
- `/webhook-deliveries...`: the webhook outbox, and redelivery (admin);
- `/agent-messages`: what agents delivered;
- `/tokens...`: reserved for the admin.

The deck and the CLI read these with the Kestra API, so they speak the same problem+json and
take the same credentials.
"""

from __future__ import annotations

from flowdeck.server.auth import KESTRA_CREDENTIALS
from flowdeck.server.dialect import Dialect, DialectContext, Routes
from flowdeck.server.dialects.flowdeck import (
    agent_messages,
    api_keys,
    approvals,
    me,
    reserved,
    webhook_deliveries,
)
from flowdeck.server.problem import KESTRA_PROBLEMS

TENANTS = ("/api/v1/main", "/api/v1")
AREAS = ("approvals", "me", "api-keys", "webhook-deliveries", "agent-messages",
         *reserved.AREAS)
ROUTERS = (approvals.router, me.router, api_keys.router, webhook_deliveries.router,
           agent_messages.router, reserved.router)


def routes(context: DialectContext) -> list[Routes]:
    return [Routes(router, tenant, include_in_schema=tenant.endswith("/main"))
            for tenant in TENANTS for router in ROUTERS]


DIALECT = Dialect(
    name="flowdeck",
    prefixes=tuple(f"{tenant}/{area}" for tenant in TENANTS for area in AREAS),
    routes=routes,
    errors=KESTRA_PROBLEMS,
    identity=KESTRA_CREDENTIALS,
)
