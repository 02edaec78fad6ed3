"""Quitting never stops work silently, a token's role hides what it may not do, and every
screen's header says within seconds that the server went away."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from flowdeck.client.backend import Backend, Capabilities
from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.client.http import HttpBackend
from flowdeck.core.clock import ManualClock
from flowdeck.engine.engine import Engine, EngineSettings
from flowdeck.tui.screens.approvals import ApprovalScreen, ApprovalsScreen
from flowdeck.tui.screens.executions import ExecutionsScreen
from flowdeck.tui.screens.help import HelpScreen
from flowdeck.tui.widgets.confirm import ConfirmScreen, DecisionScreen
from tui.deck_flows import APPROVAL, SLOW
from tui.deck_helpers import START, make_app, make_backend, screen_text, wait_for

NAP = """
id: nap
namespace: team.beta
tasks:
  - id: doze
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S
"""


async def running(backend: Backend, execution_id: str) -> None:
    for _ in range(1000):
        execution = await backend.get_execution(execution_id)
        if execution.task_runs and execution.task_runs[0].state.current == "RUNNING":
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the execution never ran")


async def test_quit_with_runs_in_progress_asks_and_says_what_happens(
        backend: EmbeddedBackend, clock: ManualClock, tmp_path: Path) -> None:
    await backend.apply_flow(SLOW)
    await backend.apply_flow(NAP)
    slow = await backend.create_execution("team.beta", "slow")
    nap = await backend.create_execution("team.beta", "nap")
    await running(backend, slow.id)
    await running(backend, nap.id)
    stopped = {run.execution_id: run for run in await backend.runs_stopped_by_close()}
    assert stopped[slow.id].fail == ("wait",) and stopped[nap.id].rerun == ("doze",)
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await wait_for(lambda: isinstance(app.screen, ExecutionsScreen)
                                and app.screen.source.total == 2 and app.screen)
        for key in ("q", "ctrl+q"):
            await pilot.press(key)
            await wait_for(lambda: isinstance(app.screen, ConfirmScreen))
            text = screen_text(app)
            assert "2 runs in progress" in text and "resume when flowdeck next starts" in text
            assert slow.id[-8:] in text and "fails at next start: wait" in text
            await pilot.press("enter")  # the default: stay
            await wait_for(lambda: app.screen is screen)
            assert app.return_code is None
        app.run_command(":q")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(lambda: app.return_code == 0, message="quit")
    await backend.kill(slow.id)
    await backend.kill(nap.id)


async def test_quit_without_asking(backend: EmbeddedBackend, clock: ManualClock,
                                   tmp_path: Path) -> None:
    """`[deck] confirm = false`, or nothing in progress: `q` quits at once."""
    await backend.apply_flow(SLOW)
    slow = await backend.create_execution("team.beta", "slow")
    await running(backend, slow.id)
    app = make_app(backend, clock, tmp_path, confirm=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(lambda: isinstance(app.screen, ExecutionsScreen)
                       and app.connection == "connected")
        await pilot.press("q")
        await wait_for(lambda: app.return_code == 0)
    await backend.kill(slow.id)


class RoleBackend(EmbeddedBackend):
    """The embedded engine, saying the caller has `role` (as a server's `/api/v1/me` does)."""

    role: str | None = None

    async def connect(self) -> Capabilities:
        return dataclasses.replace(await super().connect(), role=self.role)


@pytest.mark.parametrize("role", ["viewer", "operator", "approver"])
async def test_a_role_hides_the_actions_it_may_not_take(role: str, tmp_path: Path) -> None:
    clock = ManualClock(START)
    plain = make_backend(tmp_path / "data", clock)
    backend = RoleBackend(plain.settings, clock=clock)
    backend.role = role
    await backend.connect()
    try:
        await backend.apply_flow(APPROVAL)
        await backend.create_execution("team.alpha", "gate")
        for _ in range(500):
            if await backend.list_approvals("pending"):
                break
            await asyncio.sleep(0.02)
        app = make_app(backend, clock, tmp_path)
        may_operate, may_approve = role != "viewer", role == "approver"
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await wait_for(lambda: isinstance(app.screen, ExecutionsScreen)
                                    and app.screen.table.current_key() is not None
                                    and app.screen)
            await wait_for(lambda: app.role == role and f"role: {role}" in screen_text(app))
            shown = {b.binding.action for b in screen.active_bindings.values()
                     if screen.check_action(b.binding.action, ())}
            assert ("kill" in shown) == may_operate and ("restart" in shown) == may_operate
            assert "filter" in shown and "open" in shown
            await pilot.press("ctrl+k")  # inert where hidden
            if may_operate:
                await wait_for(lambda: isinstance(app.screen, ConfirmScreen))
                await pilot.press("escape")
            await wait_for(lambda: app.screen is screen)
            await pilot.press("question_mark")
            await wait_for(lambda: isinstance(app.screen, HelpScreen))
            text = str(app.screen.query_one("#help-text").render())
            assert ("Kill" in text) == may_operate and "Filter" in text
            await pilot.press("escape")
            app.run_command(":ap")
            queue = await wait_for(lambda: isinstance(app.screen, ApprovalsScreen)
                                   and app.screen.table.current_key() is not None
                                   and app.screen)
            await pilot.press("a")
            if may_approve:
                await wait_for(lambda: isinstance(app.screen, DecisionScreen))
                await pilot.press("escape")
            await wait_for(lambda: app.screen is queue)
            assert ("Approve" in screen_text(app)) == may_approve  # the footer
        assert len(await backend.list_approvals("pending")) == 1
    finally:
        await backend.close()


async def crash(server: Any, task: asyncio.Task[None]) -> None:
    """Stop the server and drop every open connection, as a crash would."""
    server.should_exit = True
    for connection in list(server.server_state.connections):
        transport = getattr(connection, "transport", None)
        if transport is not None:
            transport.close()
    await asyncio.wait_for(task, 10)


async def test_every_screen_shows_a_dead_server_within_seconds(tmp_path: Path) -> None:
    from live_server import start_server

    engine = await Engine.open(EngineSettings(data_dir=tmp_path / "data", scheduler=False,
                                              envs={}))
    server, task, url = await start_server(engine)
    remote = HttpBackend(url)  # the defaults an operator gets
    stopped = False
    try:
        await engine.apply_flow(APPROVAL)
        await engine.create_execution("team.alpha", "gate")
        for _ in range(500):
            pending = await engine.approvals.list("pending")
            if pending:
                break
            await asyncio.sleep(0.02)
        app = make_app(remote, ManualClock(START), tmp_path)
        async with app.run_test(size=(120, 40)):
            await wait_for(lambda: app.connection == "connected")
            app.push_screen(ApprovalScreen(pending[0].id))
            await wait_for(lambda: isinstance(app.screen, ApprovalScreen)
                           and app.screen.approval is not None
                           and "● connected" in screen_text(app))
            await crash(server, task)
            stopped = True
            loop = asyncio.get_running_loop()
            died = loop.time()
            await wait_for(lambda: "✕ disconnected" in screen_text(app), timeout=10)
            assert loop.time() - died < 5.0
    finally:
        await remote.close()
        if not stopped:
            await crash(server, task)
        await engine.close()
