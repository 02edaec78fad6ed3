"""`create_execution(admit=...)`: the hook the public API charges usage in runs inside the
transaction that inserts the execution, so what it writes exists exactly when the execution
does (refused, or a duplicate trigger key, leaves nothing)."""

from __future__ import annotations

import aiosqlite
import pytest

from flowdeck.core.errors import ConflictError, PermissionDenied
from flowdeck.core.models import Execution
from flowdeck.engine.engine import Engine
from public.support import QUICK


async def test_admit_completes_refuses_or_rolls_back_with_the_insert(engine: Engine) -> None:
    await engine.apply_flow(QUICK)

    async def charge(conn: aiosqlite.Connection, execution: Execution) -> None:
        await conn.execute("CREATE TABLE IF NOT EXISTS charges (id TEXT)")
        await conn.execute("INSERT INTO charges VALUES (?)", (execution.id,))
        execution.set_label("system.charged", "yes")

    async def refuse(conn: aiosqlite.Connection, execution: Execution) -> None:
        await charge(conn, execution)
        raise PermissionDenied("no")

    first = await engine.create_execution("agents", "quick", admit=charge, trigger_key="k1")
    assert (await engine.get_execution(first.id)).label("system.charged") == "yes"
    with pytest.raises(PermissionDenied):
        await engine.create_execution("agents", "quick", admit=refuse)
    with pytest.raises(ConflictError, match="already exists"):
        await engine.create_execution("agents", "quick", admit=charge, trigger_key="k1")
    rows = await engine.store.fetchall("SELECT id FROM charges")
    assert [r[0] for r in rows] == [first.id]
    assert (await engine.store.fetchone("SELECT COUNT(*) FROM executions"))[0] == 1  # type: ignore[index]
    await engine.wait_until_terminal(first.id, timeout=15)
