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
    for module in (webhooks, flows, follow, outputs, executions, logs, kv, files, approvals):
        router.include_router(module.router)
    return router
