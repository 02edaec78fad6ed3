"""The engine's parts: a shared concurrency key, and what tasks are given to work with."""

from __future__ import annotations

from pathlib import Path

from flowdeck.engine.task_services import TaskServices
from helpers import apply, open_engine, run_flow, wait_for_state

HELD = """
id: {id}
namespace: {ns}
concurrency:
  limit: 1
  key: pool
tasks:
  - id: hold
    type: io.kestra.plugin.core.flow.Pause
"""


async def test_flows_naming_one_concurrency_key_share_its_limit(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path / "data")
    try:
        for flow_id, namespace in (("a", "team.one"), ("b", "team.one"), ("c", "team.two")):
            await apply(engine, HELD.format(id=flow_id, ns=namespace))
        first = await engine.create_execution("team.one", "a")
        await wait_for_state(engine, first.id, "PAUSED")  # it holds the pool's one slot
        queued = await engine.create_execution("team.one", "b")
        await wait_for_state(engine, queued.id, "QUEUED")  # another flow, the same pool
        elsewhere = await engine.create_execution("team.two", "c")
        await wait_for_state(engine, elsewhere.id, "PAUSED")  # the key is per namespace
        await engine.resume(first.id)
        assert (await engine.wait_until_terminal(first.id, 10)).state.current == "SUCCESS"
        await wait_for_state(engine, queued.id, "PAUSED")  # the slot passed on
        for execution_id in (queued.id, elsewhere.id):
            await engine.kill_and_wait(execution_id)
        assert engine.running_ids() == []
    finally:
        await engine.close()


async def test_tasks_get_task_services_not_the_engine(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path / "data")
    try:
        services = engine.task_services
        assert isinstance(services, TaskServices)
        assert services.kv is engine.kv and services.clock is engine.clock
        assert not hasattr(services, "create_execution") and not hasattr(services, "store")
        await apply(engine, """
            id: counter
            namespace: parts
            tasks:
              - id: put
                type: io.kestra.plugin.core.kv.Set
                key: seen
                value: "yes"
            """)
        assert (await run_flow(engine, "parts", "counter")).state.current == "SUCCESS"
        assert (await engine.kv.get("parts", "seen")).value == "yes"
    finally:
        await engine.close()
