"""Schedule triggers: one execution per fire time, coalesced catch-up, real APScheduler firing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flowdeck.core.clock import ManualClock
from flowdeck.core.timefmt import format_instant
from flowdeck.engine.engine import Engine, EngineSettings
from flowdeck.engine.scheduler import ScheduleService
from helpers import apply, open_engine

FLOW = """
    id: every5
    namespace: t.cron
    inputs:
      - id: who
        type: STRING
    triggers:
      - id: five
        type: io.kestra.plugin.core.trigger.Schedule
        cron: "*/5 * * * *"
        inputs:
          who: cron
    tasks:
      - id: log
        type: io.kestra.plugin.core.log.Log
        message: "{{ inputs.who }} at {{ trigger.date }}"
    """


async def scheduled(engine: Engine) -> list[tuple[str, str]]:
    rows = await engine.store.fetchall(
        "SELECT id, trigger_key FROM executions WHERE trigger_key IS NOT NULL ORDER BY start_date")
    return [(r[0], r[1]) for r in rows]


async def test_fires_once_per_time_and_coalesces_downtime(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 3, 1, 10, 1, tzinfo=UTC))
    engine = await Engine.open(EngineSettings(data_dir=tmp_path / "d", scheduler=False, envs={}),
                               clock=clock)
    try:
        await apply(engine, FLOW)
        service = ScheduleService(engine)
        assert await service.tick(clock.now()) == 0  # a new schedule does not backfill
        clock.set(datetime(2026, 3, 1, 10, 5, 0, 300, tzinfo=UTC))
        assert await service.tick(clock.now()) == 1
        assert await service.tick(clock.now()) == 0  # same fire time: nothing new
        fired = await scheduled(engine)
        assert len(fired) == 1
        execution = await engine.wait_until_terminal(fired[0][0], 10)
        assert execution.state.current == "SUCCESS"
        assert execution.inputs == {"who": "cron"}
        assert execution.trigger is not None
        variables = execution.trigger["variables"]
        assert variables["date"] == "2026-03-01T10:05:00.000000Z"
        assert variables["next"] == "2026-03-01T10:10:00.000000Z"
        assert execution.schedule_date == datetime(2026, 3, 1, 10, 5, tzinfo=UTC)
        assert execution.trigger["id"] == "five"
        # An hour of downtime (12 missed times) becomes one run for the latest time.
        clock.set(datetime(2026, 3, 1, 11, 7, tzinfo=UTC))
        assert await service.tick(clock.now()) == 1
        fired = await scheduled(engine)
        assert len(fired) == 2
        assert fired[1][1].endswith("2026-03-01T11:05:00.000000Z")
    finally:
        await engine.close()


async def test_concurrent_ticks_for_one_time_create_one_execution(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 3, 1, 10, 1, tzinfo=UTC))
    engine = await Engine.open(EngineSettings(data_dir=tmp_path / "d", scheduler=False, envs={}),
                               clock=clock)
    try:
        await apply(engine, FLOW)
        service = ScheduleService(engine)
        await service.tick(clock.now())
        clock.advance(timedelta(minutes=5))
        flow = engine.get_flow("t.cron", "every5")
        trigger = flow.schedules[0]
        results = await asyncio.gather(*(service.tick_trigger(flow, trigger, clock.now())
                                         for _ in range(4)))
        assert sorted(results) == [False, False, False, True]
        assert len(await scheduled(engine)) == 1
    finally:
        await engine.close()


async def test_timezone_and_disabled_flows(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 1, 10, 7, 0, tzinfo=UTC))
    engine = await Engine.open(EngineSettings(data_dir=tmp_path / "d", scheduler=False, envs={}),
                               clock=clock)
    try:
        await apply(engine, """
            id: paris
            namespace: t.cron
            triggers:
              - id: nine
                type: io.kestra.plugin.core.trigger.Schedule
                cron: "0 9 * * *"
                timezone: Europe/Paris
            tasks:
              - id: log
                type: io.kestra.plugin.core.log.Log
                message: morning
            """)
        service = ScheduleService(engine)
        await service.tick(clock.now())
        clock.set(datetime(2026, 1, 10, 7, 59, tzinfo=UTC))
        assert await service.tick(clock.now()) == 0
        clock.set(datetime(2026, 1, 10, 8, 0, 1, tzinfo=UTC))  # 09:00 in Paris (winter)
        assert await service.tick(clock.now()) == 1
        await apply(engine, """
            id: paris
            namespace: t.cron
            disabled: true
            triggers:
              - id: nine
                type: io.kestra.plugin.core.trigger.Schedule
                cron: "0 9 * * *"
                timezone: Europe/Paris
            tasks:
              - id: log
                type: io.kestra.plugin.core.log.Log
                message: morning
            """)
        clock.advance(timedelta(days=1))
        assert await service.tick(clock.now()) == 0
    finally:
        await engine.close()


async def test_apscheduler_fires_and_follows_flow_changes(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path / "d", scheduler=True)
    try:
        await apply(engine, """
            id: tick
            namespace: t.cron
            triggers:
              - id: each-second
                type: io.kestra.plugin.core.trigger.Schedule
                cron: "* * * * * *"
                withSeconds: true
            tasks:
              - id: log
                type: io.kestra.plugin.core.log.Log
                message: tick
            """)
        jobs = [job.id for job in engine.scheduler.scheduler.get_jobs()]
        assert jobs == ["t.cron/tick/each-second"]
        sub = engine.watch_executions()
        try:
            async with asyncio.timeout(10):
                event = await sub.get()
        finally:
            sub.close()
        execution = await engine.wait_until_terminal(event.execution_id, 10)
        assert execution.trigger is not None and execution.trigger["id"] == "each-second"
        assert dict(execution.labels)["system.from"] == "trigger"
        await engine.delete_flow("t.cron", "tick")
        assert engine.scheduler.scheduler.get_jobs() == []
    finally:
        await engine.close()
    assert format_instant(datetime(2026, 1, 1, tzinfo=UTC)).endswith("Z")
