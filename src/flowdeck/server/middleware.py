"""What every HTTP request passes before routing: security headers, the body limit, shutdown.

1. Security headers are added to every response (`X-Content-Type-Options: nosniff`,
   `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`, and `Cache-Control: no-store` where
   the route set no caching policy of its own), plus the headers a route's checks left for the
   response (a dialect's `X-RateLimit-*`).
2. Bodies over `max_body_bytes` get 413 in the body of the dialect the path belongs to: at once
   when `Content-Length` says so, else as soon as the streamed (chunked) body crosses the limit.
   FastAPI's own limit answers a body its route never reads with plain text, so flowdeck counts
   the bytes itself.
3. What a client sends after its answer was decided is read within the limit too. A request
   whose body the app did not read to its end (a refusal such as a 401, a 413, a route that
   ignores its body) would otherwise have the rest read and dropped by uvicorn for as long as
   the client sends (a chunked body has no end of its own). So a chunked body is read on for at
   most `max_body_bytes` more (and `LINGER_S`) before the answer's last bytes go out, so that a
   client that finishes sending still gets it, and the answer says `Connection: close`; a body
   with a `Content-Length` over twice the limit gets `Connection: close` at once.
4. When the server stops, event streams waiting for their client end at once.

Who the caller is and what it may do is decided after routing, by the route's declared access
(`server/access.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowdeck.server.auth import redact
from flowdeck.server.dialect import ApiError

#: How long a refused chunked body is read on before the answer goes out regardless.
LINGER_S = 5.0
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)

Render = Callable[[Scope, ApiError], Response]


class BodyTooLarge(HTTPException):
    """Raised into the route reading a body past the limit (an HTTP answer, not a bug)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the {_size(limit)} limit")


def _size(limit: int) -> str:
    if limit >= 1024 * 1024 and limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    return f"{limit} bytes"


class _Exchange:
    """What the middleware knows about one request/response."""

    __slots__ = ("body_done", "chunked", "complete", "drained", "received", "started",
                 "streaming", "suppress", "too_large", "too_long")

    def __init__(self) -> None:
        self.chunked = False
        self.too_long = False
        self.started = False
        self.complete = False
        self.streaming = False
        self.too_large = False
        self.suppress = False
        self.drained = False
        self.body_done = False
        self.received = 0


class Gatekeeper:
    """ASGI middleware: security headers, the body limit, and streams ending at shutdown."""

    def __init__(self, app: ASGIApp, *, render: Render, max_body_bytes: int,
                 shutdown: asyncio.Event) -> None:
        self.app = app
        self.render = render
        self.max_body = max_body_bytes
        self.shutdown = shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ex = _Exchange()
        length = _content_length(scope)
        ex.chunked = length is None and _header(scope, b"transfer-encoding") is not None
        ex.too_long = length is not None and length > 2 * self.max_body
        deliver = self._deliverer(scope, send, receive, ex)

        async def send_out(message: Message) -> None:
            if ex.suppress:
                return
            if (message["type"] == "http.response.start" and ex.too_large
                    and message["status"] != 413):
                # The route swallowed the limit's error: answer what it really was.
                ex.suppress = True
                await self._too_large(scope, deliver)
                return
            await deliver(message)

        if length is not None and length > self.max_body:
            await self._too_large(scope, deliver)
            return

        async def receive_in() -> Message:
            if ex.body_done:  # only a wait for the client to leave is left
                return await self._receive_or_shutdown(receive, ex)
            message = await receive()
            if message["type"] == "http.request":
                ex.received += len(message.get("body", b""))
                if ex.received > self.max_body:
                    ex.too_large = True
                    raise BodyTooLarge(self.max_body)
                ex.body_done = not message.get("more_body", False)
            return message

        try:
            await self.app(scope, receive_in, send_out)
        except BodyTooLarge:
            if not ex.started:
                await self._too_large(scope, deliver)
            return
        if ex.drained and ex.started and not ex.complete:
            # The stream was ended for the shutdown: close the chunked body properly.
            await deliver({"type": "http.response.body", "body": b"", "more_body": False})

    def _deliverer(self, scope: Scope, send: Send, receive: Receive, ex: _Exchange) -> Send:
        async def deliver(message: Message) -> None:
            if message["type"] == "http.response.start":
                ex.started = True
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                extra = (scope.get("state") or {}).get("response_headers") or ()
                for name, value in extra:
                    key = name.lower().encode("latin-1")
                    if key not in names:
                        headers.append((key, value.encode("latin-1")))
                        names.add(key)
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in names)
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                if (ex.too_long or ex.chunked) and not ex.body_done \
                        and b"connection" not in names:
                    headers.append((b"connection", b"close"))
                for name, value in headers:
                    if name.lower() == b"content-type" and value.startswith(
                            b"text/event-stream"):
                        ex.streaming = True
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                if ex.chunked and not ex.body_done and not ex.streaming:
                    await self._linger(receive, ex)
                ex.complete = True
            await send(message)

        return deliver

    async def _linger(self, receive: Receive, ex: _Exchange) -> None:
        """Read and drop what is left of a chunked body, `max_body` bytes and `LINGER_S` at
        most (the connection closes after the answer, whatever is left)."""
        budget = self.max_body
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LINGER_S):
                while budget > 0:
                    message = await receive()
                    if message["type"] != "http.request":
                        return
                    budget -= len(message.get("body", b""))
                    if not message.get("more_body", False):
                        ex.body_done = True
                        return

    async def _receive_or_shutdown(self, receive: Receive, ex: _Exchange) -> Message:
        """Event streams wait here for their client to go away; the server stopping counts
        as that, so a stream ends at once instead of holding the shutdown up."""
        incoming = asyncio.ensure_future(receive())
        try:
            while not self.shutdown.is_set():
                stopping = asyncio.ensure_future(self.shutdown.wait())
                try:
                    await asyncio.wait({incoming, stopping},
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stopping.cancel()
                if incoming.done():
                    return incoming.result()
            if ex.streaming:
                ex.drained = True
                return {"type": "http.disconnect"}
            return await incoming  # a download in flight finishes within the grace period
        finally:
            if not incoming.done():
                incoming.cancel()

    async def _too_large(self, scope: Scope, send: Send) -> None:
        error = ApiError(413, str(BodyTooLarge(self.max_body).detail), redact(scope["path"]))
        response = self.render(scope, error)

        async def no_body() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, no_body, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _content_length(scope: Scope) -> int | None:
    raw = _header(scope, b"content-length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None
