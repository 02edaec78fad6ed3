"""A real engine process for the outbox crash test: emits one event whose delivery goes to
the receiver URL given, then waits; the parent SIGKILLs it while the request is in flight.

Run as `python outbox_child.py DATA_DIR RECEIVER_URL`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

import aiosqlite

from flowdeck.engine.engine import Engine, EngineSettings
from flowdeck.engine.events import NewEvent, Target


class Receiver:
    def __init__(self, url: str) -> None:
        self.url = url

    def targets(self, conn: sqlite3.Connection, event: NewEvent) -> list[Target]:
        return [Target("receiver", self.url, "secret")]


async def main(data_dir: Path, url: str) -> None:
    engine = await Engine.open(EngineSettings(
        data_dir=data_dir, scheduler=False, envs={},
        extra={"webhooks": {"allow_private_targets": True}}))
    engine.events.resolvers.append(Receiver(url))

    async def op(conn: aiosqlite.Connection) -> None:
        await engine.events.append(conn, [NewEvent("thing.happened", "test",
                                                   {"event": "thing.happened"})])

    await engine.store.run(op)
    print("emitted", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
