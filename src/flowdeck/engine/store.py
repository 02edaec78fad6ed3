"""SQLite storage: one writer that group-commits, a small pool of readers, versioned schema.

Durability rule: nothing is published or acknowledged before the transaction holding it has
committed. Writers do not talk to SQLite directly; they *stage* execution snapshots and log lines
(coalesced: only the newest snapshot of an execution is written) or queue an operation, and one
writer task commits everything pending in a single transaction (group commit), then runs the
post-commit callbacks that publish events. WAL mode with `synchronous=FULL` makes a commit
survive power loss, and batching keeps that cheap. A batch nobody waits for gathers for up to
`COALESCE_S`; one that an operation or a flush waits for is committed at once, in one trip to
the writer connection's thread when it holds only snapshots and log lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiosqlite

from flowdeck.core.clock import Clock
from flowdeck.core.errors import EngineLockedError
from flowdeck.core.models import Execution, LogEntry
from flowdeck.core.timefmt import format_instant
from flowdeck.engine.schema import migrate

T = TypeVar("T")
LOG_BACKLOG = 512
#: How long staged snapshots and log lines may gather before a commit when nobody waits for
#: one (an operation, a flush or a log backlog commits at once). Each commit re-serialises
#: every staged execution whole and costs an fsync; a run of short tasks (shell `true`) pays
#: noticeably for each one, while 5 ms is still far below what a live view can show.
COALESCE_S = 0.005
Op = Callable[[aiosqlite.Connection], Awaitable[Any]]
PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class CommitHooks(Protocol):
    """Work that rides on every group commit (the event log: events derived from the
    execution snapshots, written in the same transaction)."""

    def derive_in_transaction(self, conn: sqlite3.Connection,
                              rows: Sequence[tuple[Any, ...]]) -> None: ...

    def committed(self) -> None: ...

    def forget_marks(self) -> None: ...


@dataclass(slots=True)
class _Pending:
    op: Op
    future: asyncio.Future[Any]


class DataDirLock:
    """An exclusive advisory lock: one engine per data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "engine.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise EngineLockedError(
                f"another flowdeck engine (pid {holder}) is already using {self.path.parent}; "
                "stop it or pick another --data-dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class Store:
    """The engine's only door to SQLite."""

    def __init__(self, db_path: Path, clock: Clock, readers: int = 2) -> None:
        self.db_path = db_path
        self.clock = clock
        self._reader_count = readers
        self._writer: aiosqlite.Connection | None = None
        self._free_readers: list[aiosqlite.Connection] = []
        self._reader_waiters: deque[asyncio.Future[aiosqlite.Connection]] = deque()
        self._all_readers: list[aiosqlite.Connection] = []
        self._staged_executions: dict[str, Execution] = {}
        self._staged_logs: list[LogEntry] = []
        self._ops: list[_Pending] = []
        self._callbacks: list[Callable[[], None]] = []
        self._flush_waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        #: Set while the writer lets a batch gather; resolving it ends the wait early.
        self._gathering: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failure: BaseException | None = None
        self.commits = 0
        #: Called after each commit with (execution id, state, Kestra JSON) of every snapshot.
        self.on_execution_committed: Callable[[str, str, dict[str, Any]], None] | None = None
        #: Run inside every transaction that writes execution snapshots, on the writer thread.
        self.hooks: CommitHooks | None = None

    async def open(self) -> None:
        self._writer = await aiosqlite.connect(self.db_path, isolation_level=None)
        try:
            for pragma in PRAGMAS:
                await self._writer.execute(pragma)
            await migrate(self._writer)
            # Keep the planner's statistics fresh (cheap; it only analyses what changed).
            await self._writer.execute("PRAGMA optimize=0x10002")
        except BaseException:
            await self._writer.close()
            self._writer = None
            raise
        for _ in range(self._reader_count):
            conn = await aiosqlite.connect(self.db_path, isolation_level=None)
            conn.row_factory = sqlite3.Row
            await conn.execute("PRAGMA busy_timeout=5000")
            await conn.execute("PRAGMA query_only=1")
            self._all_readers.append(conn)
            self._free_readers.append(conn)
        self._task = asyncio.create_task(self._write_loop(), name="flowdeck-store-writer")

    async def close(self) -> None:
        self._closing = True
        self._hurry()
        self._wake.set()
        if self._task is not None:
            await self._task
        for conn in self._all_readers:
            await conn.close()
        if self._writer is not None:
            await self._writer.close()

    # -- writing ----------------------------------------------------------------------------

    def stage_execution(self, execution: Execution) -> None:
        """Write this execution's current snapshot with the next commit (coalesced)."""
        self._staged_executions[execution.id] = execution
        self._wake.set()

    def stage_logs(self, entries: Sequence[LogEntry]) -> None:
        self._staged_logs.extend(entries)
        self._wake.set()

    def log_backlogged(self, limit: int = LOG_BACKLOG) -> bool:
        """Whether `log_room` would wait now."""
        return len(self._staged_logs) > limit and self._failure is None

    async def log_room(self, limit: int = LOG_BACKLOG) -> None:
        """Wait while more than `limit` log lines are waiting for a commit.

        Chatty tasks call this after each chunk they log, so a burst is held back in the
        pipe (the task's own write blocks) instead of piling up here: commits stay small and a
        line reaches followers within a couple of commits.
        """
        while len(self._staged_logs) > limit and self._failure is None:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._flush_waiters.append(future)
            self._hurry()
            self._wake.set()
            await future

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once everything staged so far has committed."""
        self._callbacks.append(callback)
        self._wake.set()

    async def run(self, op: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run `op` inside the next group commit; returns once that commit is durable."""
        self._check_alive()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._ops.append(_Pending(op, future))
        self._hurry()
        self._wake.set()
        return await future

    async def flush(self) -> None:
        """Wait until everything staged before this call is committed."""
        self._check_alive()
        idle = not (self._staged_executions or self._staged_logs or self._ops
                    or self._callbacks)
        if idle and self._busy_batch is None:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flush_waiters.append(future)
        self._hurry()
        self._wake.set()
        await future

    async def probe_write(self, timeout: float) -> str | None:
        """None if a write (the health probe row) commits within `timeout` seconds, else why
        not: what a health check asks of the store."""
        now = format_instant(self.clock.now())

        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute("INSERT INTO health_probe(id, at) VALUES (1, ?) "
                               "ON CONFLICT(id) DO UPDATE SET at = excluded.at", (now,))

        try:
            await asyncio.wait_for(self.run(op), timeout)
        except TimeoutError:
            return f"the store did not commit a write within {timeout:g} s"
        except Exception as exc:  # a failed disk, a closed store...
            return f"the store cannot write: {exc}"
        return None

    def _hurry(self) -> None:
        """Someone waits for the next commit: stop letting the batch gather."""
        gathering = self._gathering
        if gathering is not None and not gathering.done():
            gathering.set_result(None)

    _busy_batch: object | None = None

    def _check_alive(self) -> None:
        if self._failure is not None:
            raise RuntimeError(f"storage failed: {self._failure}") from self._failure

    async def _write_loop(self) -> None:
        assert self._writer is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not (self._staged_executions or self._staged_logs or self._ops
                    or self._callbacks or self._flush_waiters):
                if self._closing:
                    return
                continue
            if not (self._ops or self._flush_waiters or self._closing):
                # Nobody waits on this batch: let a few more changes join it (fewer fsyncs),
                # until someone does (an operation or a flush must not wait for the window).
                loop = asyncio.get_running_loop()
                gathering = self._gathering = loop.create_future()
                timer = loop.call_later(COALESCE_S, _resolve, gathering)
                try:
                    await gathering
                finally:
                    timer.cancel()
                    self._gathering = None
            executions, self._staged_executions = self._staged_executions, {}
            logs, self._staged_logs = self._staged_logs, []
            ops, self._ops = self._ops, []
            callbacks, self._callbacks = self._callbacks, []
            waiters, self._flush_waiters = self._flush_waiters, []
            # Snapshot the executions now, with the logs just taken: the runner keeps mutating
            # them while the commit is in flight, and a state serialised later could become
            # visible a commit before the log lines that led to it (a FAILED execution whose
            # ERROR line is not stored yet).
            now = self.clock.now()
            rows = [execution_row(ex, now) for ex in executions.values()]
            self._busy_batch = object()
            try:
                results = await self._commit(rows, logs, ops)
            except Exception as exc:  # the disk is full, the file vanished...
                self._busy_batch = None
                if self.hooks is not None:
                    self.hooks.forget_marks()
                for pending in ops:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(exc)
                # Snapshots are retried with the next commit; nothing is silently dropped.
                for ex in executions.values():
                    self._staged_executions.setdefault(ex.id, ex)
                self._staged_logs[:0] = logs
                self._callbacks[:0] = callbacks
                await asyncio.sleep(0.05)
                self._wake.set()
                continue
            self._busy_batch = None
            self.commits += 1
            if self.hooks is not None:
                self.hooks.committed()
            for pending, (ok, value) in zip(ops, results, strict=True):
                if pending.future.done():
                    continue
                if ok:
                    pending.future.set_result(value)
                else:
                    pending.future.set_exception(value)
            hook = self.on_execution_committed
            if hook is not None:
                for row in rows:
                    hook(row[0], row[4], row[10])
            for callback in callbacks:
                callback()
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            if self._closing:
                # close() woke us once; work queued during this commit needs another round.
                self._wake.set()

    async def _commit(self, rows: list[tuple[Any, ...]], logs: list[LogEntry],
                      ops: list[_Pending]) -> list[tuple[bool, Any]]:
        conn = self._writer
        assert conn is not None
        results: list[tuple[bool, Any]] = []
        if not ops:  # the common batch: snapshots and log lines only
            # One trip to the writer thread for the whole transaction instead of three or four
            # (each trip is a thread wake-up and an event-loop wake-up on the way back).
            # `_execute` is how aiosqlite runs anything on that thread; private, but the same
            # in every version the project allows (aiosqlite 0.21 and 0.22).
            await conn._execute(  # type: ignore[no-untyped-call]
                _write_batch, conn, rows, _log_rows(logs), self.hooks)
            return results
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for i, pending in enumerate(ops):
                await conn.execute(f"SAVEPOINT op{i}")
                try:
                    value = await pending.op(conn)
                except Exception as exc:
                    await conn.execute(f"ROLLBACK TO op{i}")
                    await conn.execute(f"RELEASE op{i}")
                    results.append((False, exc))
                else:
                    await conn.execute(f"RELEASE op{i}")
                    results.append((True, value))
            if rows:
                if self.hooks is not None:  # before the update: it reads what was committed
                    await conn._execute(  # type: ignore[no-untyped-call]
                        self.hooks.derive_in_transaction, conn._conn, rows)
                await conn.executemany(UPDATE_EXECUTION, _update_rows(rows))
            if logs:
                await conn.executemany(INSERT_LOG, _log_rows(logs))
            await conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
            raise
        return results

    # -- reading ----------------------------------------------------------------------------

    async def _take_reader(self) -> aiosqlite.Connection:
        """A reader connection, first come first served (a queue can let newcomers overtake)."""
        if self._free_readers:
            return self._free_readers.pop()
        future: asyncio.Future[aiosqlite.Connection] = asyncio.get_running_loop().create_future()
        self._reader_waiters.append(future)
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._give_back(future.result())
            raise

    def _give_back(self, conn: aiosqlite.Connection) -> None:
        while self._reader_waiters:
            waiter = self._reader_waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._free_readers.append(conn)

    @contextlib.asynccontextmanager
    async def reader(self) -> Any:
        conn = await self._take_reader()
        try:
            yield conn
        finally:
            self._give_back(conn)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """One trip to the reader thread: execute and fetch together."""
        async with self.reader() as conn:
            return list(await conn.execute_fetchall(sql, params))

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None


