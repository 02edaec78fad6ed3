"""Stored logs are replayed and read in pages: bounded memory, in order, no gap, no duplicate."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiosqlite
import pytest

from flowdeck.core.errors import NotFoundError
from flowdeck.core.models import LogEntry
from flowdeck.engine.engine import Engine
from helpers import apply, run_flow

LINES = 200_000
#: What one follower or one paged read may hold at once. Loading the 200,000 lines at once
#: takes well over 100 MB; a page of 1,000 lines a few hundred KB.
BUDGET = 16 * 1024 * 1024

FLOW = """
    id: talky
    namespace: t.pages
    tasks:
      - id: say
        type: io.kestra.plugin.core.log.Log
        message: first
    """


async def execution_with_lines(engine: Engine, count: int = LINES) -> str:
    """A finished execution with `count` stored lines after its own one (seq 2..count+1)."""
    await apply(engine, FLOW)
    done = await run_flow(engine, "t.pages", "talky")
    def rows() -> Iterator[tuple[object, ...]]:
        for seq in range(2, count + 2):
            yield (done.id, seq, None, "say", 0, "2026-01-01T00:00:00.000Z",
                   "WARN" if seq % 10 == 0 else "INFO", f"line {seq} " + "x" * 60)

    async def op(conn: aiosqlite.Connection) -> None:
        await conn.executemany(
            "INSERT INTO logs(execution_id, seq, task_run_id, task_id, attempt, ts, level,"
            " message) VALUES (?,?,?,?,?,?,?,?)", rows())

    await engine.store.run(op)
    await engine.logs.prime(done.id)
    return done.id


async def peak_while(consume: Any) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        await consume()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


async def test_a_follower_replays_in_pages_then_streams_without_gap(engine: Engine) -> None:
    execution_id = await execution_with_lines(engine)
    execution = await engine.get_execution(execution_id)
    seqs: list[int] = []
    stream: AsyncIterator[LogEntry | None] = engine.follow_logs(execution_id, heartbeat=5)

    async def consume() -> None:
        async for entry in stream:
            assert entry is not None, "no line for 5 s"
            seqs.append(entry.seq)
            if entry.seq == 100_000:
                # Lines logged while the replay is half way: they come once, in order.
                engine.logs.emit(execution, None, "INFO", ["live 1", "live 2"])
            if len(seqs) == LINES + 3:
                break

    peak = await asyncio.wait_for(peak_while(consume), 120)
    assert seqs == list(range(1, LINES + 4))
    assert peak < BUDGET, f"a follower held {peak / 1e6:.1f} MB"
    await stream.aclose()  # type: ignore[attr-defined]


async def test_a_follower_with_a_level_filter_sees_only_those_lines(engine: Engine) -> None:
    execution_id = await execution_with_lines(engine, 5_000)
    got: list[int] = []
    async for entry in engine.follow_logs(execution_id, after_seq=100, min_level="WARN",
                                          heartbeat=0.2):
        if entry is None:
            break
        got.append(entry.seq)
    assert got == list(range(110, 5_002, 10))


async def test_paged_read_of_all_logs_is_bounded_and_complete(engine: Engine) -> None:
    execution_id = await execution_with_lines(engine)
    seqs: list[int] = []
    sizes: list[int] = []

    async def consume() -> None:
        async for page in engine.log_pages(execution_id):
            sizes.append(len(page))
            seqs.extend(e.seq for e in page)
            del page

    peak = await peak_while(consume)
    assert seqs == list(range(1, LINES + 2))
    assert max(sizes) == 1_000 and len(sizes) == 201
    assert peak < BUDGET, f"a paged read held {peak / 1e6:.1f} MB"
    filtered = [e.seq async for page in engine.log_pages(execution_id, min_level="WARN",
                                                         after_seq=199_000, page_size=7)
                for e in page]
    assert filtered == list(range(199_010, LINES + 2, 10))


async def test_a_paged_read_stops_when_its_reader_stops(engine: Engine) -> None:
    execution_id = await execution_with_lines(engine, 10_000)
    readers = len(engine.store._free_readers)
    pages = engine.log_pages(execution_id, page_size=100)
    got = [await anext(pages), await anext(pages)]
    assert [p[0].seq for p in got] == [1, 101]
    await pages.aclose()  # type: ignore[attr-defined]
    assert len(engine.store._free_readers) == readers  # nothing held once closed
    with pytest.raises(StopAsyncIteration):
        await anext(pages)
    with pytest.raises(NotFoundError):
        await anext(engine.log_pages("no-such-execution"))
