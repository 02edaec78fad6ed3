"""`make run` and `flowdeck demo` install the bundled agent and leave one run of it waiting
for review (with a `demo` key), once: running the demo again starts no second waiting run."""

from __future__ import annotations

import asyncio
from pathlib import Path

from flowdeck.cli.commands.demo import DEMO_AGENT, seed_agent
from flowdeck.cli.deck import seed_demo
from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.engine.engine import Engine, EngineSettings
from public.support import open_public_engine, until_waiting


async def test_the_demo_runs_the_agent_once(tmp_path: Path) -> None:
    engine = await open_public_engine(tmp_path / "data", install=False)
    try:
        started = await seed_agent(engine)
        assert started is not None
        await until_waiting(engine, started)
        [approval] = await engine.approvals.list("pending")
        assert (approval.flow_id, len(approval.rows)) == (DEMO_AGENT, 3)
        assert await seed_agent(engine) is None  # one waits already
        [key] = await engine.public.list_keys()
        assert key.name == "demo" and key.usage_count == 1
        execution = await engine.get_execution(started)
        assert (execution.variables or {}).get("apiKeyName") == "demo"
    finally:
        await engine.close()


async def test_make_run_seeds_the_agent_in_the_deck_engine(tmp_path: Path) -> None:
    settings = EngineSettings(data_dir=tmp_path / "data", scheduler=False, envs={})
    backend = EmbeddedBackend(settings)
    await backend.connect()
    try:
        await seed_demo(backend)

        async def agents(engine: Engine) -> list[str]:
            return [f.id for f in engine.list_flows("agents")]

        assert await backend.engine_call(agents) == [DEMO_AGENT]
        async with asyncio.timeout(15):
            while not [a for a in await backend.list_approvals("pending")
                       if a.flow_id == DEMO_AGENT]:
                await asyncio.sleep(0.05)
    finally:
        await backend.close()
