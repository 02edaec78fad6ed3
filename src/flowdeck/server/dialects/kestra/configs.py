"""Kestra's `/api/v1/configs` (server identity and features; clients detect the version from
it) and `/api/v1/configs/login` (open, as in Kestra 2.x)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from flowdeck.server.access import OPEN_ROUTE, VIEWER
from flowdeck.server.dialect import DialectContext

CONFIGS = "/api/v1/configs"
LOGIN = "/api/v1/configs/login"


def configs_router(context: DialectContext, flowdeck_version: str) -> APIRouter:
    options = context.options
    version = str(options.extra.get("kestra_version") or "2.0.0")
    basic = options.basic_username is not None
    router = APIRouter(tags=["misc"])

    @router.get(CONFIGS, dependencies=VIEWER)
    async def configs() -> dict[str, Any]:
        return {
            "uuid": "flowdeck", "version": version,
            "flowdeckVersion": flowdeck_version, "edition": "OSS",
            "commitId": "flowdeck", "isTaskRunEnabled": True, "isTemplateEnabled": False,
            "isAnonymousUsageEnabled": False, "isCustomDashboardsEnabled": False,
            "isBasicAuthEnabled": basic, "isBasicAuthInitialized": basic,
            "systemNamespace": "system", "hiddenLabelsPrefixes": ["system."],
            "environment": {"name": "flowdeck"},
        }

    @router.get(LOGIN, dependencies=OPEN_ROUTE)
    async def configs_login() -> dict[str, Any]:
        return {"isBasicAuthInitialized": basic}

    return router
