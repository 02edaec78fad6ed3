"""Who may call what, decided in one place; and the guards every request passes first.

Every HTTP request goes through `Gatekeeper`, an ASGI middleware, before routing:

1. Security headers are added to every response (`X-Content-Type-Options: nosniff`,
   `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`, and `Cache-Control: no-store` where
   the route set no caching policy of its own).
2. Bodies over `max_body_bytes` get 413 problem+json: at once when `Content-Length` says so,
   else as soon as the streamed (chunked) body crosses the limit. FastAPI's own limit answers
   a body its route never reads with plain text, so flowdeck counts the bytes itself.
3. Authentication, unless the route is open. Open routes are `/ping` and Kestra's webhook
   trigger (`/api/v1[/main]/executions/webhook/{namespace}/{flowId}/{key}[/...]`), matched on
   the whole route shape, never on a substring: `POST /api/v1/main/executions/webhook/x`
   creates an execution of flow `x` in a namespace named `webhook` and needs credentials (the
   Kestra 2.0 open-URL bug). A global route dependency (`confirm_open_route`) checks again,
   after routing, that a request let through as open reached an open endpoint (`/ping`, or
   a route whose template spells `/executions/webhook/`); else it is refused (fail closed).
4. Authorization by role: viewer < operator < approver < admin (`required_role`): reads are
   viewer; writes and actions operator; approval decisions approver (including resuming an
   execution that waits on an approval, which decides it); token management admin.

Auth is off only when the server is bound to loopback with no credentials configured (the
`serve` command decides, see `ServerOptions.auth_required`). Otherwise a request needs HTTP
Basic (the configured user, password checked against an argon2id hash; the user is admin) or
`Authorization: Bearer <token>` (an API token of `engine.keys`, with its role). Failures get 401
with `WWW-Authenticate: Basic realm="Kestra"` and one body for every cause (unknown user and
wrong password, unknown, revoked and expired token are indistinguishable); a role too low for
the call gets 403.

Brute force: per client IP, 10 failures within 5 minutes lock that IP out for 30 minutes
(429 + `Retry-After`), checked before any hashing. Attempts being verified count against the
limit while they run, so a burst cannot start more argon2 computations than the limit allows.
A verified Basic header is cached for 300 s (keyed by the SHA-256 of the header value), so only
the first request of a client pays the ~25 ms argon2 cost. An unknown user costs a dummy
verification with the configured hash's parameters, so its timing matches a wrong password.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import math
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import argon2
from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowdeck.engine.keys import ROLE_RANK, role_allows
from flowdeck.server.errors import problem

if TYPE_CHECKING:
    from starlette.responses import Response

    from flowdeck.engine.keys import TokenStore

log = logging.getLogger("flowdeck.server.auth")

REALM = "Kestra"
CHALLENGE = f'Basic realm="{REALM}"'
#: OWASP's minimum argon2id profile: 19 MiB, 2 passes, 1 lane (~25 ms a verification).
HASHER = argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, hash_len=32,
                               salt_len=16, type=argon2.Type.ID)

#: The webhook trigger's route shapes (the Kestra router serves them before anything else).
OPEN_ROUTE = re.compile(r"/api/v1(?:/main)?/executions/webhook/[^/]+/[^/]+/[^/]+(?:/.*)?")
OPEN_ROUTE_METHODS = frozenset({"GET", "HEAD", "POST", "PUT"})
OPEN_PATHS = frozenset({"/ping", "/api/v1/configs/login"})  # the latter: as Kestra 2.x
#: A webhook key and whatever follows it in a path, for logs and error bodies.
WEBHOOK_KEY = re.compile(r"(/executions/webhook/[^/?#]+/[^/?#]+/).*")
WEBHOOK_TEMPLATE = "/executions/webhook/"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Writes that need more than operator. Decisions on approvals: approver; tokens: admin.
APPROVER_WRITES = re.compile(r"/(?:api/v1/(?:main/)?|v1/)approvals(?:/.*)?")
ADMIN_ANY = re.compile(r"/api/v1/(?:main/)?(?:tokens|api-keys)(?:/.*)?")
#: Resuming an execution that waits on an approval decides that approval (engine.resume).
RESUME = re.compile(r"/api/v1/(?:main/)?executions/([^/]+)/(?:actions/)?resume")

SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)

DEFAULT_MAX_FAILURES = 10
DEFAULT_FAILURE_WINDOW_S = 300.0
DEFAULT_LOCKOUT_S = 1800.0
DEFAULT_CACHE_TTL_S = 300.0
#: argon2 verifications running at once (each holds 19 MiB and a CPU).
VERIFY_CONCURRENCY = 4


# -- passwords ---------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    """An argon2id hash (PHC string) for `[server] basic_password_hash`."""
    return HASHER.hash(password)


def verify_password(encoded: str, password: str) -> bool:
    """Whether `password` matches the argon2 hash `encoded` (never raises for a mismatch)."""
    try:
        return HASHER.verify(encoded, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


def check_password_hash(encoded: str) -> None:
    """Raise ValueError unless `encoded` is an argon2id hash this server can verify with."""
    if not encoded.startswith("$argon2id$"):
        raise ValueError("basic_password_hash must be an argon2id hash (`flowdeck passwd`)")
    try:
        argon2.extract_parameters(encoded)
    except argon2.exceptions.InvalidHashError:
        raise ValueError("basic_password_hash is not a valid argon2id hash") from None


def redact(path: str) -> str:
    """A request path fit for a log or an error body: a webhook key (and anything after it)
    becomes `***`."""
    return WEBHOOK_KEY.sub(r"\1***", path)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and `localhost`; any other name or address counts as the network."""
    name = host.strip().lower().strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


