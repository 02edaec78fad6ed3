"""Public API keys: 64 hex characters shown once, kept as SHA-256 in the one token store.

Public keys live in `api_tokens` beside the Kestra API's tokens, as `kind = 'public'`: one
table of hashed secrets, one hashing rule (`engine/keys.py`), one place to look for leaked
credentials. The kind keeps the two apart both ways: `TokenStore` only ever reads
`kind = 'token'`, so a public key never opens the Kestra API, and this store only reads
`kind = 'public'`, so a Kestra token never runs an agent. (The `role` column, which the Kestra
API needs, is 'viewer' for public keys and means nothing for them.)

A key has a name, the workflows it may execute (none listed: every agent), an optional expiry,
a monthly usage limit (default 1,000 executions per calendar month, UTC) and an optional
webhook (URL, events, signing secret). Revoking a key makes it inactive for good.

Usage is charged by `charge`, inside the transaction that inserts the execution: the single
writer runs those one at a time, so with a limit of N exactly N executions exist whatever
the concurrency, and a refused execute leaves nothing behind.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowdeck.core.clock import Clock, SystemClock
from flowdeck.core.errors import NotFoundError, PermissionDenied, ValidationError
from flowdeck.core.ids import new_id
from flowdeck.core.public import (
    DEFAULT_USAGE_LIMIT,
    KEY_EXPIRED,
    KEY_INACTIVE,
    USAGE_EXCEEDED,
    WEBHOOK_EVENTS,
    ApiKey,
    InvalidApiKey,
    NewApiKey,
    month_of,
)
from flowdeck.core.timefmt import format_instant, parse_instant
from flowdeck.engine.keys import MAX_NAME, PREFIX_LEN, TOUCH_EVERY_S, digest
from flowdeck.engine.netguard import check_url
from flowdeck.engine.store import Store

if TYPE_CHECKING:
    import sqlite3

    import aiosqlite

#: Keys are lowercase hex as made; a key pasted in upper case is still the same key.
SECRET = re.compile(r"[0-9a-fA-F]{64}")
WORKFLOW_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{0,199}")
MAX_WORKFLOWS = 1000
MAX_USAGE_LIMIT = 1_000_000_000
MAX_URL = 2000
MAX_WEBHOOK_SECRET = 500
#: The longest a key may be made to last (past it, the expiry date is no longer a date).
MAX_EXPIRES_IN = timedelta(days=36_500)
_COLUMNS = ("id, name, prefix, created_at, expires_at, revoked_at, last_used_at, "
            "allowed_workflows, usage_limit, usage_month, usage_count, webhook_url, "
            "webhook_events, webhook_secret IS NOT NULL")


def _key(row: sqlite3.Row | Sequence[Any]) -> ApiKey:
    def when(value: str | None) -> datetime | None:
        return parse_instant(value) if value else None

    return ApiKey(id=row[0], name=row[1], prefix=row[2], created_at=parse_instant(row[3]),
                  expires_at=when(row[4]), revoked_at=when(row[5]), last_used_at=when(row[6]),
                  allowed_workflows=json.loads(row[7]) if row[7] else [],
                  usage_limit=int(row[8] if row[8] is not None else DEFAULT_USAGE_LIMIT),
                  usage_month=row[9], usage_count=int(row[10] or 0), webhook_url=row[11],
                  webhook_events=json.loads(row[12]) if row[12] else [],
                  has_webhook_secret=bool(row[13]))


def _printable(value: str, path: str, limit: int) -> str:
    if not value:
        raise ValidationError([(path, "must not be empty")])
    if len(value) > limit:
        raise ValidationError([(path, f"at most {limit} characters")])
    if not value.isprintable():
        raise ValidationError([(path, "must not contain control characters")])
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError([(path, "is not valid text")]) from None
    return value


def check_workflows(workflows: Sequence[str]) -> list[str]:
    """The workflow ids a key may execute, checked, without duplicates, in the order given."""
    if isinstance(workflows, str):
        workflows = [workflows]
    if len(workflows) > MAX_WORKFLOWS:
        raise ValidationError([("workflows", f"at most {MAX_WORKFLOWS}")])
    out: list[str] = []
    for i, workflow in enumerate(workflows):
        if not isinstance(workflow, str) or WORKFLOW_ID.fullmatch(workflow) is None:
            raise ValidationError([(f"workflows[{i}]", "must be a flow id (letters, digits, "
                                                       "'.', '_', '-')")])
        if workflow not in out:
            out.append(workflow)
    return out


def check_webhook(url: str | None, events: Sequence[str] | None,
                  secret: str | None) -> tuple[str | None, list[str], str | None]:
    """(url, events, secret) of a key's webhook; events default to all four with a URL."""
    if url is None or url == "":
        if events:
            raise ValidationError([("webhookEvents", "need a webhookUrl")])
        if secret:
            raise ValidationError([("webhookSecret", "needs a webhookUrl")])
        return None, [], None
    _printable(url, "webhookUrl", MAX_URL)
    try:
        check_url(url)
    except ValidationError as exc:
        raise ValidationError([("webhookUrl", msg) for _, msg in exc.problems]) from None
    if isinstance(events, str):
        events = [e.strip() for e in events.split(",") if e.strip()]
    chosen: list[str] = []
    for i, event in enumerate(events or WEBHOOK_EVENTS):
        if event not in WEBHOOK_EVENTS:
            raise ValidationError([(f"webhookEvents[{i}]", f"'{event}' is not one of "
                                                           f"{', '.join(WEBHOOK_EVENTS)}")])
        if event not in chosen:
            chosen.append(event)
    if secret is not None and secret != "":
        _printable(secret, "webhookSecret", MAX_WEBHOOK_SECRET)
    return url, chosen, secret or None


