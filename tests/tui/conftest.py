"""Deck test fixtures: a real EmbeddedBackend on tmp_path, a fixed clock and ids, no mocks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual.widgets import Input

from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.core.clock import ManualClock
from tui.deck_helpers import START, make_backend


@pytest.fixture(autouse=True)
def _no_cursor_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None, raising=False)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def backend(tmp_path: Path, clock: ManualClock) -> AsyncIterator[EmbeddedBackend]:
    b = make_backend(tmp_path / "data", clock)
    await b.connect()
    try:
        yield b
    finally:
        await b.close()
