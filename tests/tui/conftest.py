"""Deck test fixtures: a real backend on tmp_path, a fixed clock and ids, no mocks.

`backend` is the embedded engine by default. Tests decorated with `@both_backends` run twice:
once on `EmbeddedBackend`, once on `HttpBackend` pointed at a real `flowdeck` server on
loopback (`tests/live_server.start_server`) over a real engine on the same event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual.widgets import Input

from flowdeck.client.backend import Backend
from flowdeck.core.clock import ManualClock
from tui.deck_helpers import START, make_backend, remote_backend


@pytest.fixture(autouse=True)
def _no_cursor_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None, raising=False)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def backend(request: pytest.FixtureRequest, tmp_path: Path,
                  clock: ManualClock) -> AsyncIterator[Backend]:
    kind = getattr(request, "param", "embedded")
    if kind == "http":
        async with remote_backend(tmp_path / "data") as remote:
            yield remote
        return
    b = make_backend(tmp_path / "data", clock)
    await b.connect()
    try:
        yield b
    finally:
        await b.close()
