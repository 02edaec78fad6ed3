"""Durability: SIGKILL mid-run loses no acknowledged execution and leaves none RUNNING."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowdeck.core.errors import EngineLockedError
from flowdeck.core.states import TERMINAL_STATES
from helpers import open_engine

CHILD = Path(__file__).with_name("crash_child.py")


def run_until_killed(data_dir: Path, min_acks: int, rng: random.Random) -> list[str]:
    """Start the child engine, let it acknowledge some executions, then SIGKILL it."""
    proc = subprocess.Popen([sys.executable, str(CHILD), str(data_dir)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    acked: list[str] = []
    deadline = time.monotonic() + 60
    target = min_acks + rng.randint(0, 20)
    try:
        for line in proc.stdout:
            if line.startswith("ack "):
                acked.append(line.split()[1])
                if len(acked) >= target:
                    break
            if time.monotonic() > deadline:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert len(acked) >= min_acks, "the child engine did not acknowledge enough executions"
    return acked


@pytest.mark.slow
async def test_sigkill_loses_no_acknowledged_execution(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    rng = random.Random(7)
    all_acked: list[str] = []
    for _ in range(3):
        all_acked += run_until_killed(data_dir, min_acks=10, rng=rng)
        engine = await open_engine(data_dir)
        try:
            finals = {}
            for execution_id in all_acked:
                finals[execution_id] = await engine.wait_until_terminal(execution_id, timeout=60)
            unfinished = await engine.store.fetchall(
                f"SELECT id, state FROM executions WHERE state NOT IN "
                f"({','.join('?' * len(TERMINAL_STATES))})", sorted(TERMINAL_STATES))
            for row in unfinished:
                final = await engine.wait_until_terminal(row[0], timeout=60)
                assert final.state.current in TERMINAL_STATES
            for execution_id, final in finals.items():
                assert final.state.current in ("SUCCESS", "FAILED"), (execution_id, final.state)
                for tr in final.task_runs:
                    assert tr.state.current in TERMINAL_STATES
                if final.state.current == "FAILED":
                    failed = [tr.task_id for tr in final.task_runs if tr.state.current == "FAILED"]
                    assert failed == ["side-effect"]  # only the task that must not re-run
                    messages = [e.message for e in await engine.logs.fetch(execution_id)]
                    assert any("not run again" in m for m in messages)
        finally:
            await engine.close()
    conn = sqlite3.connect(data_dir / "flowdeck.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {r[0] for r in conn.execute("SELECT id FROM executions")}
        running = conn.execute("SELECT COUNT(*) FROM executions WHERE state IN "
                               "('RUNNING','CREATED','QUEUED','KILLING')").fetchone()[0]
    finally:
        conn.close()
    assert set(all_acked) <= stored
    assert running == 0


async def test_pragmas_and_schema_version(engine: object, tmp_path: Path) -> None:
    from flowdeck.engine.engine import Engine
    from flowdeck.engine.schema import SCHEMA_VERSION

    assert isinstance(engine, Engine)
    writer = engine.store._writer
    assert writer is not None
    values = {}
    for pragma in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout", "user_version"):
        cursor = await writer.execute(f"PRAGMA {pragma}")
        values[pragma] = (await cursor.fetchone())[0]  # type: ignore[index]
    assert values == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1,
                      "busy_timeout": 5000, "user_version": SCHEMA_VERSION}


async def test_second_engine_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    first = await open_engine(tmp_path / "d")
    try:
        with pytest.raises(EngineLockedError) as refused:
            await open_engine(tmp_path / "d")
        assert str(os.getpid()) in str(refused.value)
        assert "already using" in str(refused.value)
        code = ("import asyncio, sys\n"
                "from flowdeck.engine.engine import Engine, EngineSettings\n"
                "from flowdeck.core.errors import EngineLockedError\n"
                "try:\n"
                f"    asyncio.run(Engine.open(EngineSettings(data_dir=__import__('pathlib')"
                f".Path({str(tmp_path / 'd')!r}))))\n"
                "except EngineLockedError as e:\n"
                "    print(e); sys.exit(3)\n")
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=30)
        assert result.returncode == 3
        assert time.monotonic() - started < 5
        assert "already using" in result.stdout
    finally:
        await first.close()
    reopened = await open_engine(tmp_path / "d")
    await reopened.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    from flowdeck.core.errors import FlowdeckError

    eng = await open_engine(tmp_path / "d")
    await eng.close()
    conn = sqlite3.connect(tmp_path / "d" / "flowdeck.db")
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(FlowdeckError, match="newer than this flowdeck"):
        await open_engine(tmp_path / "d")


async def test_clean_shutdown_leaves_running_work_recoverable(tmp_path: Path) -> None:
    from helpers import apply

    eng = await open_engine(tmp_path / "d")
    await apply(eng, """
        id: slowish
        namespace: t.stop
        tasks:
          - id: nap
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT0.5S
          - id: done
            type: io.kestra.plugin.core.log.Log
            message: done
        """)
    execution = await eng.create_execution("t.stop", "slowish")
    from helpers import wait_for_state

    await wait_for_state(eng, execution.id, "RUNNING")
    await eng.close()
    conn = sqlite3.connect(tmp_path / "d" / "flowdeck.db")
    state = conn.execute("SELECT state FROM executions WHERE id = ?", (execution.id,)).fetchone()
    conn.close()
    assert state[0] == "RUNNING"  # not falsely KILLED or FAILED: it is picked up again
    eng = await open_engine(tmp_path / "d")
    try:
        final = await eng.wait_until_terminal(execution.id, timeout=30)
        assert final.state.current == "SUCCESS"
        messages = [e.message for e in await eng.logs.fetch(execution.id)]
        assert any("continues when flowdeck starts again" in m for m in messages)
        assert "done" in messages
        seqs = [e.seq for e in await eng.logs.fetch(execution.id)]
        assert seqs == list(range(1, len(seqs) + 1))
    finally:
        await eng.close()


async def test_a_state_never_becomes_visible_before_the_log_lines_written_before_it(
        tmp_path: Path) -> None:
    """The writer snapshots executions when it takes a batch, not when it gets to write them:
    a change made while a commit is in flight (here: held open by an operation) goes out with
    the log lines staged alongside it, never ahead of them."""
    import asyncio
    from datetime import UTC, datetime

    from flowdeck.core.models import Execution, LogEntry
    from helpers import apply

    engine = await open_engine(tmp_path / "data")
    try:
        await apply(engine, """
            id: held
            namespace: durability
            tasks:
              - id: wait
                type: io.kestra.plugin.core.flow.Pause
        """)
        created = await engine.create_execution("durability", "held")
        execution = Execution.from_dict(
            (await engine.get_execution(created.id)).to_dict(engine.clock.now()))
        store = engine.store
        await store.flush()

        entered, release = asyncio.Event(), asyncio.Event()

        async def held_open(conn: object) -> None:
            entered.set()
            await release.wait()

        execution.state.to("RUNNING", datetime(2026, 1, 1, tzinfo=UTC))
        store.stage_execution(execution)
        operation = asyncio.create_task(store.run(held_open))
        await asyncio.wait_for(entered.wait(), 10)
        # While that commit is in flight: the line that explains the failure, then the failure.
        store.stage_logs([LogEntry(execution.id, 10_000, "durability", "held", None, None, None,
                                   "2026-01-01T00:00:01Z", "ERROR", "why it failed")])
        execution.state.to("FAILED", datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC))
        store.stage_execution(execution)
        release.set()
        await asyncio.wait_for(operation, 10)

        row = await store.fetchone("SELECT state FROM executions WHERE id = ?", (execution.id,))
        lines = await store.fetchall("SELECT message FROM logs WHERE execution_id = ? AND "
                                     "seq = 10000", (execution.id,))
        assert row is not None
        assert (row["state"], len(lines)) in {("RUNNING", 0), ("FAILED", 1)}, (
            row["state"], len(lines))
        await store.flush()
        row = await store.fetchone("SELECT state FROM executions WHERE id = ?", (execution.id,))
        assert row is not None and row["state"] == "FAILED"
    finally:
        await engine.close()
