"""Kestra's API (spec 001 and Kestra OSS 1.x/2.x), mounted with and without the `main` tenant."""

from __future__ import annotations

from fastapi import APIRouter

from flowdeck.server.dialects.kestra import (
    approvals,
    executions,
    files,
    flows,
    follow,
    kv,
    logs,
    outputs,
    webhooks,
)


def build_router() -> APIRouter:
    router = APIRouter()
    # Webhooks first: their open, key-in-path routes must not be shadowed by execution routes.
    # Then the busiest reads: routes are matched in order.
    for module in (webhooks, executions, follow, outputs, logs, flows, kv, files, approvals):
        router.include_router(module.router)
    return router
