"""Kestra's API (spec 001 and Kestra OSS 1.x/2.x), mounted with and without the `main` tenant.

Errors are Kestra's problem+json; callers use HTTP Basic or API tokens (realm "Kestra"); the
webhook trigger and `/api/v1/configs/login` are open. Settings: `extra["kestra_version"]`, the
version the server presents (2.0.0 by default; 2.x adds `"type": "OFFSET"` to log pages).
"""

from __future__ import annotations

from fastapi import APIRouter

from flowdeck.server.auth import KESTRA_CREDENTIALS
from flowdeck.server.dialect import Dialect, DialectContext, Routes
from flowdeck.server.dialects.kestra import (
    actions,
    api_doc,
    bulk,
    concurrency,
    configs,
    dependencies,
    execution_files,
    execution_views,
    executions,
    exports,
    expressions,
    fast,
    files,
    flow_replace,
    flow_source,
    flow_sync,
    flow_tools,
    flows,
    follow,
    input_validation,
    kv,
    logs,
    outputs,
    taskrun_state,
    triggers,
    webhooks,
)
from flowdeck.server.options import flowdeck_version
from flowdeck.server.problem import KESTRA_PROBLEMS

TENANTS = ("/api/v1/main", "/api/v1")


def module_routers() -> tuple[APIRouter, ...]:
    """The tenant-relative routers, in match order. Webhooks first: their open, key-in-path
    routes must not be shadowed by execution routes; then the literal execution paths
    (`/executions/latest`, `/executions/kill/by-ids`, ...) before the busiest reads; the
    literal flow paths (`/flows/import`, ...) before `/flows/{namespace}/...`, and
    `POST /flows/{namespace}` (flow_sync) after every literal `POST /flows/<word>`."""
    return (webhooks.router, exports.router, execution_views.router, execution_files.router,
            bulk.router, executions.reads, actions.router, taskrun_state.router,
            input_validation.router, expressions.router, executions.writes, follow.router,
            outputs.router, logs.router, flow_tools.router, dependencies.router,
            flow_source.router, flow_replace.router, flows.router, flow_sync.router,
            kv.router, files.router, triggers.router, concurrency.router)


def routes(context: DialectContext) -> list[Routes]:
    mounts = [Routes(configs.configs_router(context, flowdeck_version()))]
    for tenant in TENANTS:
        mounts.extend(Routes(router, tenant, include_in_schema=tenant.endswith("/main"))
                      for router in module_routers())
    return mounts


DIALECT = Dialect(
    name="kestra",
    prefixes=TENANTS,
    routes=routes,
    errors=KESTRA_PROBLEMS,
    identity=KESTRA_CREDENTIALS,
    open_routes=frozenset({configs.LOGIN} | {
        prefix + template for prefix in TENANTS for template in webhooks.TEMPLATES}),
    fast_routes=fast.fast_routes,
    openapi=api_doc.describe,
)
