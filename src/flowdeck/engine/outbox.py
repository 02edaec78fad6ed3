"""Webhook delivery from the durable outbox (`webhook_deliveries`, filled by `engine/events.py`).

A delivery row is written in the same transaction as its event, so it survives any crash; this
worker sends it, at least once, with the same `webhook-id` every time:

- the body is the event's payload exactly as stored; headers `Content-Type`, `User-Agent`,
  `X-Webhook-Event`, `X-Webhook-Execution-Id` (events about an execution), and when the target
  has a secret `X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the body>` plus Standard
  Webhooks' `webhook-id`, `webhook-timestamp`, `webhook-signature` (signed by the
  `standardwebhooks` package; the key is the secret's UTF-8 bytes, or the decoded key of a
  `whsec_…` secret);
- a non-2xx answer, a timeout (10 s) or a connection error is retried after 1 s, 5 s and 15 s,
  then the delivery is dead-lettered (`dead`, visible, redeliverable by hand);
- targets on private, loopback or link-local addresses are refused (after DNS resolution, and
  again for every redirect hop) unless `allow_private_targets` is set: a refusal is final.

A SIGKILL while a request is in flight leaves the row `pending`; the next start sends it again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiosqlite
import httpx
from standardwebhooks.webhooks import Webhook

from flowdeck.core.clock import Clock
from flowdeck.core.errors import ConflictError, NotFoundError
from flowdeck.core.timefmt import format_instant, parse_instant
from flowdeck.engine.netguard import TargetRefused, resolve

log = logging.getLogger("flowdeck.engine.outbox")

USER_AGENT = "Workflow-Automation-Platform/1.0"
RETRY_DELAYS: tuple[float, ...] = (1.0, 5.0, 15.0)
TIMEOUT_S = 10.0
MAX_REDIRECTS = 3
#: Deliveries sent at once (each may wait up to the timeout on a slow receiver).
CONCURRENCY = 8
STATUSES = ("pending", "delivered", "dead")


@dataclass(frozen=True, slots=True)
class OutboxSettings:
    allow_private_targets: bool = False
    retry_delays: tuple[float, ...] = RETRY_DELAYS
    timeout: float = TIMEOUT_S
    user_agent: str = USER_AGENT

    @classmethod
    def from_extra(cls, extra: dict[str, Any] | None) -> OutboxSettings:
        extra = extra or {}
        return cls(allow_private_targets=bool(extra.get("allow_private_targets", False)))


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event to one target, as the deck and the API show it (never the secret)."""

    id: str
    event_seq: int
    event: str
    source: str
    execution_id: str | None
    target: str
    url: str
    status: str
    attempts: int
    next_at: str | None
    last_status: int | None
    last_error: str | None
    created: str
    updated: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "eventSeq": self.event_seq, "event": self.event,
                "source": self.source, "executionId": self.execution_id,
                "target": self.target, "url": self.url, "status": self.status,
                "attempts": self.attempts, "nextAt": self.next_at,
                "lastStatus": self.last_status, "lastError": self.last_error,
                "created": self.created, "updated": self.updated}


SELECT_DELIVERY = (
    "SELECT d.id, d.event_seq, e.kind, e.source, e.execution_id, d.target, d.url, d.status, "
    "d.attempts, d.next_at, d.last_status, d.last_error, d.created, d.updated "
    "FROM webhook_deliveries d JOIN events e ON e.seq = d.event_seq")


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(*row)


def signature_header(secret: str, body: bytes) -> str:
    """`sha256=<hex>`: what the spec's receivers (`verifyWebhookSignature`) check."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def standard_signer(secret: str) -> Webhook:
    """Standard Webhooks signing key: a `whsec_` secret is decoded as the standard says;
    any other secret's UTF-8 bytes are the key (verify with `Webhook(base64(secret))`)."""
    if secret.startswith("whsec_"):
        return Webhook(secret)
    return Webhook(base64.b64encode(secret.encode()).decode())


