"""Who is calling: credentials checked once, cheaply, and without telling a guesser anything.

Authentication only; what a caller may do is declared on each route (`server/access.py`).

Auth is off only when the server is bound to loopback with no credentials configured (the
`serve` command decides, see `ServerOptions.auth_required`): every caller is then `anonymous`
with the admin role. Otherwise a request needs HTTP Basic (the configured user, password checked
against an argon2id hash; the user is admin) or `Authorization: Bearer <token>` (an API token of
`engine.keys`, with its role), as the dialect's `IdentityScheme` allows. Every failure (unknown
user and wrong password, unknown, revoked and expired token) gets the same 401.

Brute force: failures count per (client address, what was tried): the Basic user name, or the
first 8 characters of a token. 10 failures within 5 minutes lock that pair out for 30 minutes
(429 + `Retry-After`), checked before any hashing, so a guesser locks out its own guesses and
nobody else: another user, or a valid token, from the same address (behind a proxy, everyone)
goes on working. A valid token always passes (checking one is a cheap SHA-256 lookup), and so
does a Basic header verified in the last 300 s (cached by the SHA-256 of the header value, so
only a client's first request pays the ~25 ms argon2 cost). So that rotating user names cannot
buy unlimited argon2 work, an address also has a budget of 10 times the limit across all names,
after which it may only use what is cached or a token. Attempts being verified count against
the limits while they run, so a burst cannot start more argon2 computations than the limit
allows. An unknown user costs a dummy verification with the configured hash's parameters, so
its timing matches a wrong password.

The client address is the peer's, or, when the peer is one of `[server] trusted_proxies`, the
last address of `X-Forwarded-For` that is not itself a trusted proxy (`client_ip`).
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import argon2

from flowdeck.engine.keys import Role, role_allows
from flowdeck.server.dialect import ApiError, ApiFailure

if TYPE_CHECKING:
    from fastapi import Request

    from flowdeck.engine.keys import TokenStore

log = logging.getLogger("flowdeck.server.auth")

#: OWASP's minimum argon2id profile: 19 MiB, 2 passes, 1 lane (~25 ms a verification).
HASHER = argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, hash_len=32,
                               salt_len=16, type=argon2.Type.ID)
#: A webhook key and whatever follows it in a path, for logs and error bodies.
WEBHOOK_KEY = re.compile(r"(/executions/webhook/[^/?#]+/[^/?#]+/).*")

DEFAULT_MAX_FAILURES = 10
DEFAULT_FAILURE_WINDOW_S = 300.0
DEFAULT_LOCKOUT_S = 1800.0
DEFAULT_CACHE_TTL_S = 300.0
#: argon2 verifications running at once (each holds 19 MiB and a CPU).
VERIFY_CONCURRENCY = 4
#: An address may fail this many times the per-name limit, across every name.
ADDRESS_FACTOR = 10
#: Characters of a token that name it in the failure count (never the whole secret).
TOKEN_PREFIX = 8
#: Characters of a user name that count (a longer one is the same name).
MAX_NAME = 128
NO_CREDENTIALS = ("no credentials: send HTTP Basic credentials or an API token "
                  "(Authorization: Bearer)")


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


class TrustedProxies:
    """The addresses whose `X-Forwarded-For` is believed (`[server] trusted_proxies`)."""

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self.networks = tuple(ipaddress.ip_network(n.strip(), strict=False) for n in networks)

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def client(self, peer: str, forwarded: str | None) -> str:
        """The client behind `peer`: the last forwarded address that is not a trusted proxy
        (the one the nearest trusted proxy saw), or `peer` itself."""
        if not forwarded or not self.networks or not self.trusts(peer):
            return peer
        for hop in reversed([part.strip() for part in forwarded.split(",")]):
            try:
                address = str(ipaddress.ip_address(hop.strip("[]")))
            except ValueError:
                return peer  # a malformed hop: believe nothing beyond the peer
            if not self.trusts(address):
                return address
        return peer


def client_ip(request: Request) -> str:
    """The caller's address, for throttles and limits (see `TrustedProxies`)."""
    peer = request.client.host if request.client else "unknown"
    proxies: TrustedProxies | None = getattr(request.app.state, "proxies", None)
    if proxies is None or not proxies.networks:
        return peer
    return proxies.client(peer, request.headers.get("x-forwarded-for"))


