"""The engine itself, for the commands that are the engine's host (`serve`, `demo`) rather
than its clients."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from flowdeck.cli.common import UsageError
from flowdeck.cli.session import engine_settings, held_message
from flowdeck.config import Settings
from flowdeck.core.errors import EngineLockedError
from flowdeck.engine.engine import Engine


@asynccontextmanager
async def open_engine(settings: Settings, *, start: bool,
                      scheduler: bool = False) -> AsyncIterator[Engine]:
    """Open the engine; with start=False nothing runs until `engine.start()` (recovery).

    Commands validate what they were given before they start the engine, so a typo does not
    resume (and then cut short again) executions an earlier process left unfinished.
    """
    config = engine_settings(settings, scheduler=scheduler)
    try:
        engine = await Engine.open(config, start=start)
    except OSError as exc:
        raise UsageError(f"data dir {config.data_dir} cannot be used: "
                         f"{exc.strerror or exc}") from None
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"{config.data_dir / 'flowdeck.db'}: {exc}") from None
    except EngineLockedError as exc:
        raise UsageError(held_message(exc, config.data_dir)) from None
    try:
        yield engine
    finally:
        await engine.close()
