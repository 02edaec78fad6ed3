"""Small helpers for FlowCtl tests: definitions, waiting on conditions, process groups."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowdeck.core.flowctl import WorkflowView
from flowdeck.engine.engine import Engine


def generic(name: str, command: str, **extra: Any) -> dict[str, Any]:
    payload = {"command": command}
    payload.update(extra.pop("payload", {}))
    return {"name": name, "type": "generic", "payload": payload, **extra}


def workflow(*tasks: dict[str, Any], name: str = "test", **config: Any) -> dict[str, Any]:
    definition: dict[str, Any] = {"name": name, "tasks": list(tasks)}
    if config:
        definition["config"] = config
    return definition


async def run(engine: Engine, definition: dict[str, Any], timeout: float = 30) -> WorkflowView:
    view = await engine.flowctl.submit(definition, "tester")
    return await engine.flowctl.wait(view.id, timeout)


async def until(condition: Callable[[], bool], timeout: float = 10, what: str = "") -> None:
    """Wait (bounded) until `condition()` holds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)
    assert condition(), what


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ')'
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


__all__ = ["generic", "group_members", "read_pid", "run", "until", "workflow"]
