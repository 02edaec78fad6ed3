"""Approvals queue/detail/decisions/conflicts and the flows list/detail/run form."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button, Checkbox, Input

from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.core.clock import ManualClock
from flowdeck.tui.screens.approvals import ApprovalScreen, ApprovalsScreen
from flowdeck.tui.screens.execution import ExecutionScreen
from flowdeck.tui.screens.flows import FlowScreen, FlowsScreen, RunFormScreen
from flowdeck.tui.widgets.confirm import DecisionScreen
from tui.deck_flows import APPROVAL, COMMENTED, HELLO
from tui.deck_helpers import both_backends, make_app, screen_text, wait_for


async def pending(backend: EmbeddedBackend, n: int) -> list:  # type: ignore[type-arg]
    async def ready() -> list:  # type: ignore[type-arg]
        return await backend.list_approvals("pending")
    import asyncio
    for _ in range(500):
        items = await ready()
        if len(items) >= n:
            return items
        await asyncio.sleep(0.02)
    raise AssertionError("approvals not created")


@both_backends
async def test_approve_with_comment_and_conflict(backend: EmbeddedBackend, clock: ManualClock,
                                                 tmp_path: Path) -> None:
    await backend.apply_flow(APPROVAL)
    ex = await backend.create_execution("team.alpha", "gate")
    [approval] = await pending(backend, 1)
    app = make_app(backend, clock, tmp_path, initial="approvals")
    async with app.run_test(size=(120, 40)) as pilot:
        queue = await wait_for(lambda: isinstance(app.screen, ApprovalsScreen) and app.screen)
        await wait_for(lambda: queue.source.row_count() == 1)
        assert "Ship 1.2.3?" in screen_text(app)
        await pilot.press("enter")
        detail = await wait_for(lambda: isinstance(app.screen, ApprovalScreen) and app.screen)
        await wait_for(lambda: detail.execution is not None)
        text = screen_text(app)
        # rows under their displayFields only; context: flow, inputs, execution so far
        assert "service" in text and "risk" in text and "high" in text
        assert "hidden" not in text
        assert "team.alpha.gate" in text and '"release": "1.2.3"' in text
        assert "Execution so far" in text
        await pilot.press("a")
        prompt = await wait_for(lambda: isinstance(app.screen, DecisionScreen) and app.screen)
        # the dialog names the approval in full: titles repeat
        text = screen_text(app)
        assert ex.id in text and "team.alpha.gate" in text and "2 rows" in text
        assert "requested by started via api" in text
        # while this reviewer types, someone else decides (another reviewer, the CLI)
        await backend.decide(approval.id, approve=False, by="alice", comment="not today")
        await pilot.press(*"ship it", "enter")  # enter leaves the box for the buttons...
        await wait_for(lambda: isinstance(app.focused, Button) and app.focused.id == "cancel")
        assert app.screen is prompt  # ...where No is the default
        await pilot.press("y")
        await wait_for(lambda: app.screen is detail)
        await wait_for(lambda: detail.conflict is not None, message="conflict shown")
        text = screen_text(app)
        assert "REJECTED by alice" in text and "already rejected by alice" in text
        final = await backend.get_approval(approval.id)
        assert final.status == "rejected" and final.decided_by == "alice"  # never overwritten
        assert prompt is not None and ex.id
        await pilot.press("a")  # decided: approve is disabled now, nothing opens
        assert app.screen is detail


@both_backends
async def test_reject_requires_comment_where_required(backend: EmbeddedBackend,
                                                      clock: ManualClock,
                                                      tmp_path: Path) -> None:
    await backend.apply_flow(COMMENTED)
    await backend.create_execution("team.beta", "strict-gate")
    [approval] = await pending(backend, 1)
    app = make_app(backend, clock, tmp_path, initial="approvals")
    async with app.run_test(size=(80, 24)) as pilot:
        queue = await wait_for(lambda: isinstance(app.screen, ApprovalsScreen) and app.screen)
        await wait_for(lambda: queue.source.row_count() == 1)
        await pilot.press("x")
        prompt = await wait_for(lambda: isinstance(app.screen, DecisionScreen) and app.screen)
        await pilot.press("enter", "y")  # empty: refused, the prompt stays
        await wait_for(lambda: "required" in str(prompt.query_one("#problem").render()))
        assert app.screen is prompt
        await pilot.press(*"bad timing", "ctrl+s")
        await wait_for(lambda: queue.source.row_count() == 0, message="decided")
        final = await backend.get_approval(approval.id)
        assert (final.status, final.decided_by, final.comment) == ("rejected", "tester",
                                                                   "bad timing")


@both_backends
async def test_bulk_approve_marked(backend: EmbeddedBackend, clock: ManualClock,
                                   tmp_path: Path) -> None:
    await backend.apply_flow(APPROVAL)
    await backend.create_execution("team.alpha", "gate")
    await backend.create_execution("team.alpha", "gate")
    await pending(backend, 2)
    app = make_app(backend, clock, tmp_path, initial="approvals")
    async with app.run_test(size=(80, 24)) as pilot:
        queue = await wait_for(lambda: isinstance(app.screen, ApprovalsScreen) and app.screen)
        await wait_for(lambda: queue.source.row_count() == 2)
        await pilot.press("space", "space", "A")
        dialog = await wait_for(lambda: isinstance(app.screen, DecisionScreen) and app.screen)
        text = str(dialog.query_one("#items").render())  # one dialog names both
        assert text.count("Ship 1.2.3?") == 2 and text.count("execution ") == 2
        await pilot.press("enter", "enter")  # enter twice: Cancel, nothing approved
        await wait_for(lambda: app.screen is queue)
        assert len(await backend.list_approvals("pending")) == 2
        await pilot.press("A")
        await wait_for(lambda: isinstance(app.screen, DecisionScreen))
        await pilot.press("ctrl+s")
        await wait_for(lambda: queue.source.row_count() == 0, message="both approved")
        assert not await backend.list_approvals("pending")
        await wait_for(lambda: app.pending_approvals == 0)


@both_backends
async def test_flows_list_detail_and_run_form(backend: EmbeddedBackend, clock: ManualClock,
                                              tmp_path: Path) -> None:
    await backend.apply_flow(HELLO)
    await backend.create_execution("team.alpha", "hello")
    app = make_app(backend, clock, tmp_path, initial="flows")
    async with app.run_test(size=(120, 40)) as pilot:
        flows = await wait_for(lambda: isinstance(app.screen, FlowsScreen) and app.screen)
        await wait_for(lambda: flows.source.row_count() == 1 and flows.recent)
        await wait_for(lambda: "SUCCESS" in screen_text(app))
        await pilot.press("enter")
        detail = await wait_for(lambda: isinstance(app.screen, FlowScreen) and app.screen)
        await wait_for(lambda: detail.flow is not None)
        assert "type: io.kestra.plugin.core.log.Log" in screen_text(app)
        await pilot.press("ctrl+o")
        form = await wait_for(lambda: isinstance(app.screen, RunFormScreen) and app.screen)
        name = form.query_one("#in-0", Input)
        assert name.value == "world"  # the default
        assert isinstance(form.query_one("#in-1"), Checkbox)
        name.value = ""
        name.insert_text_at_cursor("deck")
        await pilot.press("ctrl+s")
        run = await wait_for(lambda: isinstance(app.screen, ExecutionScreen) and app.screen)
        await wait_for(lambda: run.execution is not None
                       and run.execution.state.current == "SUCCESS")
        assert run.execution.inputs["name"] == "deck"


async def test_flows_filter_as_you_type_and_esc_clears_it(backend: EmbeddedBackend,
                                                          clock: ManualClock,
                                                          tmp_path: Path) -> None:
    await backend.apply_flow(HELLO)
    await backend.apply_flow(HELLO.replace("id: hello", "id: goodbye"))
    app = make_app(backend, clock, tmp_path, initial="flows")
    async with app.run_test(size=(120, 40)) as pilot:
        flows = await wait_for(lambda: isinstance(app.screen, FlowsScreen) and app.screen)
        await wait_for(lambda: flows.source.row_count() == 2)
        await pilot.press("slash", *"good")
        await wait_for(lambda: flows.source.row_count() == 1, message="filtered")
        assert flows.filter_text == "good"
        await pilot.press("enter", "escape")
        await wait_for(lambda: flows.source.row_count() == 2 and not flows.filter_text,
                       message="filter cleared")
