"""The event log: lifecycle events every API can emit, durable and numbered, in one table.

An event is written in the same transaction as the change that causes it, and every webhook
delivery it needs is enqueued in that transaction too (`engine/outbox.py` sends them), so a
crash can never keep a committed change and lose its event, or the other way round.

Events come from two places:

- a domain service appends them inside its own store operation (`await log.append(conn, ...)`
  in a `store.run` op: a release created, a deployment activated);
- execution changes: an `ExecutionEventSource` says which executions it cares about and maps
  the state changes an execution went through since the last commit (new entries of its and
  its task runs' state histories) onto events. The store calls `derive_in_transaction` on its
  writer thread for every execution snapshot it commits, so a run that went RUNNING → SUCCESS
  between two commits still yields both events. How far each execution has been turned into
  events ("marks") is kept in `executions.event_marks`, written with the snapshot, so a restart
  neither repeats nor skips one.

The payload of an event is the exact JSON body a webhook receiver gets; each API family
(`source`) shapes its own. Sequence numbers only grow: readers resume with `after=N`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiosqlite

from flowdeck.core.clock import Clock
from flowdeck.core.timefmt import format_instant

log = logging.getLogger("flowdeck.engine.events")

#: The bus topic published after events commit (the payload is the highest new sequence).
EVENTS = "events"
#: Marks of pre-existing executions (migration): "derived through the committed document".
MARKS_COMMITTED = "*"
#: Marks kept in memory between commits (the column is the truth; this saves a read).
MARKS_CACHE = 4096


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be written. `payload` is the whole body webhook receivers get."""

    kind: str
    source: str
    payload: dict[str, Any]
    subject: str | None = None
    execution_id: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A committed event."""

    seq: int
    id: str
    kind: str
    source: str
    subject: str | None
    execution_id: str | None
    created: str
    payload: dict[str, Any]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Event:
        return cls(seq=int(row[0]), id=str(row[1]), kind=str(row[2]), source=str(row[3]),
                   subject=row[4], execution_id=row[5], created=str(row[6]),
                   payload=json.loads(row[7]))


@dataclass(frozen=True, slots=True)
class Target:
    """Where one event goes: a name (who subscribed), a URL and the signing secret."""

    name: str
    url: str
    secret: str | None = None


class TargetResolver(Protocol):
    """Who wants an event. Runs inside the writing transaction, on the writer's thread, with
    the plain sqlite3 connection (read your own tables with it; never commit)."""

    def targets(self, conn: sqlite3.Connection, event: NewEvent) -> list[Target]: ...


@dataclass(slots=True)
class ExecutionDelta:
    """What happened to an execution since its last commit: new state entries of the
    execution and of each task run (task runs in the order of the document)."""

    doc: dict[str, Any]
    states: list[dict[str, Any]]
    task_states: list[tuple[dict[str, Any], list[dict[str, Any]]]]

    @property
    def empty(self) -> bool:
        return not self.states and not self.task_states


class ExecutionEventSource(Protocol):
    """Maps execution changes onto one API family's events. Both methods run on the writer
    thread inside the transaction: keep them pure and quick."""

    def wants(self, namespace: str, flow_id: str, labels: dict[str, str]) -> bool: ...

    def derive(self, delta: ExecutionDelta) -> list[NewEvent]: ...


@dataclass(slots=True)
class Marks:
    """How many state entries of the execution and of each task run became events."""

    execution: int = 0
    tasks: dict[str, int] = field(default_factory=dict)

    def dumps(self) -> str:
        return json.dumps({"e": self.execution, "t": self.tasks}, separators=(",", ":"))

    @classmethod
    def loads(cls, text: str) -> Marks:
        data = json.loads(text)
        return cls(int(data.get("e", 0)), {str(k): int(v) for k, v in data.get("t", {}).items()})

    @classmethod
    def through(cls, doc: dict[str, Any]) -> Marks:
        """Everything in `doc` already turned into events."""
        return cls(len(doc.get("state", {}).get("histories") or []),
                   {tr["id"]: len(tr.get("state", {}).get("histories") or [])
                    for tr in doc.get("taskRunList") or []})


def delta_since(doc: dict[str, Any], marks: Marks) -> tuple[ExecutionDelta, Marks]:
    """The state entries of `doc` past `marks`, and the marks after them."""
    histories = doc.get("state", {}).get("histories") or []
    states = histories[marks.execution:] if len(histories) > marks.execution else []
    task_states: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    after = Marks(len(histories), {})
    for task_run in doc.get("taskRunList") or []:
        entries = task_run.get("state", {}).get("histories") or []
        seen = marks.tasks.get(task_run["id"], 0)
        if len(entries) > seen:
            task_states.append((task_run, entries[seen:]))
        after.tasks[task_run["id"]] = len(entries)
    return ExecutionDelta(doc, states, task_states), after


INSERT_EVENT = ("INSERT INTO events(id, kind, source, subject, execution_id, created, payload) "
                "VALUES (?,?,?,?,?,?,?)")
INSERT_DELIVERY = ("INSERT INTO webhook_deliveries(id, event_seq, target, url, secret, status, "
                   "attempts, next_at, created, updated) VALUES (?,?,?,?,?,'pending',0,?,?,?)")
SELECT_EVENTS = ("SELECT seq, id, kind, source, subject, execution_id, created, payload "
                 "FROM events")


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class EventLog:
    """Appends events (with their deliveries) inside transactions; reads and follows them."""

    def __init__(self, clock: Clock, new_id: Callable[[], str],
                 publish: Callable[[int], None]) -> None:
        self.clock = clock
        self.new_id = new_id
        self._publish = publish
        self.sources: list[ExecutionEventSource] = []
        self.resolvers: list[TargetResolver] = []
        self._marks: OrderedDict[str, Marks] = OrderedDict()
        #: Sequences committed by the writer, handed to `committed()` after the commit.
        self._pending_max = 0

    # -- writing (inside a transaction) -------------------------------------------------------

    def write(self, conn: sqlite3.Connection, events: Sequence[NewEvent]) -> list[int]:
        """Insert `events` and their deliveries with a plain sqlite3 connection (writer thread,
        inside the caller's transaction). Returns their sequence numbers."""
        now = format_instant(self.clock.now())
        seqs = []
        for event in events:
            cursor = conn.execute(INSERT_EVENT, (
                self.new_id(), event.kind, event.source, event.subject, event.execution_id,
                now, dumps(event.payload)))
            seq = int(cursor.lastrowid or 0)
            seqs.append(seq)
            for target in self._targets(conn, event):
                conn.execute(INSERT_DELIVERY, (self.new_id(), seq, target.name, target.url,
                                               target.secret, now, now, now))
        if seqs:
            self._pending_max = max(self._pending_max, seqs[-1])
        return seqs

    async def append(self, conn: aiosqlite.Connection, events: Sequence[NewEvent]) -> list[int]:
        """`write` from a `store.run` op (same transaction as the op's own changes); the
        events are announced once that commit is durable."""
        seqs: list[int] = await conn._execute(  # type: ignore[no-untyped-call]
            self.write, conn._conn, list(events))
        return seqs

    def _targets(self, conn: sqlite3.Connection, event: NewEvent) -> list[Target]:
        found: list[Target] = []
        for resolver in self.resolvers:
            try:
                found.extend(resolver.targets(conn, event))
            except sqlite3.Error:
                raise
            except Exception as exc:  # a resolver's bug must not lose the change it rides on
                log.error("webhook targets of %s event %s: %s: %s", event.source, event.kind,
                          type(exc).__name__, exc)
        return found

    def derive_in_transaction(self, conn: sqlite3.Connection,
                              rows: Sequence[tuple[Any, ...]]) -> None:
        """The store's commit hook: events for the execution snapshots being written.

        Runs before the snapshots are written, so the stored document is still the previous
        one. `rows` are `store.execution_row` tuples (id, namespace, flow_id, ..., labels JSON
        at 7, doc dict at 10). Only executions some source wants are looked at; their marks
        are written every time (cheap, and never left as "through the committed document").
        """
        if not self.sources:
            return
        for row in rows:
            execution_id, namespace, flow_id = row[0], row[1], row[2]
            labels = json.loads(row[7]) if isinstance(row[7], str) else dict(row[7])
            wanting = [s for s in self.sources if s.wants(namespace, flow_id, labels)]
            if not wanting:
                continue
            doc: dict[str, Any] = row[10]
            marks = self._marks_of(conn, execution_id)
            delta, after = delta_since(doc, marks)
            events: list[NewEvent] = []
            for source in wanting if not delta.empty else ():
                try:
                    events.extend(source.derive(delta))
                except Exception as exc:  # never lose the snapshot for a source's bug
                    log.error("events of execution %s: %s: %s", execution_id,
                              type(exc).__name__, exc)
            self.write(conn, events)
            conn.execute("UPDATE executions SET event_marks = ? WHERE id = ?",
                         (after.dumps(), execution_id))
            self._remember(execution_id, after)

    def _marks_of(self, conn: sqlite3.Connection, execution_id: str) -> Marks:
        cached = self._marks.get(execution_id)
        if cached is not None:
            self._marks.move_to_end(execution_id)
            return cached
        row = conn.execute("SELECT event_marks, doc FROM executions WHERE id = ?",
                           (execution_id,)).fetchone()
        if row is None or row[0] is None:
            return Marks()
        if row[0] == MARKS_COMMITTED:
            return Marks.through(json.loads(row[1]))
        return Marks.loads(row[0])

    def _remember(self, execution_id: str, marks: Marks) -> None:
        self._marks[execution_id] = marks
        self._marks.move_to_end(execution_id)
        while len(self._marks) > MARKS_CACHE:
            self._marks.popitem(last=False)

    def forget_marks(self) -> None:
        """After a failed transaction the cached marks may be ahead of the database."""
        self._marks.clear()

    def committed(self) -> None:
        """Called once the transaction holding new events is durable: wake readers."""
        if self._pending_max:
            newest, self._pending_max = self._pending_max, 0
            self._publish(newest)


class EventReader:
    """Reading the log: pages after a sequence number, and following it live."""

    def __init__(self, fetchall: Callable[..., Any], subscribe: Callable[[], Any]) -> None:
        self._fetchall = fetchall
        self._subscribe = subscribe

    async def after(self, seq: int = 0, *, source: str | None = None,
                    kinds: Sequence[str] | None = None, limit: int = 100) -> list[Event]:
        sql = SELECT_EVENTS + " WHERE seq > ?"
        params: list[Any] = [seq]
        if source is not None:
            sql += " AND source = ?"
            params.append(source)
        if kinds:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            params.extend(kinds)
        sql += " ORDER BY seq LIMIT ?"
        params.append(max(1, min(limit, 1000)))
        return [Event.from_row(r) for r in await self._fetchall(sql, params)]

    async def latest_seq(self) -> int:
        rows = await self._fetchall("SELECT COALESCE(MAX(seq), 0) FROM events")
        return int(rows[0][0])

    async def follow(self, seq: int = 0, *, source: str | None = None,
                     heartbeat: float | None = None) -> AsyncIterator[Event | None]:
        """Stored events after `seq`, then new ones as they commit; `None` every `heartbeat`
        seconds of silence (so a stream can prove it is alive). Never ends by itself."""
        sub = self._subscribe()
        try:
            while True:
                page = await self.after(seq, source=source, limit=500)
                for event in page:
                    seq = event.seq
                    yield event
                if len(page) == 500:
                    continue
                try:
                    await sub.get(heartbeat)
                except TimeoutError:
                    yield None
                while not sub.queue.empty():
                    sub.queue.get_nowait()
                sub.lagged = False
        finally:
            sub.close()

