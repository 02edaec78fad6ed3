"""The storage health report: can the database be read, can it take a write right now, what
the writer last went through, and warnings about how this engine runs (served by `/health`)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from flowdeck.core.sanitize import valid_text

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine

#: How long a health check waits for its probe write (a busy store answers DOWN, not late).
PROBE_TIMEOUT_S = 2.0


async def storage_health(engine: Engine) -> dict[str, Any]:
    store = engine.store
    writer = store.health()
    readable = False
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            row = await store.fetchone("PRAGMA quick_check")
        readable = bool(row and row[0] == "ok")
    except Exception as exc:  # a locked or damaged file, a closed store
        writer["readError"] = valid_text(str(exc))
    can_write = False
    if store.read_only:  # opened beside the engine that owns the data dir: reading is all
        return {"status": "UP" if readable else "DOWN", "canWrite": False, "readOnly": True,
                "runningExecutions": 0, "writer": writer, "warnings": list(engine.warnings)}
    if writer["failingSince"] is None:  # failing now: no need to queue one more write
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                await store.probe()
            can_write = True
        except Exception as exc:
            writer["probeError"] = valid_text(str(exc)) or type(exc).__name__
    writer = store.health() | {k: v for k, v in writer.items() if k.endswith("Error")
                               and k not in ("lastError",)}
    return {
        "status": "UP" if readable and can_write else "DOWN",
        "canWrite": can_write,
        "runningExecutions": len(engine.running_ids()),
        "writer": writer,
        "warnings": list(engine.warnings),
    }
