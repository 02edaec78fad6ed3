"""`flowdeck demo`: the bundled example flows applied, one run followed live, one waiting;
the public API's bundled agent installed and run once with a `demo` key, waiting for review."""

from __future__ import annotations

import asyncio
from importlib import resources

from flowdeck.cli.common import EXIT_OK, Context, Printer, closing
from flowdeck.cli.engine import open_engine
from flowdeck.cli.options import Commands
from flowdeck.cli.views import EXECUTION_HEADERS, execution_row
from flowdeck.core.models import Execution
from flowdeck.core.states import is_terminal
from flowdeck.engine.engine import Engine
from flowdeck.engine.query import ExecutionQuery


def register(commands: Commands) -> None:
    commands.command("demo", "apply the bundled example flows, run one and follow it live",
                     run_demo, remote=False)


#: The bundled agent the demo runs, and the key it runs it with.
DEMO_AGENT = "workflow_bfsi_marketing_template"
DEMO_KEY = "demo"
DEMO_CUSTOMERS = [
    {"customerId": "CUST001", "name": "John Doe", "phone": "+918610560986", "city": "Mumbai"},
    {"customerId": "CUST002", "name": "Asha Rao", "phone": "+918610560987", "city": "Pune"},
    {"customerId": "CUST003", "name": "Ravi Kumar", "phone": "+918610560988"},
]


async def seed_agent(engine: Engine) -> str | None:
    """Install the bundled agents and, unless a run of the demo agent already waits for its
    review, run it once with the `demo` API key (made once; its secret is not kept), so its
    approval, with the generated messages as rows, waits in the deck. The new run's id."""
    await engine.public.install_bundled_agents()
    service = engine.public
    waiting = [a for a in await engine.approvals.list("pending")
               if (a.namespace, a.flow_id) == (service.namespace, DEMO_AGENT)]
    if waiting:
        return None
    keys = [k for k in await service.list_keys()
            if k.name == DEMO_KEY and k.status(engine.clock.now()) == "active"]
    key = keys[0] if keys else (await service.create_key(DEMO_KEY)).key
    started = await service.execute(key, DEMO_AGENT, {"csvData": DEMO_CUSTOMERS},
                                    "flowdeck demo")
    return started.execution_id


def example_sources() -> list[str]:
    folder = resources.files("flowdeck.examples")
    return [item.read_text() for item in sorted(folder.iterdir(), key=lambda i: i.name)
            if item.name.endswith(".yml")]


async def run_demo(ctx: Context) -> int:
    p = ctx.out
    async with open_engine(ctx.settings, start=True, scheduler=True) as engine:
        p.line(f"flowdeck demo — data in {engine.data_dir}")
        for source in example_sources():
            flow, what = await engine.apply_flow(source)
            p.line(f"  {what:<9} {flow.namespace}.{flow.id}")
        p.line("\nrunning flowdeck.demo.build-dag and following its logs:\n")
        execution = await engine.create_execution("flowdeck.demo", "build-dag")
        final = await follow_until_settled(engine, execution.id, p)
        p.line(f"\nexecution {final.id} ended {final.state.current}")
        approval_run = await engine.create_execution("flowdeck.demo", "release-approval")
        await follow_until_settled(engine, approval_run.id, None)
        agent_run = await seed_agent(engine)
        if agent_run is not None:
            await follow_until_settled(engine, agent_run, None)
            p.line(f"the public API's agent {DEMO_AGENT} ran as {agent_run}; its messages "
                   "wait for review")
        pending = await engine.approvals.list("pending")
        p.line(f"{len(pending)} approval(s) waiting; try: flowdeck approvals list")
        results, _ = await engine.search_executions(ExecutionQuery(size=10))
        p.line()
        p.table(EXECUTION_HEADERS, [execution_row(e) for e in results])
    return EXIT_OK


async def follow_until_settled(engine: Engine, execution_id: str,
                               printer: Printer | None) -> Execution:
    """Optionally print logs live; return when the execution ends or waits."""
    async def settled() -> Execution:
        while True:
            execution = await engine.get_execution(execution_id)
            if is_terminal(execution.state.current) and not engine.is_running(execution_id):
                return execution
            if execution.state.current == "PAUSED":
                return execution
            sub = engine.subscribe("execution", execution_id=execution_id)
            try:
                await sub.get(0.5)
            except TimeoutError:
                pass
            finally:
                sub.close()

    if printer is None:
        return await settled()
    waiter = asyncio.ensure_future(settled())
    last = 0
    async with closing(engine.follow_logs(execution_id, heartbeat=0.2)) as follower:
        async for entry in follower:
            if entry is not None:
                printer.log(entry)
                last = entry.seq
            elif waiter.done():
                # Settled: print whatever committed after the last line shown, then stop.
                for rest in await engine.logs.fetch(execution_id, after_seq=last):
                    printer.log(rest)
                break
    return await waiter
