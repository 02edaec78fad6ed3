"""Pause/resume with inputs, pauseDuration, and the approval gate's first-decision-wins rule."""

from __future__ import annotations

import asyncio

import pytest

from flowdeck.core.errors import ConflictError, InvalidInputsError, ValidationError
from flowdeck.engine.bus import APPROVAL
from flowdeck.engine.engine import Engine
from helpers import apply, wait_for_state

PAUSE_FLOW = """
    id: gate
    namespace: t.pause
    tasks:
      - id: hold
        type: io.kestra.plugin.core.flow.Pause
        onResume:
          - id: reason
            type: STRING
          - id: count
            type: INT
            defaults: 1
      - id: after
        type: io.kestra.plugin.core.debug.Return
        format: "{{ outputs.hold.onResume.reason }} x{{ outputs.hold.onResume.count }}"
    """


async def test_pause_then_resume_with_inputs(engine: Engine) -> None:
    await apply(engine, PAUSE_FLOW)
    execution = await engine.create_execution("t.pause", "gate")
    paused = await wait_for_state(engine, execution.id, "PAUSED")
    assert paused.task_runs[0].state.current == "PAUSED"
    assert paused.state.end_date is not None  # PAUSED carries an endDate, as in Kestra
    with pytest.raises(InvalidInputsError) as missing:
        await engine.resume(execution.id, {})
    assert "onResume.reason: is required" in str(missing.value)
    with pytest.raises(InvalidInputsError):
        await engine.resume(execution.id, {"reason": "ok", "count": "many"})
    await engine.resume(execution.id, {"reason": "looks good", "count": "3"})
    final = await engine.wait_until_terminal(execution.id, 10)
    assert final.state.current == "SUCCESS"
    assert final.task_runs[0].outputs == {"onResume": {"reason": "looks good", "count": 3}}
    assert final.task_runs[1].outputs == {"value": "looks good x3"}
    assert [h.state for h in final.state.histories] == [
        "CREATED", "RUNNING", "PAUSED", "RUNNING", "SUCCESS"]
    with pytest.raises(ConflictError):
        await engine.resume(execution.id, {"reason": "again"})


async def test_pause_duration_resumes_by_itself(engine: Engine) -> None:
    await apply(engine, """
        id: timed
        namespace: t.pause
        tasks:
          - id: hold
            type: io.kestra.plugin.core.flow.Pause
            pauseDuration: PT0.2S
            onResume:
              - id: reason
                type: STRING
                defaults: timer
        """)
    execution = await engine.create_execution("t.pause", "timed")
    final = await engine.wait_until_terminal(execution.id, 10)
    assert final.state.current == "SUCCESS"
    assert final.task_runs[0].outputs == {"onResume": {"reason": "timer"}}


async def test_human_resume_beats_the_pause_timer(engine: Engine) -> None:
    await apply(engine, """
        id: race
        namespace: t.pause
        tasks:
          - id: hold
            type: io.kestra.plugin.core.flow.Pause
            pauseDuration: PT0.3S
            onResume:
              - id: reason
                type: STRING
                defaults: timer
        """)
    execution = await engine.create_execution("t.pause", "race")
    await wait_for_state(engine, execution.id, "PAUSED")
    await engine.resume(execution.id, {"reason": "human"})
    final = await engine.wait_until_terminal(execution.id, 10)
    assert final.task_runs[0].outputs == {"onResume": {"reason": "human"}}
    assert [h.state for h in final.task_runs[0].state.histories].count("PAUSED") == 1


APPROVAL_FLOW = """
    id: release
    namespace: t.approve
    tasks:
      - id: review
        type: flowdeck.approval.Request
        title: "Ship {{{{ inputs.version }}}}?"
        description: three services
        displayFields: [service, to]
        requireComment: {require}
        allowBulkApproval: true
        rows:
          - {{service: api, to: "1.2"}}
          - {{service: web, to: "3.4"}}
      - id: ship
        type: io.kestra.plugin.core.debug.Return
        format: "approved by {{{{ outputs.review.decidedBy }}}}"
    inputs:
      - id: version
        type: STRING
        defaults: "2026.1"
    """


async def test_approve_resumes_and_records_who(engine: Engine) -> None:
    await apply(engine, APPROVAL_FLOW.format(require="false"))
    events = engine.subscribe(APPROVAL)
    execution = await engine.create_execution("t.approve", "release")
    await wait_for_state(engine, execution.id, "PAUSED")
    created = await events.get(5)
    assert created.kind == "created"
    pending = await engine.approvals.list("pending")
    assert len(pending) == 1
    approval = pending[0]
    assert approval.title == "Ship 2026.1?"
    assert approval.rows == [{"service": "api", "to": "1.2"}, {"service": "web", "to": "3.4"}]
    assert approval.display_fields == ["service", "to"]
    decided = await engine.approvals.decide(approval.id, approve=True, by="ada",
                                            comment="ship it")
    assert (decided.status, decided.decided_by, decided.comment) == ("approved", "ada", "ship it")
    final = await engine.wait_until_terminal(execution.id, 10)
    assert final.state.current == "SUCCESS"
    assert final.task_runs[1].outputs == {"value": "approved by ada"}
    events.close()


