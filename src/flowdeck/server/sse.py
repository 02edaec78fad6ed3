"""Server-sent events the way Kestra sends them: an `id:` line and one compact JSON `data:` line.

Responses are streamed without a length, so uvicorn sends them chunked (clients that read in
blocks, like kestrapy's sseclient, see each event at once), with a `: ping` comment as
keepalive. Streams are capped per client and in total so a reconnect storm cannot exhaust us:
over a cap, `open_stream` raises `TooManyStreams` (429 for one client, 503 for the server, both
with `Retry-After`), which the serving dialect renders.

Answers that replay stored pages (a log follow catching up, a log listing, a download) go
through `paced`: a page of at most `STREAM_PAGE` lines is read and formatted while holding one of
the limiter's `page_slots` (4 by default), and sent after letting it go. So the server formats
at most a few pages at once however many clients follow a long execution, a slow client holds
one formatted page and its socket's buffers, never more, and a client that goes away stops the
reading at the next page (Starlette cancels a streaming answer when its client disconnects).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import StreamingResponse

from flowdeck.core.errors import FlowdeckError
from flowdeck.server.auth import client_ip

KEEPALIVE = b": ping\n\n"
DEFAULT_KEEPALIVE = 15.0
#: Answers that may read and format a page of stored lines at the same time.
DEFAULT_PAGE_SLOTS = 4
#: Stored lines a streamed answer reads and formats at a time.
STREAM_PAGE = 500

T = TypeVar("T")


class TooManyStreams(FlowdeckError):
    """Too many open event streams: 429 for one client, 503 when the server is at its cap."""

    def __init__(self, message: str, *, server_wide: bool = False) -> None:
        super().__init__(message)
        self.server_wide = server_wide


def encode(event_id: str, data: Any) -> bytes:
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"id: {event_id}\ndata: {payload}\n\n".encode()


class StreamLimiter:
    """Open event streams per client and in total, and the page slots of `paced`."""

    def __init__(self, total: int = 100, per_client: int = 5,
                 page_slots: int = DEFAULT_PAGE_SLOTS) -> None:
        self.total = total
        self.per_client = per_client
        self.open: dict[str, int] = {}
        self.page_slots = asyncio.Semaphore(max(1, page_slots))
        #: Pages read through `paced` so far (what a test or a metric can watch).
        self.pages_read = 0

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


async def _close(source: object) -> None:
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        await aclose()


async def paced(pages: AsyncIterator[T], render: Callable[[T], bytes],
                limiter: StreamLimiter) -> AsyncIterator[bytes]:
    """Each page of `pages` rendered to one chunk, read and rendered inside one of the
    limiter's page slots and yielded outside it; `pages` is closed when the consumer stops."""
    try:
        while True:
            async with limiter.page_slots:
                try:
                    page = await anext(pages)
                except StopAsyncIteration:
                    return
                limiter.pages_read += 1
                chunk = render(page)
            if chunk:
                yield chunk
    finally:
        await _close(pages)


def limiter_of(request: Request) -> StreamLimiter:
    limiter: StreamLimiter = request.app.state.streams
    return limiter


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
    return client_ip(request)


async def open_stream(request: Request, events: AsyncIterator[bytes]) -> StreamingResponse:
    """Stream `events` under the app's stream caps (`app.state.streams`)."""
    try:
        return sse_response(events, request.app.state.streams, client_key(request))
    except TooManyStreams:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
        raise
