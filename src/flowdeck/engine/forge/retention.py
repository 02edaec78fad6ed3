"""Run history retention: runs that ended more than `[forge] run_retention` ago (default 90
days) are deleted with their log lines and worker reports, in bounded batches (one short
transaction each), by a loop the forge starts with the engine (every `retention_interval`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

import aiosqlite

from flowdeck.core.states import TERMINAL_STATES
from flowdeck.core.timefmt import format_instant
from flowdeck.engine.forge.settings import ForgeSettings

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine

log = logging.getLogger("flowdeck.engine.forge")
BATCH = 200
#: Executions of pipeline flows: namespaces from `pipelines.` up to (not including) `pipelines/`.
PIPELINES = "namespace >= 'pipelines.' AND namespace < 'pipelines/'"


class RunRetention:
    def __init__(self, engine: Engine, settings: ForgeSettings) -> None:
        self.engine = engine
        self.settings = settings

    async def purge(self, now: datetime | None = None, batch: int = BATCH) -> int:
        """Delete runs that ended before `now - run_retention`; returns how many."""
        cutoff = format_instant((now or self.engine.clock.now()) - self.settings.run_retention)
        states = sorted(TERMINAL_STATES)
        purged = 0
        while True:
            rows = await self.engine.store.fetchall(
                f"SELECT id FROM executions WHERE {PIPELINES} AND end_date IS NOT NULL AND "
                f"end_date < ? AND state IN ({','.join('?' * len(states))}) LIMIT ?",
                [cutoff, *states, batch])
            ids = [r[0] for r in rows if not self.engine.is_running(r[0])]
            if not ids:
                return purged
            await self.engine.store.run(_deleter(ids))
            purged += len(ids)
            if len(rows) < batch:
                return purged
            await asyncio.sleep(0)  # let other work in between batches

    async def run_forever(self) -> None:
        interval = self.settings.retention_interval.total_seconds()
        while True:
            try:
                purged = await self.purge()
                if purged:
                    log.info("deleted %d pipeline run(s) older than the retention", purged)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a busy or closing store: try again next time
                log.warning("pipeline run retention: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(interval)


def _deleter(ids: list[str]) -> Callable[[aiosqlite.Connection], Awaitable[None]]:
    marks = ",".join("?" * len(ids))

    async def op(conn: aiosqlite.Connection) -> None:
        await conn.execute(f"DELETE FROM logs WHERE execution_id IN ({marks})", ids)
        await conn.execute(f"DELETE FROM forge_nodes WHERE run_id IN ({marks})", ids)
        await conn.execute(f"DELETE FROM executions WHERE id IN ({marks})", ids)

    return op
