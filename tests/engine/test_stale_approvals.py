"""An approval never outlives its execution's run: a kill expires it, a restart asks again, and
no status change crosses a decision."""

from __future__ import annotations

import pytest

from flowdeck.core.errors import ConflictError
from flowdeck.engine.engine import Engine
from helpers import apply, wait_for_state, wait_for_task_state

FLOW = """
    id: release
    namespace: t.stale
    tasks:
      - id: review
        type: flowdeck.approval.Request
        title: Ship it?
      - id: ship
        type: io.kestra.plugin.core.log.Log
        message: shipped
    """


async def pending(engine: Engine, execution_id: str) -> str:
    await wait_for_task_state(engine, execution_id, "review", "PAUSED")
    found = await engine.approvals.list("pending", execution_id=execution_id)
    assert len(found) == 1
    return found[0].id


async def test_kill_expires_the_approval_and_a_restart_asks_again(engine: Engine) -> None:
    await apply(engine, FLOW)
    execution = await engine.create_execution("t.stale", "release")
    first = await pending(engine, execution.id)
    await engine.kill(execution.id)
    # Expired as the kill is acknowledged, before the run has even wound down.
    expired = await engine.approvals.get(first)
    assert (expired.status, expired.decided_by) == ("expired", None)
    assert expired.comment == f"execution {execution.id} was killed"
    with pytest.raises(ConflictError, match="was killed") as late:
        await engine.approvals.decide(first, approve=True, by="ada")
    assert late.value.details["approvalStatus"] == "expired"
    killed = await engine.wait_until_terminal(execution.id, 10)
    assert killed.state.current == "KILLED"
    # A restart asks again: a fresh approval, the old one stays expired.
    await engine.restart(execution.id)
    second = await pending(engine, execution.id)
    assert second != first
    assert (await engine.approvals.get(first)).status == "expired"
    await engine.approvals.decide(second, approve=True, by="ada")
    done = await engine.wait_until_terminal(execution.id, 10)
    assert done.state.current == "SUCCESS"
    review = next(tr for tr in done.task_runs if tr.task_id == "review")
    assert review.outputs is not None and review.outputs["approvalId"] == second


async def test_a_restart_after_a_rejection_asks_again(engine: Engine) -> None:
    await apply(engine, FLOW)
    execution = await engine.create_execution("t.stale", "release")
    first = await pending(engine, execution.id)
    await engine.approvals.decide(first, approve=False, by="bob", comment="not now")
    rejected = await engine.wait_until_terminal(execution.id, 10)
    assert rejected.state.current == "CANCELLED"
    await engine.restart(execution.id)
    second = await pending(engine, execution.id)
    assert second != first
    assert (await engine.approvals.get(first)).status == "rejected"
    await engine.approvals.decide(second, approve=False, by="bob", comment="still no")
    assert (await engine.wait_until_terminal(execution.id, 10)).state.current == "CANCELLED"


async def test_change_status_never_crosses_a_decision(engine: Engine) -> None:
    await apply(engine, FLOW)
    execution = await engine.create_execution("t.stale", "release")
    approval = await pending(engine, execution.id)
    await engine.approvals.decide(approval, approve=False, by="bob", comment="no")
    await engine.wait_until_terminal(execution.id, 10)
    for status in ("SUCCESS", "WARNING"):
        with pytest.raises(ConflictError, match="rejected by bob") as refused:
            await engine.change_status(execution.id, status)
        assert refused.value.details["approvalId"] == approval
    assert (await engine.get_execution(execution.id)).state.current == "CANCELLED"
    assert (await engine.change_status(execution.id, "FAILED")).state.current == "FAILED"
    # An expired gate (killed) cannot be passed by a status change either.
    other = await engine.create_execution("t.stale", "release")
    await pending(engine, other.id)
    await engine.kill_and_wait(other.id)
    with pytest.raises(ConflictError, match="expired"):
        await engine.change_status(other.id, "SUCCESS")
    # An approved one can.
    third = await engine.create_execution("t.stale", "release")
    await engine.approvals.decide(await pending(engine, third.id), approve=True, by="ada")
    await wait_for_state(engine, third.id, "SUCCESS")
    assert (await engine.change_status(third.id, "WARNING")).state.current == "WARNING"
