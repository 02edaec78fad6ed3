"""Server-sent events the way Kestra sends them: an `id:` line and one compact JSON `data:` line.

Responses are streamed without a length, so uvicorn sends them chunked (clients that read in
blocks, like kestrapy's sseclient, see each event at once), with a `: ping` comment as
keepalive. Streams are capped per client and in total so a reconnect storm cannot exhaust us:
over a cap, `open_stream` raises `TooManyStreams` (429 for one client, 503 for the server, both
with `Retry-After`), which the serving dialect renders.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from flowdeck.core.errors import FlowdeckError

KEEPALIVE = b": ping\n\n"
DEFAULT_KEEPALIVE = 15.0


class TooManyStreams(FlowdeckError):
    """Too many open event streams: 429 for one client, 503 when the server is at its cap."""

    def __init__(self, message: str, *, server_wide: bool = False) -> None:
        super().__init__(message)
        self.server_wide = server_wide


def encode(event_id: str, data: Any) -> bytes:
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"id: {event_id}\ndata: {payload}\n\n".encode()


class StreamLimiter:
    def __init__(self, total: int = 100, per_client: int = 5) -> None:
        self.total = total
        self.per_client = per_client
        self.open: dict[str, int] = {}

    def acquire(self, client: str) -> None:
        if self.open.get(client, 0) >= self.per_client:
            raise TooManyStreams(f"this client already has {self.per_client} open event streams")
        if sum(self.open.values()) >= self.total:
            raise TooManyStreams(f"the server has {self.total} open event streams; retry later",
                                 server_wide=True)
        self.open[client] = self.open.get(client, 0) + 1

    def release(self, client: str) -> None:
        left = self.open.get(client, 0) - 1
        if left > 0:
            self.open[client] = left
        else:
            self.open.pop(client, None)


def sse_response(events: AsyncIterator[bytes], limiter: StreamLimiter | None = None,
                 client: str = "") -> StreamingResponse:
    """Stream already-encoded events (see `encode` / `KEEPALIVE`)."""
    if limiter is not None:
        limiter.acquire(client)

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in events:
                yield chunk
        finally:
            if limiter is not None:
                limiter.release(client)
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    return StreamingResponse(body(), media_type="text/event-stream", headers={
        "Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"})


def keepalive_interval(request: Request) -> float:
    """Seconds between `: ping` comments on an idle stream (`extra["sse_keepalive"]`)."""
    options = getattr(request.app.state, "options", None)
    extra: dict[str, Any] = getattr(options, "extra", None) or {}
    try:
        value = float(extra.get("sse_keepalive", DEFAULT_KEEPALIVE))
    except (TypeError, ValueError):
        return DEFAULT_KEEPALIVE
    return value if value > 0 else DEFAULT_KEEPALIVE


def client_key(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def open_stream(request: Request, events: AsyncIterator[bytes]) -> StreamingResponse:
    """Stream `events` under the app's stream caps (`app.state.streams`)."""
    try:
        return sse_response(events, request.app.state.streams, client_key(request))
    except TooManyStreams:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
        raise
