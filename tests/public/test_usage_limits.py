"""Monthly usage: counted in the transaction that creates the execution, so with a limit of N
exactly N of N+k concurrent executes pass, whatever the interleaving; per calendar month, UTC."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flowdeck.core.clock import ManualClock
from flowdeck.core.errors import PermissionDenied
from flowdeck.core.public import API_KEY_LABEL
from flowdeck.engine.query import ExecutionQuery
from public.support import QUICK, new_key, open_public_engine


@pytest.mark.parametrize(("limit", "extra"), [(1, 9), (5, 15), (20, 12)])
async def test_exactly_n_of_n_plus_k_concurrent_executes_pass(tmp_path: Path, limit: int,
                                                              extra: int) -> None:
    engine = await open_public_engine(tmp_path / "data", install=False)
    try:
        await engine.apply_flow(QUICK)
        key, _ = await new_key(engine, usage_limit=limit)
        other, _ = await new_key(engine, "other", usage_limit=limit)
        async with asyncio.timeout(30):
            outcomes = await asyncio.gather(
                *(engine.public.execute(key, "quick") for _ in range(limit + extra)),
                *(engine.public.execute(other, "quick") for _ in range(limit)),
                return_exceptions=True)
        mine, theirs = outcomes[:limit + extra], outcomes[limit + extra:]
        passed = [o for o in mine if not isinstance(o, BaseException)]
        refused = [o for o in mine if isinstance(o, BaseException)]
        assert len(passed) == limit and len(refused) == extra
        assert all(isinstance(o, PermissionDenied) and str(o) == "API key usage limit exceeded"
                   for o in refused)
        # the other key's month is its own
        assert not any(isinstance(o, BaseException) for o in theirs)
        # exactly the executions that passed exist, and the count says so
        found, total = await engine.search_executions(ExecutionQuery(
            namespace="agents", flow_id="quick", size=1000))
        assert total == 2 * limit
        assert sorted(e.id for e in found if e.label(API_KEY_LABEL) == key.id) == \
            sorted(p.execution_id for p in passed)  # type: ignore[union-attr]
        stored = await engine.public.get_key(key.id)
        assert stored.usage_this_month(engine.clock.now()) == limit
        for result in passed:
            await engine.wait_until_terminal(result.execution_id, timeout=30)  # type: ignore[union-attr]
    finally:
        await engine.close()


async def test_usage_is_per_calendar_month_utc(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2025, 10, 31, 23, 59, 0, tzinfo=UTC))
    engine = await open_public_engine(tmp_path / "data", clock=clock, install=False)
    try:
        await engine.apply_flow(QUICK)
        key, _ = await new_key(engine, usage_limit=2)
        await engine.public.execute(key, "quick")
        await engine.public.execute(key, "quick")
        with pytest.raises(PermissionDenied, match="usage limit exceeded"):
            await engine.public.execute(key, "quick")
        assert (await engine.public.get_key(key.id)).to_dict(clock.now())["usageCount"] == 2
        clock.set(datetime(2025, 11, 1, 0, 0, 1, tzinfo=UTC))  # a new month, in UTC
        shown = (await engine.public.get_key(key.id)).to_dict(clock.now())
        assert shown["usageCount"] == 0 and shown["usageMonth"] == "2025-11"
        await engine.public.execute(key, "quick")
        stored = await engine.public.get_key(key.id)
        assert (stored.usage_month, stored.usage_count) == ("2025-11", 1)
    finally:
        await engine.close()


async def test_refused_executes_count_nothing(tmp_path: Path) -> None:
    """Only an execution that exists is counted: a missing input, an unknown or inactive
    workflow leave the month as it was."""
    engine = await open_public_engine(tmp_path / "data")
    try:
        await engine.apply_flow(QUICK)
        key, _ = await new_key(engine, usage_limit=1)
        for workflow, body in (("workflow_bfsi_marketing_template", {}), ("missing", None)):
            with pytest.raises(Exception):  # noqa: B017 - which error is tested elsewhere
                await engine.public.execute(key, workflow, body)
        await engine.apply_flow(QUICK + "disabled: true\n")
        with pytest.raises(PermissionDenied, match="Workflow is inactive"):
            await engine.public.execute(key, "quick")
        assert (await engine.public.get_key(key.id)).usage_this_month(engine.clock.now()) == 0
        await engine.apply_flow(QUICK)
        await engine.public.execute(key, "quick")
        with pytest.raises(PermissionDenied, match="usage limit exceeded"):
            await engine.public.execute(key, "quick")
    finally:
        await engine.close()
