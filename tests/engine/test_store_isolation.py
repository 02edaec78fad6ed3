"""The store writer isolates what cannot be written, instead of retrying it forever.

A poisoned item (a lone surrogate that slipped past sanitising, a row a trigger refuses) is
found by splitting the failed group commit; everything else commits. A log line that cannot be
written becomes a marker line, an execution snapshot a FAILED marker with a log line saying
why, a failing operation fails only its own caller. Transient failures (a full disk) keep the
data and retry; the health report says so; closing always ends within 10 s.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from flowdeck.core.errors import StorageUnavailable
from flowdeck.core.models import LogEntry
from flowdeck.engine.engine import Engine
from flowdeck.engine.keys import TokenStore
from helpers import apply, open_engine, run_flow, wait_for_state

SLOW = """
    id: slow
    namespace: t.store
    tasks:
      - id: first
        type: io.kestra.plugin.core.log.Log
        message: started
      - id: hold
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT60S
      - id: never
        type: io.kestra.plugin.core.log.Log
        message: should not run
    """
QUICK = """
    id: quick
    namespace: t.store
    tasks:
      - id: say
        type: io.kestra.plugin.core.log.Log
        message: "{{ inputs.text ?? 'hello' }}"
    """


def line(execution_id: str, seq: int, message: str) -> LogEntry:
    return LogEntry(execution_id, seq, "t.store", "quick", None, None, None,
                    "2026-01-01T00:00:00.000Z", "INFO", message)


async def everything_else_still_commits(engine: Engine) -> None:
    """Other flows, KV and token bookkeeping still commit (each within a few seconds)."""
    async with asyncio.timeout(15):
        done = await run_flow(engine, "t.store", "quick", timeout=10)
        assert done.state.current == "SUCCESS"
        await engine.kv.put("t.store", "k", 42)
        assert (await engine.kv.get("t.store", "k")).value == 42
        tokens = TokenStore(engine.store, engine.clock)
        token, secret = await tokens.create("viewer", "probe")
        assert (await tokens.authenticate(secret)) is not None
        await tokens.revoke(token.id)


async def test_a_lone_surrogate_in_a_log_line_becomes_a_marker_line(engine: Engine) -> None:
    await apply(engine, QUICK)
    done = await run_flow(engine, "t.store", "quick")
    stored = await engine.logs.fetch(done.id)
    # Injected past every sanitiser, next to good lines of the same batch.
    engine.store.stage_logs([line(done.id, 2, "good before"), line(done.id, 3, "bad \ud800"),
                             line(done.id, 4, "good after")])
    async with asyncio.timeout(10):
        await engine.store.flush()
    lines = await engine.logs.fetch(done.id)
    assert [e.seq for e in lines] == [stored[0].seq, 2, 3, 4]
    assert lines[1].message == "good before" and lines[3].message == "good after"
    assert lines[2].message.startswith("[flowdeck] this log line could not be stored")
    assert "surrogates not allowed" in lines[2].message
    health = await engine.storage_health()
    assert health["status"] == "UP"
    assert health["writer"]["poisonedItems"] == 1
    await everything_else_still_commits(engine)


async def test_a_snapshot_that_cannot_be_written_fails_its_execution(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path / "data")
    try:
        await apply(engine, SLOW)
        await apply(engine, QUICK)
        execution = await engine.create_execution("t.store", "slow")
        await wait_for_state(engine, execution.id, "RUNNING")
        runner = engine._launcher.runner(execution.id)
        assert runner is not None
        runner.execution.labels.append(("poison", "\udfff"))  # slipped past sanitising
        engine.store.stage_execution(runner.execution)
        async with asyncio.timeout(10):
            final = await engine.wait_until_terminal(execution.id)
        assert final.state.current == "FAILED"
        assert ("poison", "\ufffd") in final.labels  # the marker keeps what it can, cleaned
        errors = [e.message for e in await engine.logs.fetch(execution.id)
                  if e.level == "ERROR"]
        assert any("could not store the state" in m and "marked FAILED" in m
                   for m in errors), errors
        assert "should not run" not in [e.message for e in await engine.logs.fetch(execution.id)]
        await everything_else_still_commits(engine)
    finally:
        async with asyncio.timeout(10):
            await engine.close()
    # A restart does not run it again, and nothing is blocked.
    engine = await open_engine(tmp_path / "data")
    try:
        assert (await engine.get_execution(execution.id)).state.current == "FAILED"
        assert not engine.is_running(execution.id)
        await everything_else_still_commits(engine)
    finally:
        async with asyncio.timeout(10):
            await engine.close()


def add_triggers(db: Path) -> None:
    """Real SQLite triggers that refuse particular rows (not the writer's own doing)."""
    conn = sqlite3.connect(db)
    try:
        conn.executescript("""
            CREATE TRIGGER refuse_log BEFORE INSERT ON logs
              WHEN NEW.message LIKE '%refuse-me%'
              BEGIN SELECT RAISE(ABORT, 'this line is refused'); END;
            CREATE TRIGGER refuse_state BEFORE UPDATE ON executions
              WHEN NEW.doc LIKE '%refuse-state%'
              BEGIN SELECT RAISE(ABORT, 'this state is refused'); END;
            CREATE TRIGGER refuse_kv BEFORE INSERT ON kv
              WHEN NEW.key = 'refused'
              BEGIN SELECT RAISE(ABORT, 'this key is refused'); END;
        """)
    finally:
        conn.close()


async def test_rows_a_trigger_refuses_are_isolated(engine: Engine) -> None:
    await apply(engine, QUICK)
    await apply(engine, """
        id: mixed
        namespace: t.store
        labels:
          note: refuse-state
        tasks:
          - id: lines
            type: io.kestra.plugin.core.log.Log
            message: ["one", "refuse-me please", "three"]
        """)
    add_triggers(engine.store.db_path)
    others = [await engine.create_execution("t.store", "quick", inputs={"text": f"other {i}"})
              for i in range(5)]
    mixed = await engine.create_execution("t.store", "mixed")
    async with asyncio.timeout(15):
        final = await engine.wait_until_terminal(mixed.id)
        for other in others:
            assert (await engine.wait_until_terminal(other.id)).state.current == "SUCCESS"
    # The trigger refuses every snapshot of this execution, the marker's too (it carries the
    # label): the last resort is a bare marker without the refused fields.
    assert final.state.current == "FAILED"
    assert final.labels == []
    messages = [e.message for e in await engine.logs.fetch(mixed.id)]
    assert "one" in messages and "three" in messages
    assert "refuse-me please" not in messages
    assert any(m.startswith("[flowdeck] this log line could not be stored") for m in messages)
    # A refused operation fails only its own caller.
    with pytest.raises(sqlite3.IntegrityError, match="this key is refused"):
        await engine.kv.put("t.store", "refused", 1)
    await everything_else_still_commits(engine)


async def fill_the_disk(engine: Engine) -> None:
    """A real SQLITE_FULL: the writer's database may not grow by one more page."""
    assert engine.store._writer is not None
    await engine.store.flush()
    pages = await engine.store._writer.execute_fetchall("PRAGMA page_count")
    await engine.store._writer.execute(f"PRAGMA max_page_count = {next(iter(pages))[0]}")


async def free_the_disk(engine: Engine) -> None:
    assert engine.store._writer is not None
    await engine.store._writer.execute("PRAGMA max_page_count = 1073741823")


async def test_a_full_disk_keeps_the_data_and_reports_it(engine: Engine) -> None:
    await apply(engine, QUICK)
    done = await run_flow(engine, "t.store", "quick")
    await fill_the_disk(engine)
    big = [line(done.id, seq, f"{seq} " + "x" * 2000) for seq in range(2, 202)]
    engine.store.stage_logs(big)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="database or disk is full"):
        await engine.kv.put("t.store", "during", "x" * 20_000)
    assert time.monotonic() - started < 5  # an operation fails in bounded time
    with pytest.raises(StorageUnavailable):
        async with asyncio.timeout(10):
            await engine.store.flush()
    health = await engine.storage_health()
    assert health["status"] == "DOWN"
    assert health["canWrite"] is False
    assert "database or disk is full" in health["writer"]["lastError"]
    assert health["writer"]["pendingLogLines"] == 200
    assert health["writer"]["poisonedItems"] == 0  # a full disk poisons nothing
    await free_the_disk(engine)
    async with asyncio.timeout(10):
        while True:  # the writer retries on its own, with backoff
            try:
                await engine.store.flush()
                break
            except StorageUnavailable:
                await asyncio.sleep(0.05)
    lines = await engine.logs.fetch(done.id)
    assert [e.seq for e in lines][1:] == list(range(2, 202))  # nothing was dropped
    health = await engine.storage_health()
    assert health["status"] == "UP" and health["canWrite"] is True
    assert health["writer"]["lastError"] is not None  # the past failure is still reported
    assert health["writer"]["failingSince"] is None
    await everything_else_still_commits(engine)


async def test_close_ends_within_ten_seconds_while_the_writer_fails(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path / "data")
    await apply(engine, SLOW)
    execution = await engine.create_execution("t.store", "slow")
    await wait_for_state(engine, execution.id, "RUNNING")
    await fill_the_disk(engine)
    engine.store.stage_logs([line(execution.id, 1000 + i, "y" * 5000) for i in range(50)])
    started = time.monotonic()
    await asyncio.wait_for(engine.close(), 10)
    assert time.monotonic() - started < 10
    # The database is still usable by the next engine.
    engine = await open_engine(tmp_path / "data")
    try:
        await engine.kv.put("t.store", "after", 1)
    finally:
        await engine.close()


async def test_a_read_only_engine_reports_its_health_without_a_probe_write(
        tmp_path: Path) -> None:
    owner = await open_engine(tmp_path / "data")
    try:
        reader = await Engine.open(owner.settings, read_only=True)
        try:
            health = await reader.storage_health()
            assert (health["status"], health["canWrite"], health["readOnly"]) == (
                "UP", False, True)
        finally:
            await reader.close()
        assert (await owner.storage_health())["canWrite"] is True
    finally:
        await owner.close()
