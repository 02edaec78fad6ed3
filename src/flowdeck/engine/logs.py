"""Execution logs: numbered, stored in batches, published once durable, followable without gaps.

Each execution's lines carry a sequence number that grows by one. A follower replays what is
stored after the number it last saw and then streams live lines, skipping any it already has,
so a reconnecting client gets neither a gap nor a duplicate. Stored lines are read in pages
(`REPLAY_PAGE` lines, keyed on the sequence number), so a follower of a long execution holds one
page at a time, and a reader that stops iterating stops the reading.

`search` answers the cross-execution log search (filters, sort, paging) and `delete` removes
stored lines; neither changes the numbering, so a line number is never handed out twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiosqlite

from flowdeck.core.errors import BadRequestError
from flowdeck.core.models import LEVEL_RANK, LOG_LEVELS, Execution, LogEntry, TaskRun
from flowdeck.core.sanitize import valid_text
from flowdeck.core.timefmt import format_instant
from flowdeck.engine.bus import LOGS, EventBus, LogBatch
from flowdeck.engine.secrets import Masker

if TYPE_CHECKING:
    from flowdeck.core.clock import Clock
    from flowdeck.engine.store import Store

LOG_COLUMNS = ("l.execution_id, l.seq, e.namespace, e.flow_id, l.task_id, l.task_run_id, "
               "l.attempt, l.ts, l.level, l.message")

#: Text fields a log query can filter on: (SQL column, LogEntry attribute).
LOG_TEXT_FIELDS: dict[str, tuple[str, str]] = {
    "namespace": ("e.namespace", "namespace"),
    "flowId": ("e.flow_id", "flow_id"),
    "executionId": ("l.execution_id", "execution_id"),
    "taskId": ("l.task_id", "task_id"),
    "taskRunId": ("l.task_run_id", "task_run_id"),
}
#: How each text operation compares (PREFIX is Kestra's namespace prefix: `a.b` or `a.b.*`).
LOG_TEXT_OPS = frozenset({"EQUALS", "NOT_EQUALS", "IN", "NOT_IN", "STARTS_WITH", "ENDS_WITH",
                          "CONTAINS", "NOT_CONTAINS", "PREFIX", "IS_NULL", "IS_NOT_NULL"})
LOG_SORT_COLUMNS: dict[str, str] = {
    "timestamp": "l.ts", "date": "l.ts", "level": "({rank})", "namespace": "e.namespace",
    "flowId": "e.flow_id", "executionId": "l.execution_id", "taskId": "l.task_id",
    "taskRunId": "l.task_run_id", "attemptNumber": "l.attempt", "sequence": "l.seq",
    "seq": "l.seq",
}
_LEVEL_RANK_SQL = "CASE l.level " + " ".join(
    f"WHEN '{name}' THEN {rank}" for name, rank in LEVEL_RANK.items()) + " ELSE -1 END"
MAX_LOG_PAGE = 10_000
#: Lines read from the store at a time when replaying or paging through an execution's logs.
REPLAY_PAGE = 1_000
#: Live batches a follower may have queued before it is marked lagged (and re-reads from the
#: store): a slow follower holds at most this many batches of lines.
FOLLOW_QUEUE = 64


def levels_from(op: str, value: str) -> set[str]:
    """The levels that `level <op> value` admits (`GREATER_THAN_OR_EQUAL_TO INFO` → INFO..ERROR)."""
    names = [v.strip().upper() for v in value.split(",") if v.strip()]
    for name in names:
        if name not in LEVEL_RANK:
            raise BadRequestError(f"unknown log level '{name}'; use one of "
                                  f"{', '.join(reversed(LOG_LEVELS))}")
    if not names:
        raise BadRequestError("a level filter needs a level, e.g. INFO")
    rank = LEVEL_RANK[names[0]]
    ranks = {LEVEL_RANK[n] for n in names}
    admitted: dict[str, set[int]] = {
        "GREATER_THAN_OR_EQUAL_TO": {r for r in LEVEL_RANK.values() if r >= rank},
        "GREATER_THAN": {r for r in LEVEL_RANK.values() if r > rank},
        "LESS_THAN_OR_EQUAL_TO": {r for r in LEVEL_RANK.values() if r <= rank},
        "LESS_THAN": {r for r in LEVEL_RANK.values() if r < rank},
        "EQUALS": {rank}, "IN": ranks,
        "NOT_EQUALS": set(LEVEL_RANK.values()) - {rank},
        "NOT_IN": set(LEVEL_RANK.values()) - ranks,
    }
    if op not in admitted:
        raise BadRequestError(f"cannot filter log levels with {op}")
    return {name for name, r in LEVEL_RANK.items() if r in admitted[op]}


@dataclass(slots=True)
class LogQuery:
    """Which log lines to read, across executions or within one; also usable as a predicate.

    `text` holds `(field, operation, value)` triples over `LOG_TEXT_FIELDS`. `levels` None means
    every level. A `trigger_id` never matches: every flowdeck log line belongs to an execution.
    """

    execution_id: str | None = None
    text: list[tuple[str, str, str]] = field(default_factory=list)
    attempt: int | None = None
    levels: set[str] | None = None
    start: datetime | None = None
    end: datetime | None = None
    q: str | None = None
    trigger_id: str | None = None
    after_seq: int | None = None
    page: int = 1
    size: int | None = None
    sort: list[tuple[str, bool]] = field(default_factory=lambda: [("timestamp", True)])

    def check(self) -> None:
        for name, op, _ in self.text:
            if name not in LOG_TEXT_FIELDS:
                raise BadRequestError(f"cannot filter logs by '{name}'")
            if op not in LOG_TEXT_OPS:
                raise BadRequestError(f"cannot filter logs by '{name}' with {op}")
        if self.page < 1:
            raise BadRequestError(f"page must be 1 or more, got {self.page}")
        if self.size is not None and not 1 <= self.size <= MAX_LOG_PAGE:
            raise BadRequestError(f"size must be between 1 and {MAX_LOG_PAGE}, got {self.size}")
        for name, _ in self.sort:
            if name not in LOG_SORT_COLUMNS:
                raise BadRequestError(f"cannot sort logs by '{name}'; use one of "
                                      f"{', '.join(sorted(LOG_SORT_COLUMNS))}")

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.trigger_id is not None:
            clauses.append("0")
        if self.execution_id is not None:
            clauses.append("l.execution_id = ?")
            params.append(self.execution_id)
        if self.after_seq is not None:
            clauses.append("l.seq > ?")
            params.append(self.after_seq)
        for name, op, value in self.text:
            column = LOG_TEXT_FIELDS[name][0]
            clause, args = _text_clause(column, op, value)
            clauses.append(clause)
            params.extend(args)
        if self.attempt is not None:
            clauses.append("l.attempt = ?")
            params.append(self.attempt)
        if self.levels is not None:
            if not self.levels:
                clauses.append("0")
            else:
                levels = sorted(self.levels)
                clauses.append(f"l.level IN ({','.join('?' * len(levels))})")
                params.extend(levels)
        if self.start is not None:
            clauses.append("l.ts >= ?")
            params.append(format_instant(self.start))
        if self.end is not None:
            clauses.append("l.ts <= ?")
            params.append(format_instant(self.end))
        if self.q:
            escaped = self.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            clauses.append("l.message LIKE ? ESCAPE '\\'")
            params.append(f"%{escaped}%")
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def order_by(self) -> str:
        parts = []
        for name, desc in self.sort:
            column = LOG_SORT_COLUMNS[name].format(rank=_LEVEL_RANK_SQL)
            parts.append(f"{column} {'DESC' if desc else 'ASC'}")
        tail = "DESC" if self.sort and self.sort[0][1] else "ASC"
        # Lines of one batch share a timestamp: keep them in emission order.
        parts.extend([f"l.ts {tail}", f"l.execution_id {tail}", f"l.seq {tail}"])
        return " ORDER BY " + ", ".join(parts)

    def matches(self, entry: LogEntry) -> bool:
        """The same filters applied to one line in memory (for live streams)."""
        if self.trigger_id is not None:
            return False
        if self.execution_id is not None and entry.execution_id != self.execution_id:
            return False
        if self.after_seq is not None and entry.seq <= self.after_seq:
            return False
        for name, op, value in self.text:
            if not _text_matches(getattr(entry, LOG_TEXT_FIELDS[name][1]), op, value):
                return False
        if self.attempt is not None and entry.attempt_number != self.attempt:
            return False
        if self.levels is not None and entry.level not in self.levels:
            return False
        if self.start is not None and entry.timestamp < format_instant(self.start):
            return False
        if self.end is not None and entry.timestamp > format_instant(self.end):
            return False
        return not self.q or self.q.lower() in entry.message.lower()


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _text_clause(column: str, op: str, value: str) -> tuple[str, list[Any]]:
    if op == "EQUALS":
        return f"{column} = ?", [value]
    if op == "NOT_EQUALS":
        return f"({column} IS NULL OR {column} != ?)", [value]
    if op in ("IN", "NOT_IN"):
        values = _split(value)
        if not values:
            return ("0" if op == "IN" else "1"), []
        marks = ",".join("?" * len(values))
        if op == "IN":
            return f"{column} IN ({marks})", values
        return f"({column} IS NULL OR {column} NOT IN ({marks}))", values
    if op == "STARTS_WITH":
        return f"substr({column}, 1, ?) = ?", [len(value), value]
    if op == "ENDS_WITH":
        return f"({column} IS NOT NULL AND substr({column}, -?) = ?)", [len(value), value]
    if op == "CONTAINS":
        return f"instr({column}, ?) > 0", [value]
    if op == "NOT_CONTAINS":
        return f"({column} IS NULL OR instr({column}, ?) = 0)", [value]
    if op == "PREFIX":
        return (f"({column} = ? OR substr({column}, 1, ?) = ?)",
                [value, len(value) + 1, value + "."])
    if op == "IS_NULL":
        return f"{column} IS NULL", []
    return f"{column} IS NOT NULL", []  # IS_NOT_NULL


def _text_matches(actual: str | None, op: str, value: str) -> bool:
    if op == "IS_NULL":
        return actual is None
    if op == "IS_NOT_NULL":
        return actual is not None
    if op in ("NOT_EQUALS", "NOT_IN", "NOT_CONTAINS") and actual is None:
        return True
    if actual is None:
        return False
    return {
        "EQUALS": lambda: actual == value,
        "NOT_EQUALS": lambda: actual != value,
        "IN": lambda: actual in _split(value),
        "NOT_IN": lambda: actual not in _split(value),
        "STARTS_WITH": lambda: actual.startswith(value),
        "ENDS_WITH": lambda: actual.endswith(value),
        "CONTAINS": lambda: value in actual,
        "NOT_CONTAINS": lambda: value not in actual,
        "PREFIX": lambda: actual == value or actual.startswith(value + "."),
    }[op]()


class LogService:
    def __init__(self, store: Store, bus: EventBus, clock: Clock) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self._next_seq: dict[str, int] = {}
        #: Executions with SECRET inputs: their values are masked in every line.
        self._maskers: dict[str, Masker] = {}
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
        self._maskers.pop(execution_id, None)

    def mask(self, execution_id: str, masker: Masker) -> None:
        """Mask these values in every later line of this execution."""
        if masker:
            self._maskers[execution_id] = masker
        else:
            self._maskers.pop(execution_id, None)

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
        masker = self._maskers.get(ex_id)
        if masker is not None:
            lines = [masker.text(line) for line in lines]
        entries = []
        for line in lines:
            seq += 1
            entries.append(LogEntry(ex_id, seq, ns, flow_id, task_id, task_run_id, attempt,
                                    timestamp, level, valid_text(line)))
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
            allowed = [lv for lv, rank in LEVEL_RANK.items()
                       if rank >= LEVEL_RANK[min_level.upper()]]
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

    async def pages(self, execution_id: str, *, after_seq: int = 0,
                    page_size: int = REPLAY_PAGE, min_level: str | None = None,
                    task_run_id: str | None = None, task_id: str | None = None,
                    attempt: int | None = None, query: LogQuery | None = None
                    ) -> AsyncIterator[list[LogEntry]]:
        """Every stored line after `after_seq` (with the filters, or those of `query`), one
        page at a time, in sequence order. Nothing is read ahead: a consumer that stops stops
        the reading."""
        if page_size < 1:
            raise BadRequestError(f"page size must be 1 or more, got {page_size}")
        last = after_seq
        while True:
            if query is not None:
                query.execution_id, query.after_seq, query.size = execution_id, last, page_size
                query.page, query.sort = 1, [("sequence", False)]
                page, _ = await self.search(query, with_total=False)
            else:
                page = await self.fetch(execution_id, after_seq=last, min_level=min_level,
                                        task_run_id=task_run_id, task_id=task_id,
                                        attempt=attempt, limit=page_size)
            if not page:
                return
            last = page[-1].seq
            yield page
            if len(page) < page_size:
                return

    async def follow(self, execution_id: str, *, after_seq: int = 0,
                     min_level: str | None = None, heartbeat: float | None = None
                     ) -> AsyncIterator[LogEntry | None]:
        """Stored lines after `after_seq`, then live ones; yields None as a keepalive tick."""
        threshold = LEVEL_RANK.get((min_level or "TRACE").upper(), 0)
        sub = self.bus.subscribe(LOGS, execution_id=execution_id, maxsize=FOLLOW_QUEUE)
        last = after_seq
        try:
            while True:
                # Anything queued so far is also in the store: forget it, then read the store.
                # A lag flagged from here on (a slow consumer) sends us back to this point.
                sub.lagged = False
                while not sub.queue.empty():
                    sub.queue.get_nowait()
                while True:  # the stored lines, a page at a time (every level: `last` counts)
                    page = await self.fetch(execution_id, after_seq=last, limit=REPLAY_PAGE)
                    for entry in page:
                        last = entry.seq
                        if LEVEL_RANK.get(entry.level, 0) >= threshold:
                            yield entry
                    if len(page) < REPLAY_PAGE:
                        break
                    del page
                    if sub.lagged:  # what queued meanwhile is stored too: drop it
                        sub.lagged = False
                        while not sub.queue.empty():
                            sub.queue.get_nowait()
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
        finally:
            sub.close()

    async def search(self, query: LogQuery, *, with_total: bool = True
                     ) -> tuple[list[LogEntry], int]:
        """Lines matching `query`: one page of them (every one when `size` is None), and the
        number of all matches (the page's length when `with_total` is false)."""
        query.check()
        where, params = query.where()
        base = "FROM logs l JOIN executions e ON e.id = l.execution_id" + where
        rows_sql = f"SELECT {LOG_COLUMNS} {base}{query.order_by()}"
        if query.size is not None:
            rows_sql += " LIMIT ? OFFSET ?"
            params = [*params, query.size, (query.page - 1) * query.size]
        rows = await self.store.fetchall(rows_sql, params)
        entries = [LogEntry(*tuple(r)) for r in rows]
        if query.size is None or not with_total:
            return entries, len(entries)
        count = await self.store.fetchone(f"SELECT COUNT(*) {base}", params[:-2])
        return entries, int(count[0]) if count else 0

    async def delete(self, execution_id: str, query: LogQuery | None = None) -> int:
        """Delete an execution's stored lines (those matching `query`); returns how many.

        Numbering is unaffected: a later restart of the execution in this process continues
        after the highest number handed out, so a follower's `Last-Event-ID` stays valid.
        """
        query = query or LogQuery()
        query.execution_id = execution_id
        query.check()
        where, params = query.where()
        select = ("SELECT l.execution_id, l.seq FROM logs l "
                  f"JOIN executions e ON e.id = l.execution_id{where}")

        async def op(conn: aiosqlite.Connection) -> tuple[int, int]:
            cursor = await conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM logs WHERE execution_id = ?", (execution_id,))
            row = await cursor.fetchone()
            await cursor.close()
            cursor = await conn.execute(
                f"DELETE FROM logs WHERE (execution_id, seq) IN ({select})", params)
            deleted = cursor.rowcount
            await cursor.close()
            return (int(row[0]) if row else 0), deleted

        highest, deleted = await self.store.run(op)
        if deleted and highest > self._next_seq.get(execution_id, 0):
            self._next_seq[execution_id] = highest
        return deleted
