"""SQLite storage: one writer that group-commits, a small pool of readers, versioned schema.

Durability rule: nothing is published or acknowledged before the transaction holding it has
committed. Writers do not talk to SQLite directly; they *stage* execution snapshots and log lines
(coalesced: only the newest snapshot of an execution is written) or queue an operation, and one
writer task commits everything pending in a single transaction (group commit), then runs the
post-commit callbacks that publish events. WAL mode with `synchronous=FULL` makes a commit
survive power loss, and batching keeps that cheap. A batch nobody waits for gathers for up to
`COALESCE_S`; one that an operation or a flush waits for is committed at once, in one trip to
the writer connection's thread when it holds only snapshots and log lines.

One item that cannot be written never blocks the others. A group commit that fails for a reason
other than SQLite's `OperationalError` (a lone surrogate that slipped past sanitising, a row a
trigger or constraint refuses) is split in halves until the item is found; an item that fails
alone twice, while a probe write succeeds, is poisoned: a log line is replaced by a marker line,
an execution snapshot by a FAILED marker (the engine logs why and stops the run), an operation
fails only its own caller. An `OperationalError` (disk full, database locked) or a failing probe
says the store itself cannot write right now: nothing is dropped, staged work is retried with a
capped backoff, and callers waiting for a commit get `StorageUnavailable` after a few tries.
`health()` reports what the writer last went through; `close()` ends within its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiosqlite

from flowdeck.core.clock import Clock
from flowdeck.core.errors import EngineLockedError, FlowdeckError, StorageUnavailable
from flowdeck.core.models import Execution, LogEntry
from flowdeck.core.sanitize import valid_json, valid_text
from flowdeck.core.states import TERMINAL_STATES
from flowdeck.core.timefmt import format_instant
from flowdeck.engine.schema import SCHEMA_VERSION, migrate

log = logging.getLogger("flowdeck.store")

T = TypeVar("T")
LOG_BACKLOG = 512
#: How long staged snapshots and log lines may gather before a commit when nobody waits for
#: one (an operation, a flush or a log backlog commits at once). Each commit re-serialises
#: every staged execution whole and costs an fsync; a run of short tasks (shell `true`) pays
#: noticeably for each one, while 5 ms is still far below what a live view can show.
COALESCE_S = 0.005
Op = Callable[[aiosqlite.Connection], Awaitable[Any]]
#: How many group commits an operation or a flush waits through while the store cannot write,
#: before its caller gets `StorageUnavailable` (staged snapshots and log lines keep waiting).
MAX_TRIES = 3
#: Backoff between retries while the store cannot write: doubles from the first to the cap.
RETRY_FIRST_S = 0.05
RETRY_CAP_S = 1.0
#: How long `close` keeps trying to commit what is left before it gives up (and says so).
CLOSE_DEADLINE_S = 4.0
#: How many poisoned executions are remembered (their later snapshots are not written).
POISON_MEMORY = 1000
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
    tries: int = 0


@dataclass(slots=True)
class _Waiter:
    future: asyncio.Future[None]
    tries: int = 0


@dataclass(slots=True)
class _Snapshot:
    """An execution and the row it was serialised to when its batch was taken (or why it
    could not be: a value JSON cannot carry, which will not get better by trying again)."""

    execution: Execution
    row: tuple[Any, ...]
    error: BaseException | None = None
    #: A FAILED marker standing in for a snapshot that could not be written.
    marker: bool = False

    @classmethod
    def of(cls, execution: Execution, now: Any) -> _Snapshot:
        try:
            return cls(execution, execution_row(execution, now))
        except Exception as exc:
            return cls(execution, (), exc)


#: One thing a group commit can hold and commit alone.
_Unit = _Pending | LogEntry | _Snapshot


class _CannotWrite(Exception):
    """The store cannot write right now; `left` is what did not commit, in order."""

    def __init__(self, cause: BaseException, left: list[_Unit]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.left = left


def is_transient(exc: BaseException) -> bool:
    """Errors that say the store cannot write (disk full, locked, I/O), not this item."""
    return isinstance(exc, sqlite3.OperationalError)


def _reason(exc: BaseException) -> str:
    text = valid_text(str(exc)) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


class ReadOnlyStoreError(FlowdeckError):
    """A change asked of a store opened read-only (beside the engine that owns the data dir)."""


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
        self._flush_waiters: list[_Waiter] = []
        #: Chatty tasks waiting for staged log lines to drain (released by any commit).
        self._room_waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        #: Set while the writer lets a batch gather; resolving it ends the wait early.
        self._gathering: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.read_only = False
        self._closed = False
        self._close_deadline: float | None = None
        #: Executions whose snapshot was poisoned: later snapshots of that object are dropped.
        self._poisoned: dict[str, Execution] = {}
        #: Markers that could not be written yet because the store could not write.
        self._markers: list[_Snapshot] = []
        self.commits = 0
        #: What the writer went through, for `health()`.
        self.poisoned_items = 0
        self.last_error: str | None = None
        self.last_error_at: str | None = None
        self.failing_since: str | None = None
        self._consecutive_failures = 0
        #: Called after each commit with (execution id, state, Kestra JSON) of every snapshot.
        self.on_execution_committed: Callable[[str, str, dict[str, Any]], None] | None = None
        #: Run inside every transaction that writes execution snapshots, on the writer thread.
        self.hooks: CommitHooks | None = None
        #: Called with (execution, reason) when a snapshot was replaced by a FAILED marker.
        self.on_execution_poisoned: Callable[[Execution, str], None] | None = None

    async def open(self, *, read_only: bool = False) -> None:
        """Open the writer, migrate and open the readers; `read_only` opens only the readers,
        on a database that must exist at this schema version, so it can be read while another
        process's engine owns it (WAL lets readers in beside its writer)."""
        if read_only:
            await self._open_read_only()
            return
        self._writer = await aiosqlite.connect(self.db_path, isolation_level=None)
        _owner_only(self.db_path)
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

    async def _open_read_only(self) -> None:
        uri = f"{self.db_path.resolve().as_uri()}?mode=ro"
        for _ in range(max(1, self._reader_count)):
            conn = await aiosqlite.connect(uri, uri=True, isolation_level=None)
            self._all_readers.append(conn)
            conn.row_factory = sqlite3.Row
            await conn.execute("PRAGMA busy_timeout=5000")
            await conn.execute("PRAGMA query_only=1")
            self._free_readers.append(conn)
        row = await self.fetchone("PRAGMA user_version")
        version = int(row[0]) if row else 0
        if version != SCHEMA_VERSION:
            await self.close()
            raise ReadOnlyStoreError(
                f"{self.db_path} has schema version {version}, not {SCHEMA_VERSION}; it can "
                "only be read once an engine has opened it (and migrated it)")
        self.read_only = True

    async def close(self, deadline_s: float = CLOSE_DEADLINE_S) -> None:
        """Commit what is staged and close, within about `deadline_s` (plus the time SQLite
        needs to give up a busy wait); what cannot be committed by then is reported lost."""
        loop = asyncio.get_running_loop()
        self._closing = True
        self._close_deadline = loop.time() + deadline_s
        self._hurry()
        self._wake.set()
        task = self._task
        if task is not None and not task.done():
            done, _ = await asyncio.wait({task}, timeout=deadline_s + 1.0)
            if not done:
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
        self._closed = True
        self._give_up("the store is closed")
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer._conn.interrupt()
        for conn in [*self._all_readers, *([self._writer] if self._writer else [])]:
            try:
                await asyncio.wait_for(conn.close(), timeout=5.0)
            except Exception as exc:  # a connection stuck in a busy wait, or already gone
                log.warning("flowdeck: closing a database connection failed: %s", _reason(exc))

    def _give_up(self, why: str) -> None:
        """Fail every caller still waiting and report what was never committed."""
        lost_snapshots = len(self._staged_executions)
        lost_lines = len(self._staged_logs)
        error = StorageUnavailable(why)
        for pending in self._ops:
            if not pending.future.done():
                pending.future.set_exception(error)
        for waiter in self._flush_waiters:
            if not waiter.future.done():
                waiter.future.set_exception(error)
        for room in self._room_waiters:
            _resolve(room)
        self._ops, self._flush_waiters, self._room_waiters = [], [], []
        self._staged_executions, self._staged_logs, self._callbacks = {}, [], []
        if lost_snapshots or lost_lines:
            log.error("flowdeck: %s before %d execution snapshot(s) and %d log line(s) could "
                      "be committed (last error: %s)", why, lost_snapshots, lost_lines,
                      self.last_error)

    # -- writing ----------------------------------------------------------------------------

    def stage_execution(self, execution: Execution) -> None:
        """Write this execution's current snapshot with the next commit (coalesced)."""
        if self._poisoned.get(execution.id) is execution:
            return  # its marker stands; this object cannot be written
        self._staged_executions[execution.id] = execution
        self._wake.set()

    def stage_logs(self, entries: Sequence[LogEntry]) -> None:
        self._staged_logs.extend(entries)
        self._wake.set()

    def log_backlogged(self, limit: int = LOG_BACKLOG) -> bool:
        """Whether `log_room` would wait now."""
        return len(self._staged_logs) > limit and not self._closed

    async def log_room(self, limit: int = LOG_BACKLOG) -> None:
        """Wait while more than `limit` log lines are waiting for a commit.

        Chatty tasks call this after each chunk they log, so a burst is held back in the
        pipe (the task's own write blocks) instead of piling up here: commits stay small and a
        line reaches followers within a couple of commits. While the store cannot write, the
        task waits here (killing it still works).
        """
        while len(self._staged_logs) > limit and not self._closed:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._room_waiters.append(future)
            self._hurry()
            self._wake.set()
            await future

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once everything staged so far has committed."""
        self._callbacks.append(callback)
        self._wake.set()

    async def run(self, op: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run `op` inside the next group commit; returns once that commit is durable."""
        return await self.submit(op)

    def submit(self, op: Callable[[aiosqlite.Connection], Awaitable[T]]) -> asyncio.Future[T]:
        """Queue `op` for the next group commit now; the future settles once it is durable."""
        self._check_alive()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._ops.append(_Pending(op, future))
        self._hurry()
        self._wake.set()
        return future

    async def flush(self) -> None:
        """Wait until everything staged before this call is committed (or replaced by a
        marker); `StorageUnavailable` if the store cannot write for a few tries."""
        self._check_alive()
        idle = not (self._staged_executions or self._staged_logs or self._ops
                    or self._callbacks)
        if idle and self._busy_batch is None:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flush_waiters.append(_Waiter(future))
        self._hurry()
        self._wake.set()
        await future

    def _hurry(self) -> None:
        """Someone waits for the next commit: stop letting the batch gather."""
        gathering = self._gathering
        if gathering is not None and not gathering.done():
            gathering.set_result(None)

    _busy_batch: object | None = None

    def _check_alive(self) -> None:
        if self.read_only:
            raise ReadOnlyStoreError(f"{self.db_path} is open read-only; nothing can change")
        if self._closed or (self._task is not None and self._task.done()):
            raise StorageUnavailable("the store is closed")

    def health(self) -> dict[str, Any]:
        """What the writer last went through (no I/O)."""
        return {
            "state": "FAILING" if self.failing_since is not None else "OK",
            "lastError": self.last_error,
            "lastErrorAt": self.last_error_at,
            "failingSince": self.failing_since,
            "poisonedItems": self.poisoned_items,
            "pendingSnapshots": len(self._staged_executions),
            "pendingLogLines": len(self._staged_logs),
            "commits": self.commits,
        }

    async def probe(self) -> None:
        """One real write (a row rewritten in its own group commit); raises if it fails."""
        now = format_instant(self.clock.now())

        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute("INSERT OR REPLACE INTO writer_probe(id, at) VALUES (1, ?)",
                               (now,))

        await self.run(op)

    async def probe_write(self, timeout: float) -> str | None:
        """None if a probe write commits within `timeout` seconds, else why not: what a
        health check asks of the store."""
        try:
            await asyncio.wait_for(self.probe(), timeout)
        except TimeoutError:
            return f"the store did not commit a write within {timeout:g} s"
        except Exception as exc:  # a failed disk, a closed store...
            return f"the store cannot write: {exc}"
        return None

    def _record_failure(self, exc: BaseException, *, transient: bool) -> None:
        now = format_instant(self.clock.now())
        self.last_error = _reason(exc)
        self.last_error_at = now
        if transient and self.failing_since is None:
            self.failing_since = now

    async def _write_loop(self) -> None:
        assert self._writer is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not (self._staged_executions or self._staged_logs or self._ops or self._markers
                    or self._callbacks or self._flush_waiters or self._room_waiters):
                if self._closing:
                    return
                continue
            if not (self._ops or self._flush_waiters or self._room_waiters or self._closing):
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
            rooms, self._room_waiters = self._room_waiters, []
            # Snapshot the executions now, with the logs just taken: the runner keeps mutating
            # them while the commit is in flight, and a state serialised later could become
            # visible a commit before the log lines that led to it (a FAILED execution whose
            # ERROR line is not stored yet).
            now = self.clock.now()
            snapshots = [_Snapshot.of(ex, now) for ex in executions.values()]
            # Log lines before the snapshots and operations first, as in one transaction: a
            # split batch still never shows a state before the lines that led to it.
            markers, self._markers = self._markers, []
            units: list[_Unit] = [*ops, *logs, *snapshots, *markers]
            self._busy_batch = object()
            try:
                await self._commit_units(units)
            except _CannotWrite as failure:
                self._busy_batch = None
                self._cannot_write(failure, callbacks, waiters, rooms)
                if self._closing and self._past_deadline():
                    self._give_up("the store could not write before it closed")
                    return
                await self._backoff()
                self._wake.set()
                continue
            self._busy_batch = None
            self.commits += 1
            self._consecutive_failures = 0
            self.failing_since = None
            for callback in callbacks:
                callback()
            for waiter in waiters:
                if not waiter.future.done():
                    waiter.future.set_result(None)
            for room in rooms:
                _resolve(room)

    def _past_deadline(self) -> bool:
        deadline = self._close_deadline
        return deadline is not None and asyncio.get_running_loop().time() >= deadline

    async def _backoff(self) -> None:
        delay = min(RETRY_CAP_S, RETRY_FIRST_S * 2 ** (self._consecutive_failures - 1))
        if self._close_deadline is not None:
            delay = min(delay, max(0.0, self._close_deadline
                                   - asyncio.get_running_loop().time()))
        await asyncio.sleep(delay)

    def _cannot_write(self, failure: _CannotWrite, callbacks: list[Callable[[], None]],
                      waiters: list[_Waiter], rooms: list[asyncio.Future[None]]) -> None:
        """Keep what did not commit for the next try; give callers up after a few tries."""
        self._consecutive_failures += 1
        self._record_failure(failure.cause, transient=True)
        error = StorageUnavailable(f"the database cannot take writes right now: "
                                   f"{_reason(failure.cause)}")
        ops: list[_Pending] = []
        logs: list[LogEntry] = []
        for unit in failure.left:
            if isinstance(unit, _Pending):
                unit.tries += 1
                if unit.tries >= MAX_TRIES:
                    if not unit.future.done():
                        unit.future.set_exception(error)
                else:
                    ops.append(unit)
            elif isinstance(unit, LogEntry):
                logs.append(unit)
            elif unit.marker:
                self._markers.append(unit)
            elif self._poisoned.get(unit.execution.id) is not unit.execution:
                # A newer snapshot staged meanwhile wins.
                self._staged_executions.setdefault(unit.execution.id, unit.execution)
        self._ops[:0] = ops
        self._staged_logs[:0] = logs
        self._callbacks[:0] = callbacks
        kept: list[_Waiter] = []
        for waiter in waiters:
            waiter.tries += 1
            if waiter.tries >= MAX_TRIES:
                if not waiter.future.done():
                    waiter.future.set_exception(error)
            else:
                kept.append(waiter)
        self._flush_waiters[:0] = kept
        self._room_waiters[:0] = rooms

    async def _commit_units(self, units: list[_Unit]) -> None:
        """Commit `units`, splitting a failed group until each poisoned unit is found.

        Raises `_CannotWrite` with what is left when the store itself cannot write.
        """
        broken: list[_Unit] = [u for u in units if isinstance(u, _Snapshot) and u.error]
        if broken:  # each on its own, after the rest
            units = [u for u in units if not (isinstance(u, _Snapshot) and u.error)]
        groups: deque[list[_Unit]] = deque([units])
        groups.extend([u] for u in broken)
        while groups:
            group = groups.popleft()
            try:
                await self._settle_group(group, groups)
            except _CannotWrite as failure:
                failure.left.extend(u for g in groups for u in g)
                raise

    async def _settle_group(self, group: list[_Unit], groups: deque[list[_Unit]]) -> None:
        """Commit one group, or split it onto the front of `groups`, or poison its one unit."""
        if not group:
            return
        head = group[0]
        if isinstance(head, _Snapshot) and head.error is not None:
            await self._poison(head, head.error)
            return
        try:
            await self._commit_group(group)
            return
        except Exception as exc:
            if is_transient(exc):
                raise _CannotWrite(exc, list(group)) from None
            failure: BaseException = exc
        if len(group) > 1:
            middle = len(group) // 2
            groups.appendleft(group[middle:])
            groups.appendleft(group[:middle])
            return
        # Alone, it failed once; once more, then ask whether the store writes at all.
        try:
            await self._commit_group(group)
            return
        except Exception as exc:
            failure = exc
        cannot = failure if is_transient(failure) else await self._probe_failure()
        if cannot is not None:
            raise _CannotWrite(cannot, list(group))
        await self._poison(head, failure)

    async def _probe_failure(self) -> BaseException | None:
        """None if a probe row can be written right now, else why not."""
        conn = self._writer
        assert conn is not None
        try:
            await conn._execute(  # type: ignore[no-untyped-call]
                _write_probe, conn, format_instant(self.clock.now()))
        except Exception as exc:
            return exc
        return None

    async def _commit_group(self, group: list[_Unit]) -> None:
        """One transaction for `group`; settles its operations and publishes its snapshots."""
        ops: list[_Pending] = []
        logs: list[LogEntry] = []
        snapshots: list[_Snapshot] = []
        for unit in group:
            if type(unit) is LogEntry:
                logs.append(unit)
            elif isinstance(unit, _Pending):
                ops.append(unit)
            else:
                assert isinstance(unit, _Snapshot)
                snapshots.append(unit)
        hooks = self.hooks
        try:
            results = await self._commit([s.row for s in snapshots], logs, ops)
        except BaseException:
            if hooks is not None:
                hooks.forget_marks()
            raise
        if hooks is not None:
            hooks.committed()
        for pending, (ok, value) in zip(ops, results, strict=True):
            if pending.future.done():
                continue
            if ok:
                pending.future.set_result(value)
            else:
                pending.future.set_exception(value)
        hook = self.on_execution_committed
        if hook is not None:
            for snapshot in snapshots:
                row = snapshot.row
                hook(row[0], row[4], row[10])

    async def _poison(self, unit: _Unit, exc: BaseException) -> None:
        """`unit` cannot be written: fail it, or write a marker in its place."""
        self.poisoned_items += 1
        self._record_failure(exc, transient=False)
        reason = _reason(exc)
        if isinstance(unit, _Pending):
            if not unit.future.done():
                unit.future.set_exception(exc)
            return
        if isinstance(unit, LogEntry):
            log.error("flowdeck: a log line of execution %s (#%d) could not be stored: %s",
                      unit.execution_id, unit.seq, reason)
            unit.message = (f"[flowdeck] this log line could not be stored ({reason}); "
                            "it was replaced by this note")
            if not await self._write_marker(unit):
                log.error("flowdeck: the marker line was refused too: line dropped")
            return
        ex = unit.execution
        if unit.marker:
            log.error("flowdeck: no marker could be stored for execution %s: %s", ex.id, reason)
            return
        log.error("flowdeck: the state of execution %s could not be stored: %s", ex.id, reason)
        self._poisoned[ex.id] = ex
        while len(self._poisoned) > POISON_MEMORY:
            del self._poisoned[next(iter(self._poisoned))]
        self._staged_executions.pop(ex.id, None)
        hook = self.on_execution_poisoned
        if hook is not None:
            hook(ex, reason)  # the engine logs why and stops the run
        for builder in (_full_marker, _bare_marker):
            try:
                row = builder(ex, self.clock.now())
            except Exception:
                continue
            if await self._write_marker(_Snapshot(ex, row, marker=True)):
                return
        log.error("flowdeck: no marker could be stored for execution %s", ex.id)

    async def _write_marker(self, unit: _Unit) -> bool:
        """Write a marker alone; False if it is refused too. If the store cannot write, the
        marker waits for the next commit like anything else."""
        try:
            await self._commit_group([unit])
        except Exception as exc:
            if is_transient(exc):
                raise _CannotWrite(exc, [unit]) from None
            return False
        return True

    async def _commit(self, rows: list[tuple[Any, ...]], logs: list[LogEntry],
                      ops: list[_Pending]) -> list[tuple[bool, Any]]:
        conn = self._writer
        assert conn is not None
        if conn.in_transaction:  # a failed ROLLBACK must not wedge every later BEGIN
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
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
                    if is_transient(exc) or not conn.in_transaction:
                        # The store cannot write (or SQLite already rolled the whole
                        # transaction back): the batch fails as a whole and is tried again.
                        raise
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


