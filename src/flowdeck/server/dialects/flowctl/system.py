"""FlowCtl's system routes: health, metrics as the spec's JSON, and Prometheus text.

- `GET /api/v1/health`: `{"status": "healthy"|"unhealthy", "timestamp"}`; healthy only when
  the store commits a write probe within 2 s (200), else unhealthy (503, so a load balancer
  that reads only the status code sees it too);
- `GET /api/v1/metrics`: workflow and task counts by status, workers active/idle (the
  engine's execution slots in use/free);
- `GET /metrics` (the root): the whole engine's metrics, FlowCtl's included, in Prometheus'
  text exposition format 0.0.4.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from flowdeck.server.access import VIEWER
from flowdeck.server.deps import EngineDep

router = APIRouter(tags=["flowctl"])

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/api/v1/health", dependencies=VIEWER,
            summary="healthy only when the store commits a write probe (else 503)")
async def health(engine: EngineDep) -> JSONResponse:
    found = await engine.flowctl.health()
    return JSONResponse(found.to_dict(), status_code=200 if found.status == "healthy" else 503)


@router.get("/api/v1/metrics", dependencies=VIEWER,
            summary="Workflows and tasks by status; workers active and idle")
async def metrics(engine: EngineDep) -> dict[str, Any]:
    return (await engine.flowctl.metrics()).to_dict()


@router.get("/metrics", dependencies=VIEWER, response_class=PlainTextResponse,
            summary="The engine's metrics in Prometheus' text format")
async def prometheus(engine: EngineDep) -> PlainTextResponse:
    return PlainTextResponse(await engine.flowctl.prometheus(), media_type=PROMETHEUS_TEXT)
