"""Forge engine benchmark: release creates and pipeline run overhead, engine level (no HTTP).

    .venv/bin/python bench/forge.py [--json]

release_creates_per_s
    50 concurrent callers create 20 releases each (1,000 creates, one project) through
    `engine.forge.create_release`: creates per second from the first call to the last durable
    commit. Every create allocates its number inside the write transaction.
run_overhead_ms
    A pipeline run of a flow of 4 trivial Log tasks (`engine.forge.create_run`, then waiting for
    the end) against an execution of the same flow started directly (`create_execution`):
    the median of 20 of each (after a warm-up), and their difference.
deploys_per_s
    100 sequential deployments to `dev` (each one a GitOps commit with dulwich and two
    transactions).

The HTTP figures of the same names (`bench/api.py`) add the server on top.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from flowdeck.engine.engine import Engine, EngineSettings

FLOW = """
id: shop
namespace: {namespace}
tasks:
  - id: one
    type: io.kestra.plugin.core.log.Log
    message: one
  - id: two
    type: io.kestra.plugin.core.log.Log
    message: two
  - id: three
    type: io.kestra.plugin.core.log.Log
    message: three
  - id: four
    type: io.kestra.plugin.core.log.Log
    message: four
"""


async def open_engine(data_dir: Path) -> Engine:
    return await Engine.open(EngineSettings(data_dir=data_dir, scheduler=False, envs={}))


async def release_creates(engine: Engine) -> float:
    async def caller(c: int) -> None:
        for i in range(20):
            await engine.forge.create_release("bench/shop", "api", f"{c * 100 + i:040x}", [],
                                              by=f"caller-{c}")

    start = time.perf_counter()
    await asyncio.gather(*(caller(c) for c in range(50)))
    return 1000 / (time.perf_counter() - start)


async def run_overhead(engine: Engine) -> dict[str, float]:
    await engine.apply_flow(FLOW.format(namespace="pipelines.bench"))
    await engine.apply_flow(FLOW.format(namespace="bench.direct"))

    async def pipeline() -> float:
        start = time.perf_counter()
        run = await engine.forge.create_run("bench/shop", "main", "abcdef0", "bench", "push",
                                            by="bench")
        await engine.wait_until_terminal(run.id, 30)
        return (time.perf_counter() - start) * 1000

    async def direct() -> float:
        start = time.perf_counter()
        execution = await engine.create_execution("bench.direct", "shop")
        await engine.wait_until_terminal(execution.id, 30)
        return (time.perf_counter() - start) * 1000

    await pipeline()
    await direct()
    piped, plain = [], []
    for _ in range(20):
        piped.append(await pipeline())
        plain.append(await direct())
    p, d = statistics.median(piped), statistics.median(plain)
    return {"pipeline_run_ms": round(p, 2), "direct_run_ms": round(d, 2),
            "run_overhead_ms": round(p - d, 2)}


async def deploys(engine: Engine) -> float:
    made = await engine.forge.create_release("bench/shop", "web", "f" * 40, [], by="bench")
    start = time.perf_counter()
    for _ in range(100):
        await engine.forge.create_deployment(made.id, "dev", by="bench")
    return 100 / (time.perf_counter() - start)


async def main(as_json: bool) -> None:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        engine = await open_engine(Path(tmp) / "data")
        try:
            results["release_creates_per_s"] = round(await release_creates(engine), 1)
            results.update(await run_overhead(engine))
            results["deploys_per_s"] = round(await deploys(engine), 1)
        finally:
            await engine.close()
    if as_json:
        print(json.dumps(results))
    else:
        for key, value in results.items():
            print(f"{key:24} {value}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    asyncio.run(main(parser.parse_args().json))