def _owner_only(db_path: Path) -> None:
    """The database (and its WAL files, which SQLite creates with the same mode) readable
    and writable by flowdeck's user only: it holds secret inputs and token hashes, and task
    processes running as another user must not reach it."""
    for path in (db_path, db_path.with_name(db_path.name + "-wal"),
                 db_path.with_name(db_path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path, 0o600)


UPDATE_EXECUTION = ("UPDATE executions SET state=?, start_date=?, end_date=?, labels=?, doc=? "
                    "WHERE id=?")
INSERT_LOG = ("INSERT OR IGNORE INTO logs(execution_id, seq, task_run_id, task_id, attempt, ts,"
              " level, message) VALUES (?,?,?,?,?,?,?,?)")


def _log_rows(logs: list[LogEntry]) -> list[tuple[Any, ...]]:
    return [(e.execution_id, e.seq, e.task_run_id, e.task_id, e.attempt_number, e.timestamp,
             e.level, e.message) for e in logs]


def _update_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [(*r[4:8], r[9], r[0]) for r in rows]


def _write_probe(writer: aiosqlite.Connection, at: str) -> None:
    db = writer._conn
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("INSERT OR REPLACE INTO writer_probe(id, at) VALUES (1, ?)", (at,))
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):
            db.execute("ROLLBACK")
        raise


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


