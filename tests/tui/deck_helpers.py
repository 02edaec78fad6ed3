"""Helpers for the deck tests: a real EmbeddedBackend, a fixed clock and ids, wait_for."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flowdeck.client.backend import Backend
from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.client.http import HttpBackend
from flowdeck.core.clock import ManualClock
from flowdeck.core.ids import DeterministicIds
from flowdeck.engine.engine import Engine, EngineSettings
from flowdeck.tui.app import FlowdeckApp

os.environ["TZ"] = "UTC"
time.tzset()

START = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)

#: Run a deck test on both backends: the embedded engine and HTTP to a live server.
both_backends = pytest.mark.parametrize("backend", ["embedded", "http"], indirect=True)


def make_backend(data_dir: Path, clock: ManualClock | None = None) -> EmbeddedBackend:
    settings = EngineSettings(data_dir=data_dir, scheduler=False, envs={})
    return EmbeddedBackend(settings, clock=clock or ManualClock(START), ids=DeterministicIds())


@contextlib.asynccontextmanager
async def remote_backend(data_dir: Path, *, poll_interval: float = 0.2
                         ) -> AsyncIterator[HttpBackend]:
    """`HttpBackend` connected to a real `flowdeck` server on 127.0.0.1 (ephemeral port) over
    a real engine. The engine keeps the system clock: the HTTP watch compares change times
    with the wall clock, as it would against any remote server."""
    from live_server import start_server, stop_server

    engine = await Engine.open(EngineSettings(data_dir=data_dir, scheduler=False, envs={}))
    server, task, url = await start_server(engine)
    remote = HttpBackend(url, poll_interval=poll_interval)
    try:
        await remote.connect()
        yield remote
    finally:
        await remote.close()
        await stop_server(server, task)
        await engine.close()


def make_app(backend: Backend, clock: ManualClock, tmp_path: Path,
             **kwargs: Any) -> FlowdeckApp:
    kwargs.setdefault("show_toasts", True)
    return FlowdeckApp(backend, clock=clock, user="tester", save_dir=tmp_path,
                       refresh_seconds=kwargs.pop("refresh_seconds", 3600), **kwargs)


async def wait_for(predicate: Callable[[], Any], timeout: float = 10.0,
                   message: str = "") -> Any:
    """Poll app state until `predicate()` is truthy (never Pilot.pause in a live app)."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # a widget not mounted yet, etc.
            last_exc = exc
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {message or predicate}"
                         + (f" (last error: {last_exc!r})" if last_exc else ""))


def screen_text(app: FlowdeckApp) -> str:
    """What the terminal shows now, as plain text (the compositor's render)."""
    from rich.console import Console

    console = Console(width=app.size.width, height=app.size.height, record=True,
                      force_terminal=False, color_system=None, legacy_windows=False,
                      file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(app.screen._compositor.render_update(full=True), end="")
    return console.export_text()
