"""Execution logs: numbered, stored in batches, published once durable, followable without gaps.

Each execution's lines carry a sequence number that grows by one. A follower replays what is
stored after the number it last saw and then streams live lines, skipping any it already has,
so a reconnecting client gets neither a gap nor a duplicate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from flowdeck.core.models import LEVEL_RANK, Execution, LogEntry, TaskRun
from flowdeck.core.timefmt import format_instant
from flowdeck.engine.bus import LOGS, EventBus, LogBatch

if TYPE_CHECKING:
    from flowdeck.core.clock import Clock
    from flowdeck.engine.store import Store

LOG_COLUMNS = ("l.execution_id, l.seq, e.namespace, e.flow_id, l.task_id, l.task_run_id, "
               "l.attempt, l.ts, l.level, l.message")


class LogService:
    def __init__(self, store: Store, bus: EventBus, clock: Clock) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self._next_seq: dict[str, int] = {}
        self.lines_written = 0

    async def prime(self, execution_id: str) -> None:
        """Continue numbering after what is stored (recovery, restart)."""
        row = await self.store.fetchone(
            "SELECT COALESCE(MAX(seq), 0) FROM logs WHERE execution_id = ?", (execution_id,))
        stored = int(row[0]) if row else 0
        self._next_seq[execution_id] = max(self._next_seq.get(execution_id, 0), stored)

    def start_fresh(self, execution_id: str) -> None:
        self._next_seq.setdefault(execution_id, 0)

    def forget(self, execution_id: str) -> None:
        self._next_seq.pop(execution_id, None)

    def emit(self, execution: Execution, task_run: TaskRun | None, level: str,
             lines: list[str]) -> None:
        if not lines:
            return
        seq = self._next_seq.get(execution.id, 0)
        timestamp = format_instant(self.clock.now())
        task_id = task_run.task_id if task_run else None
        task_run_id = task_run.id if task_run else None
        attempt = (len(task_run.attempts) - 1) if task_run and task_run.attempts else None
        ns, flow_id, ex_id = execution.namespace, execution.flow_id, execution.id
        entries = []
        for line in lines:
            seq += 1
            entries.append(LogEntry(ex_id, seq, ns, flow_id, task_id, task_run_id, attempt,
                                    timestamp, level, line))
        self._next_seq[ex_id] = seq
        self.lines_written += len(entries)
        self.store.stage_logs(entries)
        batch = LogBatch(ex_id, entries)
        self.store.after_commit(lambda: self.bus.publish(LOGS, batch, execution_id=ex_id))

    async def fetch(self, execution_id: str, *, after_seq: int = 0, min_level: str | None = None,
                    task_run_id: str | None = None, task_id: str | None = None,
                    attempt: int | None = None, limit: int | None = None) -> list[LogEntry]:
        sql = (f"SELECT {LOG_COLUMNS} FROM logs l JOIN executions e ON e.id = l.execution_id "
               "WHERE l.execution_id = ? AND l.seq > ?")
        params: list[object] = [execution_id, after_seq]
        if min_level is not None and min_level.upper() in LEVEL_RANK:
            allowed = [lv for lv, rank in LEVEL_RANK.items() if rank >= LEVEL_RANK[min_level.upper()]]
            sql += f" AND l.level IN ({','.join('?' * len(allowed))})"
            params.extend(allowed)
        if task_run_id is not None:
            sql += " AND l.task_run_id = ?"
            params.append(task_run_id)
        if task_id is not None:
            sql += " AND l.task_id = ?"
            params.append(task_id)
        if attempt is not None:
            sql += " AND l.attempt = ?"
            params.append(attempt)
        sql += " ORDER BY l.seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = await self.store.fetchall(sql, params)
        return [LogEntry(*tuple(r)) for r in rows]

    async def follow(self, execution_id: str, *, after_seq: int = 0,
                     min_level: str | None = None, heartbeat: float | None = None
                     ) -> AsyncIterator[LogEntry | None]:
        """Stored lines after `after_seq`, then live ones; yields None as a keepalive tick."""
        threshold = LEVEL_RANK.get((min_level or "TRACE").upper(), 0)
        sub = self.bus.subscribe(LOGS, execution_id=execution_id)
        last = after_seq
        try:
            while True:
                for entry in await self.fetch(execution_id, after_seq=last):
                    last = entry.seq
                    if LEVEL_RANK.get(entry.level, 0) >= threshold:
                        yield entry
                sub.lagged = False
                while not sub.lagged:
                    try:
                        batch: LogBatch = await sub.get(heartbeat)
                    except TimeoutError:
                        yield None
                        continue
                    for entry in batch.entries:
                        if entry.seq <= last:
                            continue
                        if entry.seq != last + 1:
                            break  # a gap: re-read from the store
                        last = entry.seq
                        if LEVEL_RANK.get(entry.level, 0) >= threshold:
                            yield entry
                    else:
                        continue
                    break
                while not sub.queue.empty():
                    sub.queue.get_nowait()
        finally:
            sub.close()

