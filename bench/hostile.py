"""Hostile-input benchmark: how fast the engine refuses what would stall it, and what a log
follower holds. Engine level (no HTTP), each figure the median of several tries.

Run with the project's venv::

    .venv/bin/python bench/hostile.py           # a readable table
    .venv/bin/python bench/hostile.py --json    # one JSON object on stdout

yaml_bomb_flow_ms (target < 100 ms)
    The 579-byte billion-laughs flow (nine levels of nine aliases) given to
    ``engine.validate_flow_async``: time until InvalidFlowError.
yaml_bomb_input_ms (target < 100 ms)
    A 394-byte billion-laughs document as the YAML input of ``create_execution``: time
    until the ValidationError (nothing is stored).
regex_bomb_ms (target < 150 ms)
    ``{{ text | replace({'(a|aa)+$': 'x'}, regexp=true) }}`` over 40 a's and a '!' (hours of
    backtracking with Python's re): time until TemplateError (the regex timeout is 25 ms).
power_bomb_ms (target < 100 ms)
    ``{{ 9 ** (9 ** 7) }}``: time until TemplateError (refused before computing).
loop_bomb_ms (target < 150 ms)
    Two nested ``range(100000)`` loops: time until TemplateError (the render's CPU budget is
    25 ms).
follow_peak_mb (target < 16 MB)
    Peak memory (tracemalloc) of a follower replaying the 200,000 stored lines of an
    execution, consuming each one as it comes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

try:
    from flowdeck.engine.engine import Engine, EngineSettings
except ImportError:  # a bare checkout: use the sources next to this script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from flowdeck.engine.engine import Engine, EngineSettings

from flowdeck.core.errors import FlowdeckError
from flowdeck.engine.templating import TemplateError, TemplateRenderer

TRIES = 9
FOLLOW_LINES = 200_000
LAUGHS = "\n".join([
    "id: bomb", "namespace: bench", "variables:",
    '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    *(f"  {n}: &{n} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]"
      for p, n in zip("abcdefgh", "bcdefghi", strict=True)),
    "tasks:", "  - id: t", "    type: io.kestra.plugin.core.log.Log", "    message: hi",
]) + "\n"
SMALL_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
     *(f"{n}: &{n} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]"
       for p, n in zip("abcdefg", "bcdefgh", strict=True))]) + "\n"
TAKES_YAML = """
id: takes-yaml
namespace: bench
inputs:
  - id: doc
    type: YAML
tasks:
  - id: t
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


async def median_ms(attempt: Callable[[], Awaitable[None]]) -> float:
    times = []
    for _ in range(TRIES):
        started = time.perf_counter()
        await attempt()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


async def refused(call: Awaitable[Any]) -> None:
    try:
        await call
    except FlowdeckError:
        return
    raise AssertionError("not refused")


def refused_render(renderer: TemplateRenderer, template: str,
                   context: dict[str, Any]) -> Callable[[], Awaitable[None]]:
    async def attempt() -> None:
        try:
            renderer.render(template, context)
        except TemplateError:
            return
        raise AssertionError(f"{template!r} rendered")

    return attempt


async def follow_peak(engine: Engine) -> float:
    await engine.apply_flow(TAKES_YAML.replace("takes-yaml", "talky").replace(
        "inputs:\n  - id: doc\n    type: YAML\n", ""))
    execution = await engine.create_execution("bench", "talky")
    await engine.wait_until_terminal(execution.id, 30)

    async def op(conn: Any) -> None:
        await conn.executemany(
            "INSERT INTO logs(execution_id, seq, task_run_id, task_id, attempt, ts, level,"
            " message) VALUES (?,?,?,?,?,?,?,?)",
            ((execution.id, seq, None, "t", 0, "2026-01-01T00:00:00.000Z", "INFO",
              f"line {seq} " + "x" * 60) for seq in range(2, FOLLOW_LINES + 2)))

    await engine.store.run(op)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        seen = 0
        async for entry in engine.follow_logs(execution.id, heartbeat=5):
            assert entry is not None
            seen += 1
            if seen == FOLLOW_LINES + 1:
                break
        return round((tracemalloc.get_traced_memory()[1] - before) / 1e6, 1)
    finally:
        tracemalloc.stop()


async def measure() -> dict[str, float]:
    renderer = TemplateRenderer()
    context = {"inputs": {"text": "a" * 40 + "!"}}
    with tempfile.TemporaryDirectory(prefix="flowdeck-bench-") as tmp:
        engine = await Engine.open(EngineSettings(data_dir=Path(tmp) / "data",
                                                  scheduler=False, envs={}))
        try:
            await engine.apply_flow(TAKES_YAML)
            return {
                "yaml_bomb_flow_ms": await median_ms(
                    lambda: refused(engine.validate_flow_async(LAUGHS))),
                "yaml_bomb_input_ms": await median_ms(
                    lambda: refused(engine.create_execution(
                        "bench", "takes-yaml", inputs={"doc": SMALL_LAUGHS}))),
                "regex_bomb_ms": await median_ms(refused_render(
                    renderer, "{{ inputs.text | replace({'(a|aa)+$': 'x'}, regexp=true) }}",
                    context)),
                "power_bomb_ms": await median_ms(refused_render(
                    renderer, "{{ 9 ** (9 ** 7) }}", context)),
                "loop_bomb_ms": await median_ms(refused_render(
                    renderer, "{% for i in range(100000) %}{% for j in range(100000) %}"
                              "{% endfor %}{% endfor %}", context)),
                "follow_peak_mb": await follow_peak(engine),
            }
        finally:
            await engine.close()


TARGETS = {"yaml_bomb_flow_ms": 100, "yaml_bomb_input_ms": 100, "regex_bomb_ms": 150,
           "power_bomb_ms": 100, "loop_bomb_ms": 150, "follow_peak_mb": 16}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    assert len(LAUGHS.encode()) <= 600 and len(SMALL_LAUGHS.encode()) <= 400
    figures = asyncio.run(measure())
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"{'figure':<22}{'value':>10}  target")
    for name, value in figures.items():
        ok = "ok" if value < TARGETS[name] else "OVER"
        print(f"{name:<22}{value:>10}  < {TARGETS[name]}  {ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
