"""Type-ahead: every key typed after `/` or `:` reaches the box, in order, however fast.

Keys that arrive in one read (a paste, a laggy SSH link) used to reach the list before the box
had the focus: `/r` restarted the run under the cursor, `/acme` opened "Approve" (and the next
enter approved), `:flows` ran `:lows`. `burst` posts every key before the app handles any,
as one terminal read does; the pty test writes the bytes in one write to a real terminal.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from textual import events
from textual.screen import ModalScreen

from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.core.clock import ManualClock
from flowdeck.engine.engine import Engine, EngineSettings
from flowdeck.tui.app import FlowdeckApp
from flowdeck.tui.screens.approvals import ApprovalsScreen
from flowdeck.tui.screens.execution import ExecutionScreen
from flowdeck.tui.screens.executions import ExecutionsScreen
from flowdeck.tui.screens.flows import FlowsScreen
from tui.deck_flows import APPROVAL, FAIL, HELLO
from tui.deck_helpers import make_app, wait_for
from tui.pty_deck import Deck

NAMES = {"/": "slash", ":": "colon", " ": "space", "\r": "enter", "?": "question_mark"}


def burst(app: FlowdeckApp, text: str) -> None:
    """Every key of `text` queued at once, before the app has handled the first."""
    for char in text:
        app.post_message(events.Key(NAMES.get(char, char), char))


def record_actions(app: FlowdeckApp) -> list[str]:
    """The actions the app runs from now on (bindings, palette, everything)."""
    fired: list[str] = []
    run_action = app.run_action

    async def recording(action: Any, *args: Any, **kwargs: Any) -> bool:
        fired.append(str(action))
        return await run_action(action, *args, **kwargs)

    app.run_action = recording  # type: ignore[method-assign]
    return fired


async def failed_run_listed(app: FlowdeckApp) -> ExecutionsScreen:
    screen: ExecutionsScreen = await wait_for(
        lambda: isinstance(app.screen, ExecutionsScreen) and app.screen)
    await wait_for(lambda: screen.source.execution(0) is not None
                   and screen.source.execution(0).state.current == "FAILED"
                   and screen.table.current_key() is not None)
    return screen


async def test_keys_after_slash_in_one_read_go_to_the_filter(
        backend: EmbeddedBackend, clock: ManualClock, tmp_path: Path) -> None:
    await backend.apply_flow(FAIL)
    bad = await backend.create_execution("team.alpha", "broken")
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(80, 24)):
        screen = await failed_run_listed(app)
        fired = record_actions(app)
        burst(app, "/rRsS ka")  # restart, replay, sort, reverse, mark, up, approve...
        await wait_for(lambda: screen.filter_text == "rRsS ka", message="the whole filter")
        assert fired == ["filter"], fired  # the one key that opened the box, nothing else
        assert app.screen is screen and app.focused is screen.filter_box
        burst(app, "\r")  # enter: back to the rows, the filter kept
        await wait_for(lambda: app.focused is screen.table)
    ex = await backend.get_execution(bad.id)
    assert [h.state for h in ex.state.histories] == ["CREATED", "RUNNING", "FAILED"]


async def test_pilot_keys_without_a_pause(backend: EmbeddedBackend, clock: ManualClock,
                                          tmp_path: Path) -> None:
    await backend.apply_flow(FAIL)
    await backend.create_execution("team.alpha", "broken")
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await failed_run_listed(app)
        fired = record_actions(app)
        await pilot.press("slash", "r", "R", "s", "colon", "q", "enter")
        await wait_for(lambda: app.focused is screen.table)
        assert screen.filter_text == "rRs:q" and fired == ["filter", "submit"], fired


async def test_filter_then_enter_never_decides_an_approval(
        backend: EmbeddedBackend, clock: ManualClock, tmp_path: Path) -> None:
    await backend.apply_flow(APPROVAL)
    await backend.create_execution("team.alpha", "gate")
    for _ in range(500):
        if await backend.list_approvals("pending"):
            break
        await asyncio.sleep(0.02)
    app = make_app(backend, clock, tmp_path, initial="approvals")
    async with app.run_test(size=(80, 24)):
        queue: ApprovalsScreen = await wait_for(
            lambda: isinstance(app.screen, ApprovalsScreen) and app.screen)
        await wait_for(lambda: queue.table.current_key() is not None)
        fired = record_actions(app)
        burst(app, "/acme\r")
        await wait_for(lambda: queue.filter_text == "acme" and app.focused is queue.table)
        assert fired == ["filter", "submit"], fired
        assert not isinstance(app.screen, ModalScreen)
        burst(app, "\r")  # nothing matches "acme": enter opens nothing, decides nothing
        await wait_for(lambda: len(fired) == 3)
        assert not isinstance(app.screen, ModalScreen)
    assert len(await backend.list_approvals("pending")) == 1


async def test_command_keys_in_one_read(backend: EmbeddedBackend, clock: ManualClock,
                                        tmp_path: Path) -> None:
    await backend.apply_flow(HELLO)
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(80, 24)):
        await wait_for(lambda: isinstance(app.screen, ExecutionsScreen)
                       and app.connection == "connected")
        # the command, then keys for the screen it opens: each lands where it was meant
        burst(app, ":flows\r/hel")
        flows: FlowsScreen = await wait_for(
            lambda: isinstance(app.screen, FlowsScreen) and app.screen)
        await wait_for(lambda: flows.filter_text == "hel", message="the keys after the command")
        burst(app, "\r:ap\r")
        await wait_for(lambda: isinstance(app.screen, ApprovalsScreen))
        assert not [n for n in app._notifications if "unknown command" in str(n.message)]


async def test_log_search_keys_in_one_read(backend: EmbeddedBackend, clock: ManualClock,
                                           tmp_path: Path) -> None:
    await backend.apply_flow(FAIL)
    bad = await backend.create_execution("team.alpha", "broken")
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(80, 24)):
        await wait_for(lambda: app.connection == "connected")
        app.push_screen(ExecutionScreen(bad.id))
        detail: ExecutionScreen = await wait_for(
            lambda: isinstance(app.screen, ExecutionScreen) and app.screen.is_mounted
            and app.focused is app.screen.log_view and app.screen)
        fired = record_actions(app)
        burst(app, "/fail wet\r")  # f, w, e, t are log keys: none may fire
        await wait_for(lambda: detail.search_text == "fail wet")
        assert fired == ["log_search", "submit"], fired  # the box's own enter
        assert detail.log_view.follow and not detail.log_view.wrap


async def seed_gate_then_failed(data_dir: Path) -> tuple[str, str]:
    """A run waiting for approval, then (newest, so under the cursor) a failed one."""
    engine = await Engine.open(EngineSettings(data_dir=data_dir, scheduler=False, envs={}))
    try:
        await engine.apply_flow(APPROVAL)
        await engine.apply_flow(FAIL)
        await engine.create_execution("team.alpha", "gate")
        for _ in range(500):
            pending = await engine.approvals.list("pending")
            if pending:
                break
            await asyncio.sleep(0.02)
        broken = await engine.create_execution("team.alpha", "broken")
        await engine.wait_until_terminal(broken.id, timeout=20)
        return broken.id, pending[0].id
    finally:
        await engine.close()


def test_keys_in_one_terminal_write(tmp_path: Path) -> None:
    """The deck in a real pty: each burst is one `write`, as a paste delivers it."""
    data_dir = tmp_path / "data"
    broken_id, approval_id = asyncio.run(seed_gate_then_failed(data_dir))
    deck = Deck(data_dir, tmp_path / "home")
    try:
        assert deck.wait_for_text("FAILED", 30), "the list never painted"
        assert deck.wait_for_text("updated 0s ago", 10)
        deck.write("/r")
        assert deck.wait_for_text("filter: r", 10), deck.text()[-2000:]
        deck.write("\r:ap\r/acme")  # enter, a command, then a filter on the screen it opens
        assert deck.wait_for_text("filter: acme", 10), deck.text()[-2000:]
        deck.write("\r")
        deck.write(":flows\r")
        assert deck.wait_for_text("Flows (", 10), deck.text()[-2000:]
        deck.write(":q\r")  # nothing runs (the gate waits): no question
        assert deck.wait_for(b"\x1b[?1049l", 10), "the deck did not quit"
        assert deck.wait_exit(30), "the deck left the screen but never exited"
    finally:
        code = deck.close()
    shown = deck.text()
    assert code == 0, shown[-2000:]
    for never in ("Restart 1 execution?", "Replay 1 execution?", "this approval?",
                  "unknown command"):
        assert never not in shown, never

    async def check() -> None:
        engine = await Engine.open(EngineSettings(data_dir=data_dir, scheduler=False,
                                                  envs={}), start=False)
        try:
            broken = await engine.get_execution(broken_id)
            assert [h.state for h in broken.state.histories] == ["CREATED", "RUNNING",
                                                                 "FAILED"]
            assert (await engine.approvals.get(approval_id)).status == "pending"
        finally:
            await engine.close()

    asyncio.run(check())
