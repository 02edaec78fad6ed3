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

from collections.abc import Mapping
from typing import Any

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


DECISION = {"required": False, "content": {"application/json": {"schema": {
    "type": "object", "properties": {"comment": {"type": "string"},
                                     "decidedBy": {"type": "string"}}}}}}
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/approvals"): {"parameters": [
        {"name": "status", "in": "query", "required": False, "schema": {
            "type": "string", "enum": ["pending", "approved", "rejected", "expired", "all"]}},
        {"name": "executionId", "in": "query", "required": False,
         "schema": {"type": "string"}}]},
    ("POST", "/approvals/{approval_id}/approve"): {"requestBody": DECISION},
    ("POST", "/approvals/{approval_id}/reject"): {"requestBody": DECISION},
    ("POST", "/approvals/bulk-approve"): {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object", "required": ["ids"], "properties": {
            "ids": {"type": "array", "items": {"type": "string"}},
            "comment": {"type": "string"}, "decidedBy": {"type": "string"}}}}}}},
}


def describe(method: str, path: str) -> Mapping[str, Any]:
    """What the approval routes read by hand, for the OpenAPI document."""
    for tenant in TENANTS:
        if path.startswith(tenant + "/"):
            return OPERATIONS.get((method, path[len(tenant):]), {})
    return {}


def routes(context: DialectContext) -> list[Routes]:
    return [Routes(router, tenant, include_in_schema=tenant.endswith("/main"))
            for tenant in TENANTS for router in ROUTERS]


DIALECT = Dialect(
    name="flowdeck",
    prefixes=tuple(f"{tenant}/{area}" for tenant in TENANTS for area in AREAS),
    routes=routes,
    errors=KESTRA_PROBLEMS,
    identity=KESTRA_CREDENTIALS,
    openapi=describe,
)
