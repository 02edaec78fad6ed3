"""A real engine with FlowCtl configured: ETL locations mapped onto temporary files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from flowdeck.engine.engine import Engine
from helpers import open_engine


def flowctl_extra(root: Path, **overrides: Any) -> dict[str, Any]:
    """`extra["flowctl"]`: the spec's example locations mapped under `root`."""
    extra: dict[str, Any] = {
        "etl": {"locations": {"s3://bucket": f"file://{root}/bucket",
                              "postgres://db": f"sqlite://{root}/db.sqlite"}},
    }
    extra.update(overrides)
    return extra


@pytest.fixture
def files(tmp_path: Path) -> Path:
    root = tmp_path / "files"
    (root / "bucket").mkdir(parents=True)
    return root


@pytest.fixture
async def engine(tmp_path: Path, files: Path) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path / "data", extra={"flowctl": flowctl_extra(files)})
    try:
        yield eng
    finally:
        await eng.close()
