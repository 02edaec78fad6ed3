"""Shared fixtures: a real engine on a temporary data directory, no mocks."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flowdeck.engine.engine import Engine
from helpers import open_engine

os.environ.setdefault("TZ", "UTC")


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path / "data")
    try:
        yield eng
    finally:
        await eng.close()
