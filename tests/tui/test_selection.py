"""The cursor stays on its item (an execution, an approval) while rows move under it, and an
action acts on nothing when the item has left the list.

Live updates insert and remove rows all the time; an action (`r`, `R`, `a`, `x`, ctrl+k) must
land on the item the operator was looking at, never on whichever took its row number.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.core.clock import ManualClock
from flowdeck.core.states import is_terminal
from flowdeck.tui.screens import executions as executions_module
from flowdeck.tui.screens.approvals import ApprovalsScreen
from flowdeck.tui.screens.executions import ExecutionsScreen
from flowdeck.tui.widgets.confirm import ConfirmScreen, DecisionScreen
from tui.deck_flows import APPROVAL, FAIL, HELLO
from tui.deck_helpers import make_app, screen_text, wait_for


async def settled(backend: EmbeddedBackend, ids: list[str]) -> None:
    for _ in range(1000):
        states = [(await backend.get_execution(i)).state.current for i in ids]
        if all(is_terminal(s) or s == "PAUSED" for s in states):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("executions did not settle")


def toasted(app: object, text: str) -> bool:
    return any(text in str(n.message) for n in app._notifications)  # type: ignore[attr-defined]


async def test_execution_cursor_follows_its_item(backend: EmbeddedBackend, clock: ManualClock,
                                                 tmp_path: Path) -> None:
    await backend.apply_flow(HELLO)
    await backend.apply_flow(FAIL)
    bad = await backend.create_execution("team.alpha", "broken")
    ok = await backend.create_execution("team.alpha", "hello")
    await settled(backend, [bad.id, ok.id])
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen: ExecutionsScreen = await wait_for(
            lambda: isinstance(app.screen, ExecutionsScreen) and app.screen)
        await wait_for(lambda: screen.source.total == 2 and screen.table.current_key() == ok.id)
        await pilot.press("down")
        await wait_for(lambda: screen.table.current_key() == bad.id)
        # two new runs are listed above it: the cursor moves down with the failed run
        new = [await backend.create_execution("team.alpha", "hello") for _ in range(2)]
        await settled(backend, [n.id for n in new])
        await wait_for(lambda: screen.source.total == 4, message="new rows")
        await wait_for(lambda: screen.table.cursor == 3 and screen.table.current_key() == bad.id)
        # re-sorted (by state, then reversed): still the failed run
        await pilot.press("s")
        await wait_for(lambda: "sort: state" in screen_text(app))
        await wait_for(lambda: screen.source.execution(3) is not None
                       and screen.source.execution(3).id == bad.id)
        await wait_for(lambda: screen.table.current_key() == bad.id)
        await pilot.press("S")
        await wait_for(lambda: screen.source.execution(0) is not None
                       and screen.source.execution(0).id == bad.id)
        await wait_for(lambda: screen.table.cursor == 0 and screen.table.current_key() == bad.id)
        # a filter that keeps it keeps it selected; one that drops it selects nothing
        await pilot.press("slash", *"state:FAILED", "enter")
        await wait_for(lambda: screen.source.total == 1 and screen.table.current_key() == bad.id)
        await pilot.press("escape")
        await wait_for(lambda: screen.source.total == 4 and screen.table.current_key() == bad.id)
        await pilot.press("slash", *"state:SUCCESS", "enter")
        await wait_for(lambda: screen.source.total == 3 and not screen.table.has_selection)
        assert screen.table.current_key() is None
        await pilot.press("r")  # nothing selected: no dialog, no restart
        await wait_for(lambda: toasted(app, "nothing selected"))
        assert app.screen is screen
        await pilot.press("down")  # moving selects again
        await wait_for(lambda: screen.table.current_key() is not None)
        assert screen.table.current_key() != bad.id
    restarted = await backend.get_execution(bad.id)
    assert not any(h.state == "RESTARTED" for h in restarted.state.histories)


async def test_cursor_finds_its_execution_beyond_the_loaded_pages(
        backend: EmbeddedBackend, clock: ManualClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executions_module, "PAGE", 4)  # 11 runs: 3 pages
    await backend.apply_flow(HELLO)
    await backend.apply_flow(FAIL)
    runs = [await backend.create_execution("team.alpha", "hello") for _ in range(10)]
    bad = await backend.create_execution("team.alpha", "broken")  # the newest
    await settled(backend, [r.id for r in runs] + [bad.id])
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen: ExecutionsScreen = await wait_for(
            lambda: isinstance(app.screen, ExecutionsScreen) and app.screen)
        await wait_for(lambda: screen.source.total == 11 and screen.table.current_key() == bad.id)
        # sorted by flow, descending: "hello" x10 first, "broken" last, on the third page
        await pilot.press("s", "s")
        await wait_for(lambda: "sort: flow" in screen_text(app))
        await wait_for(lambda: screen.table.cursor == 10 and screen.table.current_key() == bad.id,
                       message="the cursor on the failed run, last")


async def test_approval_cursor_and_marks_follow_their_items(
        backend: EmbeddedBackend, clock: ManualClock, tmp_path: Path) -> None:
    await backend.apply_flow(APPROVAL)
    first = await backend.create_execution("team.alpha", "gate")
    for _ in range(500):
        if await backend.list_approvals("pending"):
            break
        await asyncio.sleep(0.02)
    clock.advance(timedelta(minutes=1))
    second = await backend.create_execution("team.alpha", "gate")
    for _ in range(500):
        pending = await backend.list_approvals("pending")
        if len(pending) == 2:
            break
        await asyncio.sleep(0.02)
    by_execution = {a.execution_id: a for a in pending}
    older, newer = by_execution[first.id], by_execution[second.id]
    app = make_app(backend, clock, tmp_path, initial="approvals")
    async with app.run_test(size=(120, 40)) as pilot:
        queue: ApprovalsScreen = await wait_for(
            lambda: isinstance(app.screen, ApprovalsScreen) and app.screen)
        await wait_for(lambda: queue.source.row_count() == 2)
        await pilot.press("down", "space")  # mark the newer (the cursor then stays on it)
        await wait_for(lambda: queue.table.marked == {newer.id})
        await pilot.press("up")
        await wait_for(lambda: queue.table.current_key() == older.id)
        await pilot.press("down")
        await wait_for(lambda: queue.table.current_key() == newer.id)
        # the older one is decided elsewhere: the row above goes, the cursor stays on its item
        await backend.decide(older.id, approve=True, by="alice")
        await wait_for(lambda: queue.source.row_count() == 1)
        await wait_for(lambda: queue.table.cursor == 0 and queue.table.current_key() == newer.id)
        assert queue.table.marked == {newer.id}
        # now the selected one is decided elsewhere: nothing is selected, `a` does nothing
        await backend.decide(newer.id, approve=False, by="bob", comment="no")
        await wait_for(lambda: queue.source.row_count() == 0)
        assert queue.table.current_key() is None and not queue.table.marked
        await pilot.press("a")
        await wait_for(lambda: toasted(app, "nothing selected"))
        assert not isinstance(app.screen, DecisionScreen | ConfirmScreen)