async def test_reject_cancels_with_comment_and_comment_can_be_required(engine: Engine) -> None:
    await apply(engine, APPROVAL_FLOW.format(require="true"))
    execution = await engine.create_execution("t.approve", "release")
    await wait_for_state(engine, execution.id, "PAUSED")
    approval = (await engine.approvals.list("pending"))[0]
    with pytest.raises(ValidationError):
        await engine.approvals.decide(approval.id, approve=False, by="bob", comment="  ")
    await engine.approvals.decide(approval.id, approve=False, by="bob", comment="not today")
    final = await engine.wait_until_terminal(execution.id, 10)
    assert final.state.current == "CANCELLED"
    stored = await engine.approvals.get(approval.id)
    assert (stored.status, stored.comment, stored.decided_by) == ("rejected", "not today", "bob")
    messages = [e.message for e in await engine.logs.fetch(final.id)]
    assert "rejected by bob: not today" in messages


async def test_two_concurrent_decisions_exactly_one_wins(engine: Engine) -> None:
    await apply(engine, APPROVAL_FLOW.format(require="false"))
    execution = await engine.create_execution("t.approve", "release")
    await wait_for_state(engine, execution.id, "PAUSED")
    approval = (await engine.approvals.list("pending"))[0]
    results = await asyncio.gather(
        engine.approvals.decide(approval.id, approve=True, by="ada"),
        engine.approvals.decide(approval.id, approve=False, by="bob", comment="no"),
        return_exceptions=True)
    wins = [r for r in results if not isinstance(r, BaseException)]
    losses = [r for r in results if isinstance(r, ConflictError)]
    assert len(wins) == 1 and len(losses) == 1
    winner = wins[0]
    assert winner.decided_by in str(losses[0]) and "already" in str(losses[0])
    assert losses[0].details["decidedBy"] == winner.decided_by
    final = await engine.wait_until_terminal(execution.id, 10)
    assert final.state.current == ("SUCCESS" if winner.status == "approved" else "CANCELLED")


async def test_expiry_fails_the_task_but_never_overrides_a_person(engine: Engine) -> None:
    await apply(engine, """
        id: expiring
        namespace: t.approve
        tasks:
          - id: review
            type: flowdeck.approval.Request
            title: quick
            expiresIn: PT0.2S
        """)
    lapsed = await engine.create_execution("t.approve", "expiring")
    final = await engine.wait_until_terminal(lapsed.id, 10)
    assert final.state.current == "FAILED"
    approval = (await engine.approvals.list(None, execution_id=lapsed.id))[0]
    assert approval.status == "expired" and approval.decided_by is None
    with pytest.raises(ConflictError) as late:
        await engine.approvals.decide(approval.id, approve=True, by="late")
    assert "expired" in str(late.value)


async def test_kill_a_paused_execution_even_when_every_slot_is_busy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from helpers import open_engine

    eng = await open_engine(tmp_path / "d", max_concurrent_executions=1)
    try:
        await apply(eng, PAUSE_FLOW)
        await apply(eng, """
            id: busy
            namespace: t.pause
            tasks:
              - id: nap
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT30S
            """)
        paused = await eng.create_execution("t.pause", "gate")
        await wait_for_state(eng, paused.id, "PAUSED")
        busy = await eng.create_execution("t.pause", "busy")  # takes the only slot
        await wait_for_state(eng, busy.id, "RUNNING")
        await eng.kill(paused.id)
        final = await eng.wait_until_terminal(paused.id, 5)
        assert final.state.current == "KILLED"
        assert final.task_runs[0].state.current == "KILLED"
        await eng.kill(busy.id)
        assert (await eng.wait_until_terminal(busy.id, 5)).state.current == "KILLED"
    finally:
        await eng.close()


async def test_manual_pause_shows_at_once_and_holds_the_next_task(engine: Engine) -> None:
    await apply(engine, """
        id: manual
        namespace: t.pause
        tasks:
          - id: nap
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT0.3S
          - id: after
            type: io.kestra.plugin.core.log.Log
            message: after
        """)
    execution = await engine.create_execution("t.pause", "manual")
    await wait_for_state(engine, execution.id, "RUNNING")
    paused = await engine.pause(execution.id)
    assert paused.state.current == "PAUSED"
    runner = engine._launcher.runner(execution.id)
    assert runner is not None
    nap = runner.execution.task_runs[0]
    sub = engine.subscribe("execution", execution_id=execution.id)
    try:
        async with asyncio.timeout(5):
            while nap.state.current != "SUCCESS":
                await sub.get()
    finally:
        sub.close()
    assert [tr.task_id for tr in runner.execution.task_runs] == ["nap"]  # held
    resumed = await engine.resume(execution.id)
    assert resumed.state.current in ("RUNNING", "SUCCESS")  # the last task is quick
    final = await engine.wait_until_terminal(execution.id, 10)
    assert final.state.current == "SUCCESS"
    assert [h.state for h in final.state.histories] == [
        "CREATED", "RUNNING", "PAUSED", "RUNNING", "SUCCESS"]