# -- what a call needs ---------------------------------------------------------------------------


def is_open(method: str, path: str) -> bool:
    """Routes anyone may call: `/ping` and the webhook trigger (whole route shape)."""
    if path in OPEN_PATHS:
        return method in READ_METHODS
    return method in OPEN_ROUTE_METHODS and OPEN_ROUTE.fullmatch(path) is not None


def required_role(method: str, path: str) -> str:
    """The least role allowed to make this call."""
    if ADMIN_ANY.fullmatch(path):
        return "admin"
    if method in READ_METHODS:
        return "viewer"
    if APPROVER_WRITES.fullmatch(path):
        return "approver"
    return "operator"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: `basic` (the configured user), `token`, `anonymous` (auth off) or
    `open` (an open route, no credentials looked at)."""

    kind: str
    name: str
    role: str
    token_id: str | None = None


ANONYMOUS = Principal("anonymous", "anonymous", "admin")
OPEN = Principal("open", "", "viewer")


# -- throttling and caching ----------------------------------------------------------------------


class FailureThrottle:
    """Failed authentications per client IP in a sliding window, then a lockout.

    `begin` books an attempt before the expensive check; `succeeded` gives the booking back,
    `failed` keeps it. Bounded in clients (least recently seen dropped first).
    """

    def __init__(self, limit: int = DEFAULT_MAX_FAILURES,
                 window: float = DEFAULT_FAILURE_WINDOW_S,
                 lockout: float = DEFAULT_LOCKOUT_S, *,
                 clock: Callable[[], float] = time.monotonic,
                 max_clients: int = 10_000) -> None:
        self.limit = max(1, limit)
        self.window = window
        self.lockout = lockout
        self.clock = clock
        self.max_clients = max_clients
        self._attempts: OrderedDict[str, deque[float]] = OrderedDict()
        self._locked: OrderedDict[str, float] = OrderedDict()

    def retry_after(self, client: str) -> int | None:
        """Seconds this client stays locked out, or None."""
        until = self._locked.get(client)
        if until is None:
            return None
        left = until - self.clock()
        if left <= 0:
            del self._locked[client]
            return None
        return max(1, math.ceil(left))

    def _live(self, client: str, now: float) -> deque[float]:
        attempts = self._attempts.get(client)
        if attempts is None:
            attempts = self._attempts[client] = deque()
            while len(self._attempts) > self.max_clients:
                self._attempts.popitem(last=False)
        else:
            self._attempts.move_to_end(client)
        while attempts and attempts[0] <= now - self.window:
            attempts.popleft()
        return attempts

    def begin(self, client: str) -> float | None:
        """Book an attempt; None when the client may not start one now."""
        now = self.clock()
        attempts = self._live(client, now)
        if len(attempts) >= self.limit:
            return None
        attempts.append(now)
        return now

    def succeeded(self, client: str, ticket: float) -> None:
        attempts = self._attempts.get(client)
        if attempts is not None:
            with contextlib.suppress(ValueError):  # already pruned from the window
                attempts.remove(ticket)

    def failed(self, client: str, ticket: float | None = None) -> None:
        now = self.clock()
        attempts = self._live(client, now)
        if ticket is None:
            attempts.append(now)
        if len(attempts) >= self.limit:
            attempts.clear()
            self._locked[client] = now + self.lockout
            self._locked.move_to_end(client)
            while len(self._locked) > self.max_clients:
                self._locked.popitem(last=False)
            log.warning("locked out %s for %d s after %d failed authentications",
                        client, int(self.lockout), self.limit)


class SuccessCache:
    """Verified Basic headers (by SHA-256) for `ttl` seconds; bounded."""

    def __init__(self, ttl: float = DEFAULT_CACHE_TTL_S, size: int = 1024, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._entries: OrderedDict[bytes, float] = OrderedDict()

    def hit(self, key: bytes) -> bool:
        expires = self._entries.get(key)
        if expires is None:
            return False
        if expires <= self.clock():
            del self._entries[key]
            return False
        return True

    def put(self, key: bytes) -> None:
        if self.ttl <= 0:
            return
        self._entries[key] = self.clock() + self.ttl
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


# -- the decision --------------------------------------------------------------------------------


class _Throttled(Exception):
    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after


def _option(extra: dict[str, Any], name: str, default: float) -> float:
    try:
        value = float(extra.get(name, default))
    except (TypeError, ValueError):
        return default
    return value if value >= 0 else default


@dataclass
class Authenticator:
    """Every authentication and authorization decision of the server."""

    required: bool
    tokens: TokenStore | None = None
    username: str | None = None
    password_hash: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: Endpoints a request let through as open may reach (set when the app is built).
    open_endpoints: set[Callable[..., Any]] = field(default_factory=set)
    #: How many approvals an execution waits on (resuming it decides them: approver only).
    pending_approvals: Callable[[str], Awaitable[int]] | None = None
    #: Set when the server stops: open event streams end instead of holding the shutdown.
    shutdown: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if self.password_hash is not None:
            check_password_hash(self.password_hash)
        self.throttle = FailureThrottle(
            int(_option(self.extra, "auth_max_failures", DEFAULT_MAX_FAILURES)),
            _option(self.extra, "auth_failure_window", DEFAULT_FAILURE_WINDOW_S),
            _option(self.extra, "auth_lockout", DEFAULT_LOCKOUT_S))
        self.cache = SuccessCache(_option(self.extra, "auth_cache_ttl", DEFAULT_CACHE_TTL_S))
        self._dummy_hash: str | None = None
        self._verify_slots = asyncio.Semaphore(VERIFY_CONCURRENCY)

    def is_open_endpoint(self, scope: Scope) -> bool:
        """After routing: an endpoint declared open, or a route whose *template* holds the
        literal `/executions/webhook/` (any dialect's webhook trigger). A route that merely
        captured such a path with parameters (`/executions/{namespace}/{flowId}`) is not."""
        if scope.get("endpoint") in self.open_endpoints:
            return True
        template = getattr(scope.get("route"), "path", "")
        return isinstance(template, str) and WEBHOOK_TEMPLATE in template

    @property
    def has_basic(self) -> bool:
        return self.username is not None and self.password_hash is not None

    async def check(self, method: str, path: str, authorization: str | None,
                    client: str) -> Principal | Response:
        """The caller of a non-open route, or the error response to send instead."""
        if not self.required:
            return ANONYMOUS
        shown = redact(path)  # what error bodies may echo
        wait = self.throttle.retry_after(client)
        if wait is not None:
            return self._too_many(shown, wait)
        if not authorization:
            return self._unauthenticated(shown, "no credentials: send HTTP Basic credentials "
                                               "or an API token (Authorization: Bearer)")
        scheme, _, credentials = authorization.strip().partition(" ")
        try:
            if scheme.lower() == "basic":
                principal = await self._basic(authorization, credentials.strip(), client)
            elif scheme.lower() == "bearer":
                principal = await self._bearer(credentials.strip(), client)
            else:
                self.throttle.failed(client)
                principal = None
        except _Throttled as exc:
            return self._too_many(shown, exc.retry_after)
        if principal is None:
            return self._unauthenticated(shown, "invalid credentials")
        needed = required_role(method, path)
        if not role_allows(principal.role, needed):
            return problem(403, f"role '{principal.role}' may not {method} {shown}; "
                                f"it needs '{needed}' or above", shown)
        if method == "POST" and not role_allows(principal.role, "approver"):
            resume = RESUME.fullmatch(path)
            if (resume and self.pending_approvals is not None
                    and await self.pending_approvals(resume.group(1))):
                return problem(403, f"execution {resume.group(1)} waits on an approval; "
                                    f"resuming it decides the approval, which needs the "
                                    f"'approver' role (role '{principal.role}' given)", shown)
        return principal

    async def _basic(self, header: str, credentials: str, client: str) -> Principal | None:
        key = hashlib.sha256(header.encode("utf-8", "surrogateescape")).digest()
        if self.has_basic and self.cache.hit(key):
            return Principal("basic", self.username or "", "admin")
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            self.throttle.failed(client)
            return None
        user, sep, password = decoded.partition(":")
        if not sep:
            self.throttle.failed(client)
            return None
        ticket = self.throttle.begin(client)
        if ticket is None:
            raise _Throttled(self.throttle.retry_after(client) or 1)
        # Both the user and the password are always checked, in constant time per part.
        user_ok = self.has_basic and hmac.compare_digest(
            user.encode("utf-8"), (self.username or "").encode("utf-8"))
        target = self.password_hash if user_ok and self.password_hash else await self._dummy()
        async with self._verify_slots:
            password_ok = await asyncio.to_thread(verify_password, target, password)
        if user_ok and password_ok:
            self.throttle.succeeded(client, ticket)
            self.cache.put(key)
            return Principal("basic", user, "admin")
        self.throttle.failed(client, ticket)
        return None

    async def _dummy(self) -> str:
        """A hash of a random password with the configured hash's parameters (same cost)."""
        if self._dummy_hash is None:
            hasher = HASHER
            if self.password_hash is not None:
                hasher = argon2.PasswordHasher.from_parameters(
                    argon2.extract_parameters(self.password_hash))
            self._dummy_hash = await asyncio.to_thread(hasher.hash, secrets.token_hex(16))
        return self._dummy_hash

    async def _bearer(self, secret: str, client: str) -> Principal | None:
        token = await self.tokens.authenticate(secret) if self.tokens is not None else None
        if token is None:
            self.throttle.failed(client)
            return None
        return Principal("token", token.name, token.role, token.id)

    def _unauthenticated(self, path: str, detail: str) -> Response:
        return problem(401, detail, path, headers={"WWW-Authenticate": CHALLENGE})

    def _too_many(self, path: str, wait: int) -> Response:
        return problem(429, "too many failed authentications from this address; retry later",
                       path, headers={"Retry-After": str(wait)})


async def confirm_open_route(request: Request) -> None:
    """A global route dependency: a request let in as open must have reached an open
    endpoint (a second line behind `is_open`, should a route ever shadow the webhook)."""
    state = request.scope.get("state") or {}
    if state.get("principal") is not OPEN:
        return
    auth: Authenticator | None = getattr(request.app.state, "auth", None)
    if auth is not None and not auth.is_open_endpoint(request.scope):
        log.error("%s %s was let in as an open route but is served by %r; refused",
                  request.method, redact(request.url.path), request.scope.get("endpoint"))
        raise HTTPException(401, "this route is not open; it needs credentials",
                            headers={"WWW-Authenticate": CHALLENGE})


# -- the middleware ------------------------------------------------------------------------------


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the {_size(limit)} limit")


def _size(limit: int) -> str:
    if limit >= 1024 * 1024 and limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    return f"{limit} bytes"


class _Exchange:
    """What the middleware knows about one request/response."""

    __slots__ = ("body_done", "complete", "drained", "received", "started", "streaming",
                 "suppress", "too_large")

    def __init__(self) -> None:
        self.started = False
        self.complete = False
        self.streaming = False
        self.too_large = False
        self.suppress = False
        self.drained = False
        self.body_done = False
        self.received = 0


class Gatekeeper:
    """ASGI middleware: security headers, body limit, authentication and authorization."""

    def __init__(self, app: ASGIApp, *, auth: Authenticator, max_body_bytes: int) -> None:
        self.app = app
        self.auth = auth
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ex = _Exchange()
        method: str = scope["method"]
        path: str = scope["path"]

        async def deliver(message: Message) -> None:
            if message["type"] == "http.response.start":
                ex.started = True
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in names)
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                for name, value in headers:
                    if name.lower() == b"content-type" and value.startswith(
                            b"text/event-stream"):
                        ex.streaming = True
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                ex.complete = True
            await send(message)

        async def send_out(message: Message) -> None:
            if ex.suppress:
                return
            if (message["type"] == "http.response.start" and ex.too_large
                    and message["status"] != 413):
                # The route swallowed the limit's error: answer what it really was.
                ex.suppress = True
                await self._send_problem(scope, deliver, BodyTooLarge(self.max_body))
                return
            await deliver(message)

        length = _content_length(scope)
        if length is not None and length > self.max_body:
            await self._send_problem(scope, deliver, BodyTooLarge(self.max_body))
            return

        if is_open(method, path):
            principal: Principal = OPEN
        else:
            client = scope["client"][0] if scope.get("client") else "unknown"
            decision = await self.auth.check(method, path, _header(scope, b"authorization"),
                                             client)
            if not isinstance(decision, Principal):
                await decision(scope, receive, send_out)
                return
            principal = decision
        scope.setdefault("state", {})["principal"] = principal

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
        except BodyTooLarge as exc:
            if not ex.started:
                await self._send_problem(scope, deliver, exc)
            return
        if ex.drained and ex.started and not ex.complete:
            # The stream was ended for the shutdown: close the chunked body properly.
            await deliver({"type": "http.response.body", "body": b"", "more_body": False})

    async def _receive_or_shutdown(self, receive: Receive, ex: _Exchange) -> Message:
        """Event streams wait here for their client to go away; the server stopping counts
        as that, so a stream ends at once instead of holding the shutdown up."""
        shutdown = self.auth.shutdown
        incoming = asyncio.ensure_future(receive())
        try:
            while not shutdown.is_set():
                stopping = asyncio.ensure_future(shutdown.wait())
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

    async def _send_problem(self, scope: Scope, send: Send, exc: HTTPException) -> None:
        response = problem(exc.status_code, str(exc.detail), redact(scope["path"]),
                           headers=dict(exc.headers or {}))

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


__all__ = ["ANONYMOUS", "CHALLENGE", "HASHER", "OPEN", "ROLE_RANK", "Authenticator",
           "BodyTooLarge", "FailureThrottle", "Gatekeeper", "Principal", "SuccessCache",
           "confirm_open_route", "hash_password", "is_loopback", "is_open", "required_role",
           "verify_password"]
