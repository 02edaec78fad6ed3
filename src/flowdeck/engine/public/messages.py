"""Where agents deliver messages: a local outbox table, or an HTTP endpoint.

Every message an agent hands over is a row of `agent_messages`, keyed by (task run, row
index), so delivering again after a crash or a restart of the execution never sends a message
twice that was already sent:

- by default (`[public.delivery]` without `url`) the table *is* the destination: the
  message is stored as `sent` and the deck and CLI list it;
- with `url`, each message is recorded as `sending`, POSTed as JSON (`messageId`,
  `customerId`, `to`, `channel`, `content`, `executionId`, `workflowId`) with
  `Authorization: Bearer <token>` (the token read from `token_env` when sending) and
  `Idempotency-Key: <messageId>`, then marked `sent` (keeping the gateway's own `messageId`
  or `id` when it answers with one) or `failed` with the reason. A message left `sending` by
  a crash is sent again with the same Idempotency-Key.

The endpoint is the operator's (configuration, not flows), so it may be on a private network.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from flowdeck.core.clock import Clock
from flowdeck.core.errors import NotFoundError
from flowdeck.core.ids import new_id
from flowdeck.core.public import AgentMessage
from flowdeck.core.timefmt import format_instant, parse_instant
from flowdeck.engine.outbox import USER_AGENT
from flowdeck.engine.public.settings import DeliverySettings
from flowdeck.engine.store import Store

if TYPE_CHECKING:
    import sqlite3

    import aiosqlite

#: Messages sent to the endpoint at once.
CONCURRENCY = 5
MAX_ERROR = 500
MAX_EXTERNAL_ID = 200
_COLUMNS = ("id, execution_id, namespace, flow_id, customer_id, recipient, channel, content, "
            "transport, status, external_id, error, created, updated")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to deliver: its place in the batch, whom it is for and what it says."""

    row_index: int
    customer_id: str | None
    recipient: str | None
    content: str


def _message(row: sqlite3.Row | Sequence[Any]) -> AgentMessage:
    return AgentMessage(id=row[0], execution_id=row[1], namespace=row[2], flow_id=row[3],
                        customer_id=row[4], recipient=row[5], channel=row[6], content=row[7],
                        transport=row[8], status=row[9], external_id=row[10], error=row[11],
                        created=parse_instant(row[12]), updated=parse_instant(row[13]))


class MessageOutbox:
    def __init__(self, store: Store, clock: Clock, settings: DeliverySettings,
                 environ: dict[str, str], new_id: Callable[[], str] = new_id,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.environ = environ
        self.new_id = new_id
        self._transport = transport

    @property
    def transport(self) -> str:
        return "http" if self.settings.url else "local"

    # -- reading ------------------------------------------------------------------------------

    async def list_all(self, *, execution_id: str | None = None, limit: int = 100,
                   offset: int = 0) -> tuple[list[AgentMessage], int]:
        """Messages, newest first (one execution's in batch order), and how many there are."""
        limit, offset = max(1, min(limit, 1000)), max(0, offset)
        if execution_id is not None:
            where, params, order = " WHERE execution_id = ?", [execution_id], "row_index"
        else:
            where, params, order = "", [], "created DESC, id DESC"
        rows = await self.store.fetchall(
            f"SELECT {_COLUMNS} FROM agent_messages{where} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, limit, offset])
        total = await self.store.fetchone(f"SELECT COUNT(*) FROM agent_messages{where}", params)
        return [_message(r) for r in rows], int(total[0]) if total else 0

    async def get(self, message_id: str) -> AgentMessage:
        row = await self.store.fetchone(f"SELECT {_COLUMNS} FROM agent_messages WHERE id = ?",
                                        (message_id if message_id.isascii() else "",))
        if row is None:
            raise NotFoundError(f"no agent message '{message_id}'")
        return _message(row)

    # -- delivering ---------------------------------------------------------------------------

    async def deliver(self, *, execution_id: str, task_run_id: str, namespace: str,
                      flow_id: str, channel: str, items: Sequence[Outgoing]
                      ) -> list[AgentMessage]:
        """Deliver `items` (at most once each for this task run); the messages in order."""
        if not items:
            return []
        transport = self.transport
        initial = "sent" if transport == "local" else "sending"
        now = format_instant(self.clock.now())
        rows = [(self.new_id(), execution_id, task_run_id, item.row_index, namespace, flow_id,
                 item.customer_id, item.recipient, channel, item.content, transport, initial,
                 now, now) for item in items]

        async def record(conn: aiosqlite.Connection) -> dict[int, AgentMessage]:
            await conn.executemany(
                "INSERT OR IGNORE INTO agent_messages (id, execution_id, task_run_id, "
                "row_index, namespace, flow_id, customer_id, recipient, channel, content, "
                "transport, status, created, updated) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows)
            cursor = await conn.execute(
                f"SELECT row_index, {_COLUMNS} FROM agent_messages WHERE task_run_id = ?",
                (task_run_id,))
            return {int(r[0]): _message(r[1:]) for r in await cursor.fetchall()}

        by_index = await self.store.run(record)
        if transport == "local":
            return [by_index[item.row_index] for item in items]
        return await self._send_all([by_index[item.row_index] for item in items])

    async def _send_all(self, messages: list[AgentMessage]) -> list[AgentMessage]:
        due = [m for m in messages if m.status != "sent"]
        if not due:
            return messages
        token = self.environ.get(self.settings.token_env) if self.settings.token_env else None
        gate = asyncio.Semaphore(CONCURRENCY)
        async with httpx.AsyncClient(transport=self._transport, timeout=self.settings.timeout,
                                     trust_env=False, follow_redirects=False) as client:
            async def one(message: AgentMessage) -> tuple[str, str | None, str | None]:
                async with gate:
                    return await self._send(client, message, token)

            outcomes = await asyncio.gather(*(one(m) for m in due))
        stamp = format_instant(self.clock.now())
        updates = [(status, external, error, stamp, m.id)
                   for m, (status, external, error) in zip(due, outcomes, strict=True)]

        async def op(conn: aiosqlite.Connection) -> None:
            await conn.executemany(
                "UPDATE agent_messages SET status = ?, external_id = ?, error = ?, updated = ? "
                "WHERE id = ?", updates)

        await self.store.run(op)
        changed = {m.id: m for m in [await self.get(m.id) for m in due]}
        return [changed.get(m.id, m) for m in messages]

    async def _send(self, client: httpx.AsyncClient, message: AgentMessage,
                    token: str | None) -> tuple[str, str | None, str | None]:
        """(status, gateway message id, error) of one POST."""
        assert self.settings.url is not None
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "Idempotency-Key": message.id}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = {"messageId": message.id, "customerId": message.customer_id,
                "to": message.recipient, "channel": message.channel,
                "content": message.content, "executionId": message.execution_id,
                "workflowId": message.flow_id}
        try:
            response = await client.post(self.settings.url, headers=headers,
                                         content=json.dumps(body, ensure_ascii=False))
        except httpx.TimeoutException:
            return "failed", None, f"timed out after {self.settings.timeout:g} s"
        except httpx.HTTPError as exc:
            return "failed", None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
        if not response.is_success:
            return "failed", None, f"HTTP {response.status_code}"
        return "sent", _gateway_id(response), None


def _gateway_id(response: httpx.Response) -> str | None:
    """The gateway's own id for the message, if its JSON answer names one."""
    try:
        data = response.json()
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    for key in ("messageId", "id"):
        value = data.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            text = str(value)
            if 0 < len(text) <= MAX_EXTERNAL_ID and text.isprintable():
                return text
    return None