UPDATE_EXECUTION = ("UPDATE executions SET state=?, start_date=?, end_date=?, labels=?, doc=? "
                    "WHERE id=?")
INSERT_LOG = ("INSERT OR IGNORE INTO logs(execution_id, seq, task_run_id, task_id, attempt, ts,"
              " level, message) VALUES (?,?,?,?,?,?,?,?)")


def _log_rows(logs: list[LogEntry]) -> list[tuple[Any, ...]]:
    return [(e.execution_id, e.seq, e.task_run_id, e.task_id, e.attempt_number, e.timestamp,
             e.level, e.message) for e in logs]


def _update_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [(*r[4:8], r[9], r[0]) for r in rows]


def _write_batch(writer: aiosqlite.Connection, executions: list[tuple[Any, ...]],
                 logs: list[tuple[Any, ...]], hooks: CommitHooks | None) -> None:
    """One group-commit transaction, run on the writer connection's own thread."""
    db = writer._conn
    db.execute("BEGIN IMMEDIATE")
    try:
        if executions:
            if hooks is not None:  # before the update: it reads what was committed
                hooks.derive_in_transaction(db, executions)
            db.executemany(UPDATE_EXECUTION, _update_rows(executions))
        if logs:
            db.executemany(INSERT_LOG, logs)
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):
            db.execute("ROLLBACK")
        raise


def execution_row(ex: Execution, now: Any) -> tuple[Any, ...]:
    """(id, namespace, flow_id, revision, state, start, end, labels, parent, doc, doc dict)."""
    end = ex.state.end_date
    text, doc = ex.to_json(now)
    return (
        ex.id, ex.namespace, ex.flow_id, ex.flow_revision, ex.state.current,
        format_instant(ex.state.start_date), format_instant(end) if end else None,
        dumps({k: v for k, v in ex.labels}), ex.parent_id, text, doc,
    )
