"""Closing the store commits what is queued and stops, even when it is queued while a commit
is in flight (the writer is woken once by close; it must not then wait forever)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite

from flowdeck.core.clock import SystemClock
from flowdeck.engine.store import Store


async def test_close_during_a_commit_drains_the_queue_and_returns(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite", SystemClock())
    await store.open()
    inside, release = asyncio.Event(), asyncio.Event()

    async def slow(conn: aiosqlite.Connection) -> None:
        await conn.execute("CREATE TABLE t (n INTEGER)")
        inside.set()
        await release.wait()  # the writer is inside this commit

    async def later(conn: aiosqlite.Connection) -> None:
        await conn.execute("INSERT INTO t VALUES (1)")

    first = asyncio.create_task(store.run(slow))
    await inside.wait()
    second = asyncio.create_task(store.run(later))  # queued behind the commit in flight
    await asyncio.sleep(0)
    closing = asyncio.create_task(store.close())
    await asyncio.sleep(0)
    release.set()
    async with asyncio.timeout(10):
        await asyncio.gather(first, second, closing)
    check = Store(tmp_path / "db.sqlite", SystemClock())
    await check.open()
    try:
        assert [tuple(r) for r in await check.fetchall("SELECT n FROM t")] == [(1,)]
    finally:
        await check.close()
