"""A real engine process for crash tests: submits executions and prints `ack <id>` per commit.

Run as `python crash_child.py DATA_DIR`; the parent kills it with SIGKILL at a random moment.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from flowdeck.engine.engine import Engine, EngineSettings

FLOW = """
id: crashy
namespace: t.crash
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "start {{ execution.id }}"
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.05S
  - id: rerunnable
    type: io.kestra.plugin.scripts.shell.Commands
    retryOnCrash: true
    commands: ["sleep 0.05", "echo rerunnable"]
  - id: side-effect
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["sleep 0.05", "echo side effect"]
"""


async def main(data_dir: Path) -> None:
    engine = await Engine.open(EngineSettings(data_dir=data_dir, scheduler=False, envs={},
                                              max_concurrent_executions=8))
    await engine.apply_flow(FLOW)
    print("ready", flush=True)

    async def submitter() -> None:
        while True:
            execution = await engine.create_execution("t.crash", "crashy")
            print(f"ack {execution.id}", flush=True)
            await asyncio.sleep(0.01)

    await asyncio.gather(*(submitter() for _ in range(4)))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