# -- who -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: `basic` (the configured user), `token`, `anonymous` (auth off) or `open`
    (an open route: no credentials looked at). Later dialects add their own kinds."""

    kind: str
    name: str
    role: str
    token_id: str | None = None

    def allows(self, role: Role) -> bool:
        """Whether this caller holds `role` (anonymous callers, with auth off, hold every one)."""
        return self.kind == "anonymous" or role_allows(self.role, role)


ANONYMOUS = Identity("anonymous", "anonymous", Role.ADMIN.value)
OPEN = Identity("open", "", Role.VIEWER.value)


# -- throttling and caching ----------------------------------------------------------------------


class FailureThrottle:
    """Failed authentications per key (an address, or an address and a name) in a sliding
    window, then a lockout.

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


# -- the check -----------------------------------------------------------------------------------


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
    """Checks credentials for every dialect; what a caller may do is the route's to say."""

    required: bool
    tokens: TokenStore | None = None
    username: str | None = None
    password_hash: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: Set when the server stops: open event streams end instead of holding the shutdown.
    shutdown: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if self.password_hash is not None:
            check_password_hash(self.password_hash)
        limit = int(_option(self.extra, "auth_max_failures", DEFAULT_MAX_FAILURES))
        window = _option(self.extra, "auth_failure_window", DEFAULT_FAILURE_WINDOW_S)
        lockout = _option(self.extra, "auth_lockout", DEFAULT_LOCKOUT_S)
        #: Per (address, user name or token prefix).
        self.throttle = FailureThrottle(limit, window, lockout)
        #: Per address, across every name: what rotating names may cost at most.
        self.address_throttle = FailureThrottle(limit * ADDRESS_FACTOR, window, lockout)
        self.cache = SuccessCache(_option(self.extra, "auth_cache_ttl", DEFAULT_CACHE_TTL_S))
        self._dummy_hash: str | None = None
        self._verify_slots = asyncio.Semaphore(VERIFY_CONCURRENCY)

    @property
    def has_basic(self) -> bool:
        return self.username is not None and self.password_hash is not None

    async def authenticate(self, authorization: str | None, client: str, *, basic: bool = True,
                           bearer: bool = True) -> Identity | str:
        """The caller, or why not: a 401's detail; raises `_Throttled` while what this client
        tries is locked out."""
        if not self.required:
            return ANONYMOUS
        if not authorization:
            return NO_CREDENTIALS
        scheme, _, credentials = authorization.strip().partition(" ")
        identity: Identity | None = None
        if basic and scheme.lower() == "basic":
            identity = await self._basic(authorization, credentials.strip(), client)
        elif bearer and scheme.lower() == "bearer":
            identity = await self._bearer(credentials.strip(), client)
        else:
            self._refuse(_key(client, "scheme", scheme[:16]))
        return identity if identity is not None else "invalid credentials"

    def _check_lock(self, key: str, client: str, *, address_too: bool) -> None:
        wait = self.throttle.retry_after(key)
        if wait is None and address_too:
            wait = self.address_throttle.retry_after(client)
        if wait is not None:
            raise _Throttled(wait)

    def _refuse(self, key: str) -> None:
        """A failure that needed no hashing: 429 while `key` is locked, else counted."""
        self._check_lock(key, "", address_too=False)
        self.throttle.failed(key)

    async def _basic(self, header: str, credentials: str, client: str) -> Identity | None:
        digest = hashlib.sha256(header.encode("utf-8", "surrogateescape")).digest()
        if self.has_basic and self.cache.hit(digest):  # verified lately: never throttled
            return Identity("basic", self.username or "", Role.ADMIN.value)
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            self._refuse(_key(client, "basic", "?"))
            return None
        user, sep, password = decoded.partition(":")
        key = _key(client, "basic", user)
        if not sep:
            self._refuse(key)
            return None
        self._check_lock(key, client, address_too=True)
        ticket = self.throttle.begin(key)
        address_ticket = self.address_throttle.begin(client)
        if ticket is None or address_ticket is None:
            self._give_back(key, ticket, client, address_ticket)
            raise _Throttled(self.throttle.retry_after(key)
                             or self.address_throttle.retry_after(client) or 1)
        # Both the user and the password are always checked, in constant time per part.
        user_ok = self.has_basic and hmac.compare_digest(
            user.encode("utf-8"), (self.username or "").encode("utf-8"))
        target = self.password_hash if user_ok and self.password_hash else await self._dummy()
        async with self._verify_slots:
            password_ok = await asyncio.to_thread(verify_password, target, password)
        if user_ok and password_ok:
            self._give_back(key, ticket, client, address_ticket)
            self.cache.put(digest)
            return Identity("basic", user, Role.ADMIN.value)
        self.throttle.failed(key, ticket)
        self.address_throttle.failed(client, address_ticket)
        return None

    def _give_back(self, key: str, ticket: float | None, client: str,
                   address_ticket: float | None) -> None:
        if ticket is not None:
            self.throttle.succeeded(key, ticket)
        if address_ticket is not None:
            self.address_throttle.succeeded(client, address_ticket)

    async def _dummy(self) -> str:
        """A hash of a random password with the configured hash's parameters (same cost)."""
        if self._dummy_hash is None:
            hasher = HASHER
            if self.password_hash is not None:
                hasher = argon2.PasswordHasher.from_parameters(
                    argon2.extract_parameters(self.password_hash))
            self._dummy_hash = await asyncio.to_thread(hasher.hash, secrets.token_hex(16))
        return self._dummy_hash

    async def _bearer(self, secret: str, client: str) -> Identity | None:
        """A valid token passes whatever failed before it; an invalid one counts against its
        own prefix from this address."""
        token = await self.tokens.authenticate(secret) if self.tokens is not None else None
        if token is None:
            self._refuse(_key(client, "token", secret[:TOKEN_PREFIX]))
            return None
        return Identity("token", token.name, token.role, token.id)


