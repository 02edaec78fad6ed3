"""Kestra's log answers that replay stored lines, rendered a page at a time.

Each page of stored lines is read and rendered through `server.sse.paced` (a few pages at once
server-wide; a slow client holds one rendered page): the JSON array of `GET /logs/{id}`, the text
of a download, and the events a follower catches up on before the live ones.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

from flowdeck.core.models import LogEntry
from flowdeck.engine.engine import Engine
from flowdeck.engine.logs import LogQuery
from flowdeck.server.sse import KEEPALIVE, STREAM_PAGE, StreamLimiter, encode, paced


async def started(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`chunks` with its first chunk already made: a query the store refuses is then an error
    answer with its status, not a stream cut after a 200 (a broken chunked body)."""
    try:
        head = await anext(chunks)
    except StopAsyncIteration:
        head = b""

    async def rest() -> AsyncIterator[bytes]:
        try:
            if head:
                yield head
            async for chunk in chunks:
                yield chunk
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    return rest()


def json_page(first: list[bool]) -> Callable[[list[LogEntry]], bytes]:
    """Renders pages as the parts of one JSON array (the caller closes it)."""

    def render(page: list[LogEntry]) -> bytes:
        if not page:
            return b""
        text = ",".join(json.dumps(e.to_dict(), separators=(",", ":"), ensure_ascii=False)
                        for e in page)
        lead = "[" if first[0] else ","
        first[0] = False
        return (lead + text).encode()

    return render


async def json_array(engine: Engine, execution_id: str, query: LogQuery,
                     limiter: StreamLimiter) -> AsyncIterator[bytes]:
    first = [True]
    pages = engine.logs.pages(execution_id, page_size=STREAM_PAGE, query=query,
                              after_seq=query.after_seq or 0)
    async for chunk in paced(pages, json_page(first), limiter):
        yield chunk
    yield b"[]" if first[0] else b"]"


def pretty_page(first: list[bool]) -> Callable[[list[LogEntry]], bytes]:
    """Kestra's download format: `<timestamp> <LEVEL> <message>`, a line each."""

    def render(page: list[LogEntry]) -> bytes:
        if not page:
            return b""
        text = "\n".join(e.pretty() for e in page)
        lead = "" if first[0] else "\n"
        first[0] = False
        return (lead + text).encode()

    return render


def events_page(query: LogQuery, last: list[int]) -> Callable[[list[LogEntry]], bytes]:
    def render(page: list[LogEntry]) -> bytes:
        if page:
            last[0] = page[-1].seq
        return b"".join(encode(str(e.seq), e.to_dict()) for e in page if query.matches(e))

    return render


async def log_events(engine: Engine, execution_id: str, after: int, query: LogQuery,
                     keepalive: float, limiter: StreamLimiter | None = None
                     ) -> AsyncIterator[bytes]:
    """The stored lines after `after`, replayed a page at a time through `paced` (every level
    is read so the position moves on; the filters apply in memory), then the live ones."""
    loop = asyncio.get_running_loop()
    last = [after]
    if limiter is not None:
        stored = engine.logs.pages(execution_id, after_seq=after, page_size=STREAM_PAGE)
        async for chunk in paced(stored, events_page(query, last), limiter):
            yield chunk
    follow = engine.logs.follow(execution_id, after_seq=last[0], heartbeat=keepalive)
    last_write = loop.time()
    try:
        async for entry in follow:
            if entry is None:
                yield KEEPALIVE
            elif query.matches(entry):
                yield encode(str(entry.seq), entry.to_dict())
            elif loop.time() - last_write >= keepalive:
                yield KEEPALIVE  # lines keep coming, but none passes the filter
            else:
                continue
            last_write = loop.time()
    finally:
        aclose = getattr(follow, "aclose", None)
        if aclose is not None:
            await aclose()
