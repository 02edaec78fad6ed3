"""Helpers for tests that drive a real engine."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
import time
from pathlib import Path

from flowdeck.core.models import Execution
from flowdeck.engine.engine import Engine, EngineSettings


async def open_engine(data_dir: Path, **overrides: object) -> Engine:
    settings = EngineSettings(data_dir=data_dir, scheduler=False, envs={})
    for key, value in overrides.items():
        setattr(settings, key, value)
    return await Engine.open(settings)


async def apply(engine: Engine, source: str) -> None:
    await engine.apply_flow(textwrap.dedent(source))


async def run_flow(engine: Engine, namespace: str, flow_id: str, timeout: float = 30,
                   **kwargs: object) -> Execution:
    execution = await engine.create_execution(namespace, flow_id, **kwargs)  # type: ignore[arg-type]
    return await engine.wait_until_terminal(execution.id, timeout=timeout)


async def wait_for_state(engine: Engine, execution_id: str, state: str,
                         timeout: float = 10) -> Execution:
    """Wait (on events, not sleeps) until the execution reaches `state`."""
    sub = engine.subscribe("execution", execution_id=execution_id)
    try:
        async with asyncio.timeout(timeout):
            while True:
                current = await engine.get_execution(execution_id)
                if current.state.current == state:
                    return current
                with contextlib.suppress(TimeoutError):
                    await sub.get(0.5)
    finally:
        sub.close()


async def wait_for_task_state(engine: Engine, execution_id: str, task_id: str, state: str,
                              timeout: float = 10) -> Execution:
    """Wait (on events, not sleeps) until a task run of `task_id` is in `state`."""
    sub = engine.subscribe("execution", execution_id=execution_id)
    try:
        async with asyncio.timeout(timeout):
            while True:
                current = await engine.get_execution(execution_id)
                if any(tr.task_id == task_id and tr.state.current == state
                       for tr in current.task_runs):
                    return current
                with contextlib.suppress(TimeoutError):
                    await sub.get(0.5)
    finally:
        sub.close()


def states(execution: Execution) -> dict[str, str]:
    return {tr.task_id + (f"[{tr.value}]" if tr.value else ""): tr.state.current
            for tr in execution.task_runs}


class cpu_time:
    """`with cpu_time() as spent:` the CPU time this thread spends in the block (what holds an
    event loop, immune to a busy machine's scheduling); the wall time is sanity-checked."""

    def __enter__(self) -> cpu_time:
        self.start, self.wall = time.thread_time(), time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.thread_time() - self.start
        assert time.perf_counter() - self.wall < 30, "a timed block ran for 30 s"