def _key(client: str, kind: str, who: str) -> str:
    """What a failure counts against: the address and what was tried (never a secret: a user
    name, or a token's first characters)."""
    return f"{client} {kind}:{who[:MAX_NAME]}"


@dataclass(frozen=True, slots=True)
class HttpCredentials:
    """An `IdentityScheme`: `Authorization: Basic` and/or `Bearer`, answered with `challenge`."""

    basic: bool = True
    bearer: bool = True
    challenge: str | None = 'Basic realm="flowdeck"'

    async def identify(self, request: Request, auth: Authenticator) -> Identity:
        if not auth.required:
            return ANONYMOUS
        try:
            found = await auth.authenticate(request.headers.get("authorization"),
                                            client_ip(request), basic=self.basic,
                                            bearer=self.bearer)
        except _Throttled as exc:
            raise ApiFailure(ApiError(
                429, "too many failed authentications with these credentials from this "
                     "address; retry later",
                redact(request.url.path), headers={"Retry-After": str(exc.retry_after)})
            ) from None
        if isinstance(found, Identity):
            return found
        raise ApiFailure(ApiError(401, found, redact(request.url.path),
                                  headers=self.challenge_headers()))

    def challenge_headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": self.challenge} if self.challenge else {}


#: What the Kestra-family dialects accept: Basic (the configured user) and API tokens.
KESTRA_CREDENTIALS = HttpCredentials(challenge='Basic realm="Kestra"')
