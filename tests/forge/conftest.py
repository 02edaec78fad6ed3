"""A real engine with the forge on a temporary data dir; helpers to install pipeline flows."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from flowdeck.core.forge import Release
from flowdeck.engine.engine import Engine
from helpers import open_engine

SHA = "abc123def456"


async def open_forge(data_dir: Path, **forge: Any) -> Engine:
    return await open_engine(data_dir, extra={"forge": forge})


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    eng = await open_forge(tmp_path / "data")
    try:
        yield eng
    finally:
        await eng.close()


async def install(engine: Engine, source: str) -> None:
    await engine.apply_flow(textwrap.dedent(source))


def sha(n: int) -> str:
    """A distinct commit SHA per number."""
    return f"{n:040x}"


async def release(engine: Engine, n: int = 1, *, by: str = "alice",
                  repository: str = "acme/shop", project: str = "api",
                  **kwargs: Any) -> Release:
    return await engine.forge.create_release(repository, project, sha(n), [
        {"name": "api", "type": "container",
         "tracking_oci_uri": f"registry.example.com/acme/shop/api:{sha(n)[:12]}",
         "primary_published_uri": "registry.example.com/acme/shop/api:latest"}],
        by=by, **kwargs)
