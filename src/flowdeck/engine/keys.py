"""API tokens: bearer secrets with a role, shown once and stored only as their SHA-256.

A token is `secrets.token_hex(32)` (64 hex characters, 256 random bits). Its entropy makes a
slow password hash pointless, so the database keeps the SHA-256 of it (unique) and an 8-character
display prefix; the secret itself is printed once, at creation, and never again.

Roles are ordered: viewer < operator < approver < admin. `service` stands apart: a worker's
token that may call only what declares `service` (pipeline task and step status updates), and
nothing a person's role allows; no person's role reaches it either. A token is *active* until it is
revoked or its `expires_at` passes; anything else authenticates nobody. Looking a token up costs
one hash and one indexed read. A malformed secret is rejected before any query.

The table also holds the public API's keys (`kind = 'public'`, `engine/public/keys.py`): one
store of hashed secrets. Every query here is limited to `kind = 'token'`, so a public API key
never authenticates against the Kestra API (or counts as one of its credentials), and a token
never runs an agent.

`open_token_store` manages tokens without taking the engine's data-dir lock, so
`flowdeck token create|list|revoke` works while `flowdeck serve` runs on the same data dir:
SQLite serialises the writes and the server sees a revocation on its next lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowdeck.core.clock import Clock, SystemClock
from flowdeck.core.errors import NotFoundError, ValidationError
from flowdeck.core.ids import new_id
from flowdeck.core.timefmt import format_instant, parse_instant
from flowdeck.engine.store import Store

if TYPE_CHECKING:
    import sqlite3

    import aiosqlite



class Role(StrEnum):
    """A role as routes declare it: the ladder viewer < operator < approver < admin, and
    `service` beside it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    APPROVER = "approver"
    ADMIN = "admin"
    SERVICE = "service"


ROLES = ("viewer", "operator", "approver", "admin")
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
#: The role of worker service tokens: it allows only what requires exactly `service`.
SERVICE = "service"
#: Every role a token may have.
TOKEN_ROLES = (*ROLES, SERVICE)
SECRET = re.compile(r"[0-9a-f]{64}")
PREFIX_LEN = 8
MAX_NAME = 200
#: `last_used_at` is written at most this often per token (one commit, not one per request).
TOUCH_EVERY_S = 60.0
_COLUMNS = "id, name, role, prefix, created_at, expires_at, revoked_at, last_used_at"


def role_allows(role: str, required: str) -> bool:
    """Whether `role` is at least `required` in viewer < operator < approver < admin; the
    `service` role allows only what requires `service`, and only it does."""
    if role == SERVICE or required == SERVICE:
        return role == required
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[required]


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: str
    name: str
    role: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def to_dict(self, now: datetime) -> dict[str, Any]:
        def instant(value: datetime | None) -> str | None:
            return format_instant(value) if value is not None else None

        return {"id": self.id, "name": self.name, "role": self.role, "prefix": self.prefix,
                "status": self.status(now), "createdAt": instant(self.created_at),
                "expiresAt": instant(self.expires_at), "revokedAt": instant(self.revoked_at),
                "lastUsedAt": instant(self.last_used_at)}


def _token(row: sqlite3.Row | tuple[Any, ...]) -> ApiToken:
    def when(value: str | None) -> datetime | None:
        return parse_instant(value) if value else None

    created = parse_instant(row[4])
    return ApiToken(id=row[0], name=row[1], role=row[2], prefix=row[3], created_at=created,
                    expires_at=when(row[5]), revoked_at=when(row[6]),
                    last_used_at=when(row[7]))


