"""Logs: numbered per execution, followable live with no gap and no duplicate."""

from __future__ import annotations

import asyncio

from flowdeck.core.models import LogEntry
from flowdeck.engine.engine import Engine
from helpers import apply, run_flow

CHATTY = """
    id: chatty
    namespace: t.logs
    tasks:
      - id: burst
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - i=1; while [ $i -le 3000 ]; do echo "line $i"; i=$((i+1)); done
          - echo "to stderr" >&2
      - id: bye
        type: io.kestra.plugin.core.log.Log
        level: WARN
        message: bye
    """


async def collect(engine: Engine, execution_id: str, after: int, until: str,
                  min_level: str | None = None) -> list[LogEntry]:
    got: list[LogEntry] = []
    async for entry in engine.follow_logs(execution_id, after_seq=after, min_level=min_level,
                                          heartbeat=5):
        assert entry is not None, "no line for 5 s"
        got.append(entry)
        if entry.message == until:
            break
    return got


async def test_follow_from_start_and_from_a_sequence_number(engine: Engine) -> None:
    await apply(engine, CHATTY)
    execution = await engine.create_execution("t.logs", "chatty")
    live, resumed = await asyncio.wait_for(asyncio.gather(
        collect(engine, execution.id, 0, "bye"),
        collect(engine, execution.id, 2500, "bye")), 60)
    final = await engine.wait_until_terminal(execution.id, 30)
    assert final.state.current == "SUCCESS"
    stored = await engine.logs.fetch(execution.id)
    assert [e.seq for e in stored] == list(range(1, 3003))
    assert [e.seq for e in live] == list(range(1, 3003))
    assert [e.seq for e in resumed] == list(range(2501, 3003))
    # stdout keeps its order; stderr is another pipe, so its line may land anywhere in between
    assert [e.message for e in live if e.level == "INFO"] == [
        f"line {i}" for i in range(1, 3001)]
    assert [(e.message, e.task_id) for e in live if e.level == "WARN"] == [
        ("to stderr", "burst"), ("bye", "bye")]
    assert live[-1].task_id == "bye"
    # A follower that starts after the run replays everything stored, then waits.
    late = await collect(engine, execution.id, 0, "bye")
    assert [e.seq for e in late] == list(range(1, 3003))
    warnings = await collect(engine, execution.id, 0, "bye", min_level="WARN")
    assert [e.message for e in warnings] == ["to stderr", "bye"]


async def test_filters_and_kestra_json(engine: Engine) -> None:
    await apply(engine, CHATTY)
    final = await run_flow(engine, "t.logs", "chatty")
    burst = final.task_runs[0]
    only_bye = await engine.logs.fetch(final.id, task_id="bye")
    assert [e.message for e in only_bye] == ["bye"]
    by_run = await engine.logs.fetch(final.id, task_run_id=burst.id, limit=2)
    assert [e.message for e in by_run] == ["line 1", "line 2"]
    doc = only_bye[0].to_dict()
    assert doc["executionId"] == final.id and doc["namespace"] == "t.logs"
    assert doc["flowId"] == "chatty" and doc["level"] == "WARN"
    assert doc["attemptNumber"] == 0 and doc["timestamp"].endswith("Z")
    assert only_bye[0].pretty().endswith(" WARN bye")


async def test_restarted_execution_continues_numbering(engine: Engine) -> None:
    await apply(engine, """
        id: numbered
        namespace: t.logs
        tasks:
          - id: say
            type: io.kestra.plugin.core.log.Log
            message: hello
          - id: fail
            type: io.kestra.plugin.core.execution.Fail
        """)
    failed = await run_flow(engine, "t.logs", "numbered")
    before = await engine.logs.fetch(failed.id)
    await engine.restart(failed.id)
    await engine.wait_until_terminal(failed.id, 30)
    after = await engine.logs.fetch(failed.id)
    assert [e.seq for e in after] == list(range(1, len(after) + 1))
    assert len(after) > len(before)


async def test_a_follower_that_lags_during_replay_still_gets_the_newest_lines(
        engine: Engine) -> None:
    await apply(engine, """
        id: lagging
        namespace: t.logs
        tasks:
          - id: two
            type: io.kestra.plugin.core.log.Log
            message: ["one", "two"]
        """)
    final = await run_flow(engine, "t.logs", "lagging")
    follower = engine.follow_logs(final.id, heartbeat=0.5)
    first = await anext(follower)
    assert first is not None and first.seq == 1
    # While the follower is mid-replay, more batches arrive than its queue holds.
    await engine.logs.prime(final.id)
    for _ in range(10_001):
        engine.logs.emit(final, None, "INFO", ["burst"])
    await engine.store.flush()
    seen = [first.seq]
    async with asyncio.timeout(30):
        async for entry in follower:
            if entry is None:
                break
            seen.append(entry.seq)
    await follower.aclose()  # type: ignore[attr-defined]
    assert seen == list(range(1, 10_004))