def _failed_state(doc: dict[str, Any], now: Any) -> dict[str, Any]:
    """The state part of a marker: the histories so far, then FAILED now."""
    stamp = format_instant(now)
    state = dict(doc.get("state") or {})
    histories = [h for h in state.get("histories") or []
                 if isinstance(h, dict) and isinstance(h.get("state"), str)]
    histories.append({"state": "FAILED", "date": stamp})
    state.update(current="FAILED", histories=histories, endDate=stamp)
    return state


def _marker_row(ex: Execution, doc: dict[str, Any], now: Any) -> tuple[Any, ...]:
    text = dumps(doc)
    labels = {str(lbl.get("key")): str(lbl.get("value")) for lbl in doc.get("labels") or []
              if isinstance(lbl, dict)}
    start = (doc["state"].get("startDate") or format_instant(ex.state.start_date))
    return (ex.id, ex.namespace, ex.flow_id, ex.flow_revision, "FAILED", start,
            doc["state"]["endDate"], dumps(labels), ex.parent_id, text, doc)


def _full_marker(ex: Execution, now: Any) -> tuple[Any, ...]:
    """The snapshot with every text made valid, marked FAILED."""
    doc = valid_json(ex.to_dict(now))
    doc = dict(doc)
    doc["state"] = _failed_state(doc, now)
    return _marker_row(ex, doc, now)


def _bare_marker(ex: Execution, now: Any) -> tuple[Any, ...]:
    """Only what the engine itself wrote (ids, flow, states): the last resort."""
    histories = [{"state": h.state, "date": format_instant(h.date)}
                 for h in ex.state.histories if h.state in TERMINAL_STATES
                 or h.state.isascii()]
    doc: dict[str, Any] = {
        "id": ex.id, "namespace": valid_text(ex.namespace), "flowId": valid_text(ex.flow_id),
        "flowRevision": ex.flow_revision, "tenantId": "main", "labels": [],
        "state": {"histories": histories,
                  "startDate": format_instant(ex.state.start_date)},
        "originalId": ex.original_id or ex.id, "deleted": False,
        "metadata": {"attemptNumber": ex.attempt_number,
                     "originalCreatedDate": format_instant(ex.original_created
                                                           or ex.state.start_date)},
        "kind": "NORMAL",
    }
    doc["state"] = _failed_state(doc, now)
    doc["state"]["duration"] = "PT0S"
    return _marker_row(ex, doc, now)
