"""Triggers paused and reset from the API, bulk actions (checked whole first), force-run past
a flow's concurrency limit, and the flow tools (validate a task, import, replace a task)."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flowdeck.core.clock import ManualClock
from flowdeck.core.errors import ConflictError, NotFoundError, ValidationError
from flowdeck.engine import bulk, flow_tools
from flowdeck.engine.engine import Engine, EngineSettings
from flowdeck.engine.scheduler import ScheduleService
from flowdeck.engine.triggers import TriggerQuery
from helpers import apply, run_flow, wait_for_state

CRON = """
    id: every5
    namespace: t.trig
    triggers:
      - {id: five, type: io.kestra.plugin.core.trigger.Schedule, cron: "*/5 * * * *"}
      - {id: hook, type: io.kestra.plugin.core.trigger.Webhook, key: k}
    tasks:
      - {id: log, type: io.kestra.plugin.core.log.Log, message: tick}
    """
SLOW = """
    id: slow
    namespace: t.bulk
    concurrency: {limit: 1}
    tasks:
      - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT30S}
    """


async def test_a_paused_schedule_does_not_fire_and_resumes_from_now(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 3, 1, 10, 1, tzinfo=UTC))
    engine = await Engine.open(EngineSettings(data_dir=tmp_path / "d", scheduler=False,
                                              envs={}), clock=clock)
    try:
        await apply(engine, CRON)
        service = ScheduleService(engine)
        assert await service.tick(clock.now()) == 0
        [state] = await engine.triggers.set_disabled([("t.trig", "every5", "five")], True)
        assert state.disabled and state.paused and state.next_fire is None
        clock.set(datetime(2026, 3, 1, 10, 16, tzinfo=UTC))
        assert await service.tick(clock.now()) == 0  # paused: 10:05, 10:10, 10:15 skipped
        await engine.triggers.set_disabled([("t.trig", "every5", "five")], False)
        assert await service.tick(clock.now()) == 0  # resumed from now: no catch-up
        clock.set(datetime(2026, 3, 1, 10, 20, tzinfo=UTC))
        assert await service.tick(clock.now()) == 1
        found, total = await engine.triggers.search(TriggerQuery())
        assert total == 2 and [s.kind for s in found] == ["SCHEDULE", "WEBHOOK"]
        assert found[0].next_fire == datetime(2026, 3, 1, 10, 25, tzinfo=UTC)
        with pytest.raises(ConflictError):
            await engine.triggers.unlock("t.trig", "every5", "five")
        with pytest.raises(NotFoundError):
            await engine.triggers.set_disabled([("t.trig", "every5", "nope")], True)
        reset = await engine.triggers.reset("t.trig", "every5", "five")
        assert reset.last_fire is None
    finally:
        await engine.close()


async def test_bulk_actions_refuse_the_whole_batch_then_act(engine: Engine) -> None:
    await apply(engine, SLOW)
    first = await engine.create_execution("t.bulk", "slow")
    await wait_for_state(engine, first.id, "RUNNING")
    queued = await engine.create_execution("t.bulk", "slow")
    await wait_for_state(engine, queued.id, "QUEUED")
    with pytest.raises(bulk.BulkRefused) as refused:
        await bulk.apply(engine, bulk.BulkRequest("resume", [first.id, "ghost"]))
    assert refused.value.invalids == [(first.id, "execution is RUNNING"),
                                      ("ghost", "execution not found")]
    assert (await engine.get_execution(first.id)).state.current == "RUNNING"
    forced = await bulk.force_run(engine, queued.id)  # past the limit of 1
    assert forced.state.current == "RUNNING"
    assert await bulk.apply(engine, bulk.BulkRequest("kill", [first.id, queued.id])) == 2
    for execution_id in (first.id, queued.id):
        assert (await engine.wait_until_terminal(execution_id, 20)).state.current == "KILLED"
    labelled = bulk.BulkRequest("labels", [first.id], labels=[("checked", "yes")])
    assert await bulk.apply(engine, labelled) == 1
    assert ("checked", "yes") in (await engine.get_execution(first.id)).labels


async def test_unqueue_to_a_final_state(engine: Engine) -> None:
    await apply(engine, SLOW)
    first = await engine.create_execution("t.bulk", "slow")
    await wait_for_state(engine, first.id, "RUNNING")
    queued = await engine.create_execution("t.bulk", "slow")
    await wait_for_state(engine, queued.id, "QUEUED")
    cancelled = await bulk.unqueue(engine, queued.id, "CANCELLED")
    assert cancelled.state.current == "CANCELLED"
    with pytest.raises(ConflictError):
        await bulk.unqueue(engine, first.id, None)
    await engine.kill_and_wait(first.id)


async def test_flow_tools(engine: Engine) -> None:
    assert flow_tools.validate_part({"id": "t", "type": "io.kestra.plugin.core.log.Log",
                                     "message": "m"}, "task") is None
    problem = flow_tools.validate_part({"id": "t", "type": "io.kestra.nope"}, "task")
    assert problem == "type: unknown task type 'io.kestra.nope'"
    assert "cron" in (flow_tools.validate_part(
        {"id": "s", "type": "io.kestra.plugin.core.trigger.Schedule", "cron": "x"},
        "trigger") or "")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("ok.yml", "id: a\nnamespace: t.imp\ntasks:\n  - {id: l, type: "
                             "io.kestra.plugin.core.log.Log, message: a}\n")
        z.writestr("bad.yml", "id: b\nnamespace: t.imp\n")
    sources = flow_tools.import_sources(archive.getvalue(), "flows.zip")
    assert await flow_tools.import_flows(engine, sources) == ["bad.yml"]
    with pytest.raises(ValidationError):
        await flow_tools.import_flows(engine, sources, fail_on_error=True)
    replaced = await flow_tools.replace_task(engine, "t.imp", "a", "l", {
        "id": "l", "type": "io.kestra.plugin.core.log.Log", "message": "patched"})
    assert replaced.revision == 2 and "patched" in replaced.source
    final = await run_flow(engine, "t.imp", "a")
    assert [e.message for e in await engine.logs.fetch(final.id)] == ["patched"]
    assert await flow_tools.set_disabled(engine, [("t.imp", "a")], True) == 1
    assert engine.get_flow("t.imp", "a").disabled