class ApiKeyStore:
    """Create, list, show, revoke and authenticate public API keys; charge their usage."""

    def __init__(self, store: Store, clock: Clock,
                 new_id: Callable[[], str] = new_id) -> None:
        self.store = store
        self.clock = clock
        self.new_id = new_id
        self._touched: dict[str, datetime] = {}

    async def create(self, name: str, *, workflows: Sequence[str] = (),
                     usage_limit: int = DEFAULT_USAGE_LIMIT,
                     expires_in: timedelta | None = None, webhook_url: str | None = None,
                     webhook_events: Sequence[str] | None = None,
                     webhook_secret: str | None = None) -> NewApiKey:
        """A new key and its secret; the secret is not stored and cannot be shown again."""
        name = _printable((name or "").strip(), "name", MAX_NAME)
        allowed = check_workflows(workflows)
        if isinstance(usage_limit, bool) or not isinstance(usage_limit, int) \
                or not 1 <= usage_limit <= MAX_USAGE_LIMIT:
            raise ValidationError([("usageLimit", f"must be a whole number from 1 to "
                                                  f"{MAX_USAGE_LIMIT:,}")])
        if expires_in is not None and expires_in <= timedelta(0):
            raise ValidationError([("expiresIn", "must be a positive duration")])
        if expires_in is not None and expires_in > MAX_EXPIRES_IN:
            raise ValidationError([("expiresIn", f"at most {MAX_EXPIRES_IN.days} days")])
        url, events, secret_for_webhook = check_webhook(webhook_url, webhook_events,
                                                        webhook_secret)
        secret = secrets.token_hex(32)
        now = self.clock.now()
        key = ApiKey(id=self.new_id(), name=name, prefix=secret[:PREFIX_LEN],
                     allowed_workflows=allowed, usage_limit=usage_limit, usage_count=0,
                     usage_month=None, created_at=now,
                     expires_at=now + expires_in if expires_in is not None else None,
                     webhook_url=url, webhook_events=events,
                     has_webhook_secret=secret_for_webhook is not None)

        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "INSERT INTO api_tokens (id, name, role, sha256, prefix, created_at, "
                "expires_at, kind, allowed_workflows, usage_limit, usage_count, webhook_url, "
                "webhook_events, webhook_secret) VALUES (?,?,'viewer',?,?,?,?,'public',?,?,0,"
                "?,?,?)",
                (key.id, key.name, digest(secret), key.prefix, format_instant(now),
                 format_instant(key.expires_at) if key.expires_at else None,
                 json.dumps(allowed), usage_limit, url,
                 json.dumps(events) if url else None, secret_for_webhook))

        await self.store.run(op)
        return NewApiKey(key, secret)

    async def list_all(self) -> list[ApiKey]:
        rows = await self.store.fetchall(
            f"SELECT {_COLUMNS} FROM api_tokens WHERE kind = 'public' ORDER BY created_at, id")
        return [_key(r) for r in rows]

    async def get(self, key_id: str) -> ApiKey:
        row = await self.store.fetchone(
            f"SELECT {_COLUMNS} FROM api_tokens WHERE id = ? AND kind = 'public'",
            (key_id if key_id.isascii() else "",))
        if row is None:
            raise NotFoundError(f"no API key '{key_id}'")
        return _key(row)

    async def revoke(self, key_id: str) -> ApiKey:
        """Make a key inactive for good (idempotent: the first revocation time stays)."""
        now = format_instant(self.clock.now())

        async def op(conn: aiosqlite.Connection) -> int:
            cursor = await conn.execute(
                "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? "
                "AND kind = 'public'", (now, key_id if key_id.isascii() else ""))
            return cursor.rowcount

        if not await self.store.run(op):
            raise NotFoundError(f"no API key '{key_id}'")
        return await self.get(key_id)

    async def authenticate(self, secret: str | None) -> ApiKey:
        """The key whose secret this is, inactive and expired ones included (the caller says
        why those may not act); InvalidApiKey for anything else, malformed without a query."""
        candidate = (secret or "").strip()
        if SECRET.fullmatch(candidate) is None:
            raise InvalidApiKey()
        hashed = digest(candidate.lower())
        row = await self.store.fetchone(
            f"SELECT {_COLUMNS}, sha256 FROM api_tokens WHERE sha256 = ? AND kind = 'public'",
            (hashed,))
        # The index found it by equality; compare again in constant time all the same.
        if row is None or not hmac.compare_digest(row[14], hashed):
            raise InvalidApiKey()
        key = _key(row)
        await self._touch(key, self.clock.now())
        return key

    def check(self, key: ApiKey, now: datetime | None = None) -> None:
        """PermissionDenied (the API's words) unless the key may act now."""
        status = key.status(now or self.clock.now())
        if status == "inactive":
            raise PermissionDenied(KEY_INACTIVE)
        if status == "expired":
            raise PermissionDenied(KEY_EXPIRED)

    async def charge(self, conn: aiosqlite.Connection, key_id: str, now: datetime) -> int:
        """Count one execution against the key's monthly limit, inside the caller's
        transaction; PermissionDenied (and nothing counted) when the key may not execute.
        Returns the month's count including this one."""
        cursor = await conn.execute(
            "SELECT revoked_at, expires_at, usage_limit, usage_month, usage_count "
            "FROM api_tokens WHERE id = ? AND kind = 'public'", (key_id,))
        row = await cursor.fetchone()
        if row is None:
            raise InvalidApiKey()
        revoked, expires, limit, month, count = row
        if revoked is not None:
            raise PermissionDenied(KEY_INACTIVE)
        if expires is not None and parse_instant(expires) <= now:
            raise PermissionDenied(KEY_EXPIRED)
        this_month = month_of(now)
        used = int(count or 0) if month == this_month else 0
        if used >= int(limit if limit is not None else DEFAULT_USAGE_LIMIT):
            raise PermissionDenied(USAGE_EXCEEDED)
        await conn.execute("UPDATE api_tokens SET usage_month = ?, usage_count = ? WHERE id = ?",
                           (this_month, used + 1, key_id))
        return used + 1

    async def _touch(self, key: ApiKey, now: datetime) -> None:
        last = self._touched.get(key.id) or key.last_used_at
        if last is not None and (now - last).total_seconds() < TOUCH_EVERY_S:
            return
        self._touched[key.id] = now
        if len(self._touched) > 10_000:
            self._touched.clear()
        stamp = format_instant(now)

        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?",
                               (stamp, key.id))

        await self.store.run(op)


@asynccontextmanager
async def open_api_key_store(data_dir: Path, clock: Clock | None = None
                             ) -> AsyncIterator[ApiKeyStore]:
    """The public keys of a data dir, opened beside (not instead of) a running engine, like
    `engine.keys.open_token_store`: SQLite serialises the writes."""
    clock = clock or SystemClock()
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(data_dir / "flowdeck.db", clock, readers=1)
    await store.open()
    try:
        yield ApiKeyStore(store, clock)
    finally:
        await store.close()
