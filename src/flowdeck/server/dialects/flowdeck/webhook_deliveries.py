"""The webhook outbox over HTTP (admin): every event sent to a webhook, and redelivery.

- `GET /webhook-deliveries?status=pending|delivered|dead&target=&page=&size=` →
  `{"results": [Delivery], "total"}`, newest first;
- `GET /webhook-deliveries/{id}` → Delivery;
- `POST /webhook-deliveries/{id}/redeliver` → the Delivery, pending again with a fresh round
  of retries (409 while it is still pending).

A Delivery is `{id, eventSeq, event, source, executionId, target, url, status, attempts,
nextAt, lastStatus, lastError, created, updated}`; the signing secret is never shown.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from flowdeck.core.errors import BadRequestError
from flowdeck.engine.outbox import STATUSES
from flowdeck.server.access import ADMIN
from flowdeck.server.deps import get_engine, int_param

router = APIRouter(tags=["webhooks"], dependencies=ADMIN)
MAX_SIZE = 1000


@router.get("/webhook-deliveries", summary="List webhook deliveries (newest first)")
async def list_deliveries(request: Request) -> JSONResponse:
    engine = get_engine(request)
    params = request.query_params
    status = params.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadRequestError(f"status must be one of {', '.join(STATUSES)}, not '{status}'")
    page = int_param(params, "page", 1, high=1_000_000)
    size = int_param(params, "size", 100, high=MAX_SIZE)
    found, total = await engine.outbox.deliveries(
        status=status, target=params.get("target") or None, limit=size,
        offset=(page - 1) * size)
    return JSONResponse({"results": [d.to_dict() for d in found], "total": total})


@router.get("/webhook-deliveries/{delivery_id}", summary="One webhook delivery")
async def get_delivery(request: Request, delivery_id: str) -> JSONResponse:
    return JSONResponse((await get_engine(request).outbox.get(delivery_id)).to_dict())


@router.post("/webhook-deliveries/{delivery_id}/redeliver",
             summary="Send a delivery again now (409 while it is pending)")
async def redeliver(request: Request, delivery_id: str) -> JSONResponse:
    return JSONResponse((await get_engine(request).outbox.redeliver(delivery_id)).to_dict())