def build_headers(*, delivery_id: str, event: str, execution_id: str | None, body: bytes,
                  secret: str | None, sent_at: datetime, user_agent: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": user_agent,
               "X-Webhook-Event": event}
    if execution_id:
        headers["X-Webhook-Execution-Id"] = execution_id
    headers["webhook-id"] = delivery_id
    headers["webhook-timestamp"] = str(int(sent_at.timestamp()))
    if secret:
        headers["X-Webhook-Signature"] = signature_header(secret, body)
        headers["webhook-signature"] = standard_signer(secret).sign(delivery_id, sent_at, body)
    return headers


@dataclass(slots=True)
class _Due:
    id: str
    url: str
    secret: str | None
    attempts: int
    event: str
    execution_id: str | None
    body: bytes


class Outbox:
    """Sends due deliveries; wakes when events commit, when a retry falls due, and on demand."""

    def __init__(self, fetchall: Callable[..., Awaitable[Any]],
                 run: Callable[[Callable[[aiosqlite.Connection], Awaitable[Any]]],
                               Awaitable[Any]],
                 clock: Clock, settings: OutboxSettings | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._fetchall = fetchall
        self._run = run
        self.clock = clock
        self.settings = settings or OutboxSettings()
        self._transport = transport
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[str] = set()
        self._senders: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self.sent = 0

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._client = httpx.AsyncClient(transport=self._transport, follow_redirects=False,
                                             timeout=self.settings.timeout, trust_env=False)
            self._task = asyncio.get_running_loop().create_task(self._loop(),
                                                                 name="flowdeck-outbox")

    async def stop(self) -> None:
        task, self._task = self._task, None
        tasks = [t for t in (task, *self._senders) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def wake(self, *_: object) -> None:
        self._wake.set()

    # -- reading and redelivering -----------------------------------------------------------

    async def deliveries(self, *, status: str | None = None, target: str | None = None,
                   limit: int = 100, offset: int = 0) -> tuple[list[Delivery], int]:
        where, params = [], []
        if status is not None:
            where.append("d.status = ?")
            params.append(status)
        if target is not None:
            where.append("d.target = ?")
            params.append(target)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        rows = await self._fetchall(f"{SELECT_DELIVERY}{clause} ORDER BY d.created DESC, d.id "
                                    "DESC LIMIT ? OFFSET ?", [*params, limit, offset])
        total = await self._fetchall(
            f"SELECT COUNT(*) FROM webhook_deliveries d{clause}", params)
        return [_delivery(r) for r in rows], int(total[0][0])

    async def get(self, delivery_id: str) -> Delivery:
        rows = await self._fetchall(f"{SELECT_DELIVERY} WHERE d.id = ?", [delivery_id])
        if not rows:
            raise NotFoundError(f"no webhook delivery '{delivery_id}'")
        return _delivery(rows[0])

    async def redeliver(self, delivery_id: str) -> Delivery:
        """Send a delivery again now (a dead one gets a fresh round of retries)."""
        now = format_instant(self.clock.now())

        async def op(conn: aiosqlite.Connection) -> int:
            cursor = await conn.execute(
                "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_at = ?, "
                "updated = ? WHERE id = ? AND status != 'pending'", (now, now, delivery_id))
            return cursor.rowcount

        changed = await self._run(op)
        if not changed:
            current = await self.get(delivery_id)  # NotFoundError for an unknown id
            raise ConflictError(f"webhook delivery {delivery_id} is already {current.status}")
        self.wake()
        return await self.get(delivery_id)

    # -- sending --------------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            try:
                due, next_at = await self._due()
            except Exception as exc:  # a closed store during shutdown, a locked database...
                log.warning("webhook outbox: %s: %s", type(exc).__name__, exc)
                due, next_at = [], self.clock.now() + timedelta(seconds=1)
            for item in due:
                self._inflight.add(item.id)
                sender = asyncio.get_running_loop().create_task(self._send_one(item))
                self._senders.add(sender)
                sender.add_done_callback(self._senders.discard)
            timeout = None
            if next_at is not None:
                timeout = max(0.0, (next_at - self.clock.now()).total_seconds())
            self._wake.clear()
            if due:
                continue  # there may be more than one batch due
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _due(self) -> tuple[list[_Due], datetime | None]:
        now = format_instant(self.clock.now())
        room = CONCURRENCY - len(self._inflight)
        due: list[_Due] = []
        if room > 0:
            rows = await self._fetchall(
                "SELECT d.id, d.url, d.secret, d.attempts, e.kind, e.execution_id, e.payload "
                "FROM webhook_deliveries d JOIN events e ON e.seq = d.event_seq "
                "WHERE d.status = 'pending' AND d.next_at <= ? ORDER BY d.next_at, d.id "
                "LIMIT ?", [now, room + len(self._inflight)])
            due = [_Due(r[0], r[1], r[2], int(r[3]), r[4], r[5], str(r[6]).encode())
                   for r in rows if r[0] not in self._inflight][:room]
        upcoming = await self._fetchall(
            "SELECT MIN(next_at) FROM webhook_deliveries WHERE status = 'pending' AND "
            "next_at > ?", [now])
        nxt = upcoming[0][0]
        return due, parse_instant(nxt) if nxt else None

    async def _send_one(self, item: _Due) -> None:
        try:
            status, error, final = await self._post(item)
            await self._record(item, status, error, final)
        except Exception as exc:  # keep the worker alive whatever one delivery does
            log.error("webhook delivery %s: %s: %s", item.id, type(exc).__name__, exc)
        finally:
            self._inflight.discard(item.id)
            self.wake()

    async def _post(self, item: _Due) -> tuple[int | None, str | None, bool]:
        """(HTTP status, error, refused-for-good) of one attempt."""
        assert self._client is not None
        url = item.url
        for _ in range(MAX_REDIRECTS + 1):
            try:
                target = await resolve(url, allow_private=self.settings.allow_private_targets)
            except TargetRefused as exc:
                return None, str(exc), True
            headers = build_headers(delivery_id=item.id, event=item.event,
                                    execution_id=item.execution_id, body=item.body,
                                    secret=item.secret, sent_at=self.clock.now(),
                                    user_agent=self.settings.user_agent)
            headers["Host"] = target.host_header
            extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
            try:
                response = await self._client.post(target.url, content=item.body,
                                                   headers=headers, extensions=extensions)
            except httpx.TimeoutException:
                return None, f"timed out after {self.settings.timeout:g} s", False
            except httpx.HTTPError as exc:
                return None, f"{type(exc).__name__}: {exc}"[:500], False
            if response.is_redirect and "location" in response.headers:
                url = str(httpx.URL(url).join(response.headers["location"]))
                continue
            if response.is_success:
                return response.status_code, None, False
            return response.status_code, f"HTTP {response.status_code}", False
        return None, f"more than {MAX_REDIRECTS} redirects", False

    async def _record(self, item: _Due, status: int | None, error: str | None,
                      final: bool) -> None:
        attempts = item.attempts + 1
        now = self.clock.now()
        delays = self.settings.retry_delays
        if error is None:
            state, next_at = "delivered", None
            self.sent += 1
        elif final or attempts > len(delays):
            state, next_at = "dead", None
            log.warning("webhook delivery %s dead after %d attempt(s): %s", item.id, attempts,
                        error)
        else:
            state = "pending"
            next_at = format_instant(now + timedelta(seconds=delays[attempts - 1]))
        stamp = format_instant(now)

        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "UPDATE webhook_deliveries SET status = ?, attempts = ?, next_at = ?, "
                "last_status = ?, last_error = ?, updated = ? WHERE id = ? AND status = "
                "'pending'", (state, attempts, next_at, status, error, stamp, item.id))

        await self._run(op)
