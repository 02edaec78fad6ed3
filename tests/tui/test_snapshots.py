"""Snapshots of every screen at 120x40 and 80x24: fixed clock and ids, TZ=UTC, no toasts,
no cursor blink, no network; the data is seeded through the backend inside the app."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from flowdeck.client.backend import Backend
from flowdeck.core.clock import ManualClock
from flowdeck.core.states import is_terminal
from flowdeck.tui.app import FlowdeckApp
from flowdeck.tui.screens.approvals import ApprovalScreen, ApprovalsScreen
from flowdeck.tui.screens.execution import ExecutionScreen
from flowdeck.tui.screens.executions import ExecutionsScreen
from flowdeck.tui.screens.flows import FlowScreen, FlowsScreen
from flowdeck.tui.screens.help import HelpScreen
from tui.deck_flows import APPROVAL, FAIL, HELLO
from tui.deck_helpers import START, make_backend, screen_text, wait_for

SIZES = [(120, 40), (80, 24)]
IDS: dict[str, str] = {}


async def seed(backend: Backend) -> None:
    for source in (HELLO, FAIL, APPROVAL):
        await backend.apply_flow(source)
    IDS["hello"] = (await backend.create_execution("team.alpha", "hello")).id
    IDS["broken"] = (await backend.create_execution("team.alpha", "broken")).id
    IDS["gate"] = (await backend.create_execution("team.alpha", "gate")).id
    for _ in range(500):
        page = [await backend.get_execution(IDS[k]) for k in ("hello", "broken", "gate")]
        if all(is_terminal(e.state.current) or e.state.current == "PAUSED" for e in page) \
                and await backend.list_approvals("pending"):
            break
        import asyncio
        await asyncio.sleep(0.02)
    IDS["approval"] = (await backend.list_approvals("pending"))[0].id


def deck(tmp: Path) -> FlowdeckApp:
    clock = ManualClock(START)
    backend = make_backend(tmp / "data", clock)
    return FlowdeckApp(backend, clock=clock, user="tester", save_dir=tmp, show_toasts=False,
                       refresh_seconds=3600, startup=seed, close_backend=True)


async def settled_list(pilot: Pilot[Any]) -> None:
    app: Any = pilot.app
    await wait_for(lambda: app.connection == "connected" and app.pending_approvals == 1)
    await wait_for(lambda: isinstance(app.screen, ExecutionsScreen)
                   and app.screen.source.total == 3
                   and all(app.screen.source.execution(i) is not None for i in range(3))
                   and all(is_terminal(app.screen.source.execution(i).state.current)
                           or app.screen.source.execution(i).state.current == "PAUSED"
                           for i in range(3)))
    # Painted and stamped: a screen pushed on top freezes what is behind it as it is now.
    await wait_for(lambda: "PAUSED" in screen_text(app) and "updated 0s ago" in screen_text(app))


async def go_executions(pilot: Pilot[Any]) -> None:
    await settled_list(pilot)


async def go_execution(pilot: Pilot[Any]) -> None:
    await settled_list(pilot)
    app: Any = pilot.app
    app.push_screen(ExecutionScreen(IDS["broken"]))
    await wait_for(lambda: isinstance(app.screen, ExecutionScreen)
                   and app.screen.execution is not None
                   and app.screen.execution.state.current == "FAILED"
                   and any("it broke" in line for line in app.screen.log_view.lines_plain()))


async def go_approvals(pilot: Pilot[Any]) -> None:
    await settled_list(pilot)
    app: Any = pilot.app
    app.switch_mode("approvals")
    await wait_for(lambda: isinstance(app.screen, ApprovalsScreen)
                   and app.screen.source.row_count() == 1)


async def go_approval(pilot: Pilot[Any]) -> None:
    await go_approvals(pilot)
    app: Any = pilot.app
    app.push_screen(ApprovalScreen(IDS["approval"]))
    await wait_for(lambda: isinstance(app.screen, ApprovalScreen)
                   and app.screen.execution is not None)


async def go_flows(pilot: Pilot[Any]) -> None:
    await settled_list(pilot)
    app: Any = pilot.app
    app.switch_mode("flows")
    await wait_for(lambda: isinstance(app.screen, FlowsScreen)
                   and app.screen.source.row_count() == 3 and len(app.screen.recent) == 3)


async def go_flow(pilot: Pilot[Any]) -> None:
    await go_flows(pilot)
    app: Any = pilot.app
    app.push_screen(FlowScreen("team.alpha", "hello"))
    await wait_for(lambda: isinstance(app.screen, FlowScreen) and app.screen.flow is not None)


async def go_help(pilot: Pilot[Any]) -> None:
    await settled_list(pilot)
    app: Any = pilot.app
    app.action_help()
    await wait_for(lambda: isinstance(app.screen, HelpScreen))


SCREENS = {"executions": go_executions, "execution": go_execution, "approvals": go_approvals,
           "approval": go_approval, "flows": go_flows, "flow": go_flow, "help": go_help}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", list(SCREENS))
def test_screen_snapshot(snap_compare: Any, name: str, size: tuple[int, int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        assert snap_compare(deck(Path(tmp)), terminal_size=size, run_before=SCREENS[name])