class TokenStore:
    """Create, list, revoke and check API tokens (table `api_tokens`, schema version 2)."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._touched: dict[str, datetime] = {}

    async def create(self, role: str, name: str | None = None,
                     expires_in: timedelta | None = None) -> tuple[ApiToken, str]:
        """A new token and its secret; the secret is not stored and cannot be shown again."""
        if role not in TOKEN_ROLES:
            raise ValidationError([("role", f"'{role}' is not one of {', '.join(TOKEN_ROLES)}")])
        if expires_in is not None and expires_in <= timedelta(0):
            raise ValidationError([("expiresIn", "must be a positive duration")])
        name = (name or "").strip()
        if len(name) > MAX_NAME:
            raise ValidationError([("name", f"at most {MAX_NAME} characters")])
        secret = secrets.token_hex(32)
        now = self.clock.now()
        token = ApiToken(id=new_id(), name=name or f"{role} token", role=role,
                         prefix=secret[:PREFIX_LEN], created_at=now,
                         expires_at=now + expires_in if expires_in is not None else None,
                         revoked_at=None, last_used_at=None)
        expires = format_instant(token.expires_at) if token.expires_at else None

        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "INSERT INTO api_tokens (id, name, role, sha256, prefix, created_at, expires_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (token.id, token.name, token.role, digest(secret), token.prefix,
                 format_instant(now), expires))

        await self.store.run(op)
        return token, secret

    async def list_all(self) -> list[ApiToken]:
        rows = await self.store.fetchall(
            f"SELECT {_COLUMNS} FROM api_tokens WHERE kind = 'token' ORDER BY created_at, id")
        return [_token(r) for r in rows]

    async def get(self, token_id: str) -> ApiToken:
        row = await self.store.fetchone(
            f"SELECT {_COLUMNS} FROM api_tokens WHERE id = ? AND kind = 'token'", (token_id,))
        if row is None:
            raise NotFoundError(f"no token '{token_id}'")
        return _token(row)

    async def revoke(self, token_id: str) -> ApiToken:
        """Revoke a token (idempotent: a revoked one keeps its first revocation time)."""
        now = format_instant(self.clock.now())

        async def op(conn: aiosqlite.Connection) -> int:
            cursor = await conn.execute(
                "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? "
                "AND kind = 'token'", (now, token_id))
            return cursor.rowcount

        if not await self.store.run(op):
            raise NotFoundError(f"no token '{token_id}'")
        return await self.get(token_id)

    async def count_active(self) -> int:
        row = await self.store.fetchone(
            "SELECT COUNT(*) FROM api_tokens WHERE kind = 'token' AND revoked_at IS NULL "
            "AND (expires_at IS NULL OR expires_at > ?)", (format_instant(self.clock.now()),))
        return int(row[0]) if row else 0

    async def authenticate(self, secret: str) -> ApiToken | None:
        """The active token whose secret this is, else None (malformed: no query at all)."""
        if SECRET.fullmatch(secret) is None:
            return None
        hashed = digest(secret)
        row = await self.store.fetchone(
            f"SELECT {_COLUMNS}, sha256 FROM api_tokens WHERE sha256 = ? AND kind = 'token'",
            (hashed,))
        # The index found it by equality; compare again in constant time all the same.
        if row is None or not hmac.compare_digest(row[8], hashed):
            return None
        token = _token(row)
        now = self.clock.now()
        if token.status(now) != "active":
            return None
        await self._touch(token, now)
        return token

    async def _touch(self, token: ApiToken, now: datetime) -> None:
        last = self._touched.get(token.id) or token.last_used_at
        if last is not None and (now - last).total_seconds() < TOUCH_EVERY_S:
            return
        self._touched[token.id] = now
        if len(self._touched) > 10_000:
            self._touched.clear()
        stamp = format_instant(now)

        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?",
                               (stamp, token.id))

        await self.store.run(op)


@asynccontextmanager
async def open_token_store(data_dir: Path, clock: Clock | None = None
                           ) -> AsyncIterator[TokenStore]:
    """The token table of a data dir, opened beside (not instead of) a running engine."""
    clock = clock or SystemClock()
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(data_dir / "flowdeck.db", clock, readers=1)
    await store.open()
    try:
        yield TokenStore(store, clock)
    finally:
        await store.close()
