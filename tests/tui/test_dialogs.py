"""The deck's dialogs at 120x40 and 80x24: the run form, the kill confirmation, the
reject-with-comment prompt, the `:` command prompt, and the executions screen in the light
theme. Deterministic: fixed clock and ids, TZ=UTC, no toasts, no cursor blink (conftest), no
network; the data is seeded through the backend in the app.

Each test checks the dialog's geometry in the rendered screen: drawn with its border, centred,
and whole at both sizes (the modal CSS once left dialogs borderless at the top left), and that
the screen behind stays visible."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.containers import VerticalScroll
from textual.pilot import Pilot
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input

from flowdeck.client.backend import Backend
from flowdeck.core.clock import ManualClock
from flowdeck.core.states import is_terminal
from flowdeck.tui.app import FlowdeckApp
from flowdeck.tui.screens.approvals import ApprovalsScreen
from flowdeck.tui.screens.executions import ExecutionsScreen
from flowdeck.tui.screens.flows import FlowsScreen, RunFormScreen
from flowdeck.tui.screens.help import CommandPrompt
from flowdeck.tui.widgets.confirm import ConfirmScreen, DecisionScreen
from tui.deck_flows import APPROVAL, COMMENTED, FAIL, HELLO, SLOW
from tui.deck_helpers import START, make_backend, screen_text, wait_for

SIZES = [(120, 40), (80, 24)]

#: A flow whose run form shows each kind of field: a STRING with a default, a required INT
#: (no default), a BOOLEAN and a SELECT (its values as the placeholder).
RELEASE = """
id: release
namespace: team.alpha
description: ships one release
inputs:
  - id: version
    type: STRING
    defaults: "1.2.3"
    description: the version to ship
  - id: replicas
    type: INT
    required: true
  - id: dry_run
    type: BOOLEAN
    defaults: true
  - id: region
    type: SELECT
    values: [eu-west, us-east, ap-south]
tasks:
  - id: ship
    type: io.kestra.plugin.core.log.Log
    message: "shipping {{ inputs.version }}"
"""

#: The thick border the modal CSS gives every dialog (`border: thick $primary`): its top and
#: bottom rows, and the full block down each side.
BORDER_TOP, BORDER_BOTTOM, BORDER_SIDE = "▀", "▄", "█"


async def settle(backend: Backend, ids: list[str], *, approvals: int = 0) -> None:
    """Until every execution in `ids` is terminal, RUNNING or PAUSED, and the pending
    approvals are there."""
    for _ in range(1000):
        page = [await backend.get_execution(i) for i in ids]
        if all(is_terminal(e.state.current) or e.state.current in ("PAUSED", "RUNNING")
               for e in page) and len(await backend.list_approvals("pending")) >= approvals:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("seeded executions did not settle")


async def seed_list(backend: Backend) -> None:
    for source in (HELLO, FAIL, APPROVAL):
        await backend.apply_flow(source)
    ids = [(await backend.create_execution("team.alpha", flow)).id
           for flow in ("hello", "broken", "gate")]
    await settle(backend, ids, approvals=1)


async def seed_flows(backend: Backend) -> None:
    for source in (HELLO, RELEASE):
        await backend.apply_flow(source)


async def seed_running(backend: Backend) -> None:
    await backend.apply_flow(SLOW)
    slow = await backend.create_execution("team.beta", "slow")
    for _ in range(1000):
        if (await backend.get_execution(slow.id)).state.current == "RUNNING":
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the slow execution never ran")


async def seed_commented(backend: Backend) -> None:
    await backend.apply_flow(COMMENTED)
    gate = await backend.create_execution("team.beta", "strict-gate")
    await settle(backend, [gate.id], approvals=1)


def deck(tmp: Path, seed: Callable[[Backend], Awaitable[None]], **kwargs: Any) -> FlowdeckApp:
    clock = ManualClock(START)
    backend = make_backend(tmp / "data", clock)
    return FlowdeckApp(backend, clock=clock, user="tester", save_dir=tmp, show_toasts=False,
                       refresh_seconds=3600, startup=seed, close_backend=True, **kwargs)


# -- geometry ---------------------------------------------------------------------------------


def dialog_box(app: Any) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the dialog's outer box, in cells, from the layout."""
    dialog = app.screen.query_one("ModalScreen > Vertical")
    region = dialog.region
    return region.x, region.y, region.right, region.bottom


async def painted_rows(app: Any) -> list[str]:
    """The screen's rows as text (retried: a frame being laid out cannot be read yet)."""
    text: str = await wait_for(lambda: screen_text(app))
    return text.splitlines()


async def assert_centred_with_border(app: Any) -> None:
    """The dialog box is centred (within a cell, both ways), fits the terminal, and its
    thick border is painted on its first and last rows."""
    width, height = app.size
    left, top, right, bottom = dialog_box(app)
    assert left > 0 and top > 0 and right < width and bottom < height, (left, top, right,
                                                                         bottom)
    assert abs(left - (width - right)) <= 1, f"not centred across: {left}..{right} of {width}"
    assert abs(top - (height - bottom)) <= 1, f"not centred down: {top}..{bottom} of {height}"
    rows = await painted_rows(app)
    for y, edge in ((top, BORDER_TOP), (bottom - 1, BORDER_BOTTOM)):
        line = rows[y][left:right]
        assert line == BORDER_SIDE + edge * (right - left - 2) + BORDER_SIDE, rows[y]
    for y in range(top + 1, bottom - 1):
        assert rows[y][left] == rows[y][right - 1] == BORDER_SIDE, rows[y]


# -- run_before: open each dialog ---------------------------------------------------------------


async def executions_listed(pilot: Pilot[Any]) -> ExecutionsScreen:
    app: Any = pilot.app
    await wait_for(lambda: app.connection == "connected" and app.pending_approvals == 1)
    screen: ExecutionsScreen = await wait_for(
        lambda: isinstance(app.screen, ExecutionsScreen) and app.screen.source.total == 3
        and all(app.screen.source.execution(i) is not None for i in range(3))
        and all(is_terminal(app.screen.source.execution(i).state.current)
                or app.screen.source.execution(i).state.current == "PAUSED"
                for i in range(3)) and app.screen)
    await wait_for(lambda: "FAILED" in screen_text(app) and "PAUSED" in screen_text(app))
    # The header says the list is loaded (else a dialog may freeze it as "not loaded yet").
    await wait_for(lambda: "updated 0s ago" in screen_text(app))
    return screen


async def open_run_form(pilot: Pilot[Any]) -> None:
    app: Any = pilot.app
    await wait_for(lambda: app.connection == "connected")
    app.switch_mode("flows")
    screen = await wait_for(lambda: isinstance(app.screen, FlowsScreen)
                            and app.screen.source.row_count() == 2 and app.screen)
    await wait_for(lambda: "release" in screen_text(app))
    for _ in range(3):  # the flows are sorted: release is the second row
        if screen.current() is not None and screen.current().id == "release":
            break
        await pilot.press("down")
    assert screen.current() is not None and screen.current().id == "release"
    await pilot.press("ctrl+o")
    form = await wait_for(lambda: isinstance(app.screen, RunFormScreen) and app.screen)
    await wait_for(lambda: len(form.query("Input, Checkbox")) == 4)
    await wait_for(lambda: "replicas" in screen_text(app))
    focused = app.focused
    assert isinstance(focused, Input) and focused.value == "1.2.3"  # the first field
    await assert_centred_with_border(app)
    text = "\n".join(await painted_rows(app))
    # the buttons always show: at 80x24 the fields scroll (the last one is below the fold)
    for part in ("Run team.alpha.release", "version  (string) — the version to ship",
                 "replicas  (int, required)", "dry_run  (boolean)", "Cancel", "Run (ctrl+s)"):
        assert part in text, part
    fields = form.query_one(VerticalScroll)
    if app.size.height >= 40:
        assert "eu-west | us-east | ap-south" in text and fields.max_scroll_y == 0
    else:
        assert fields.max_scroll_y > 0
    assert form.query_one(Checkbox).value is True


async def open_kill_confirm(pilot: Pilot[Any]) -> None:
    app: Any = pilot.app
    await wait_for(lambda: app.connection == "connected")
    screen = await wait_for(
        lambda: isinstance(app.screen, ExecutionsScreen) and app.screen.source.total == 1
        and app.screen.source.execution(0) is not None
        and app.screen.source.execution(0).state.current == "RUNNING" and app.screen)
    await wait_for(lambda: "RUNNING" in screen_text(app))
    screen.table.focus()
    await pilot.press("ctrl+k")
    await wait_for(lambda: isinstance(app.screen, ConfirmScreen))
    await wait_for(lambda: isinstance(app.focused, Button) and app.focused.id == "cancel")
    await wait_for(lambda: "Running tasks are stopped" in screen_text(app))
    await assert_centred_with_border(app)
    text = "\n".join(await painted_rows(app))
    assert "Cancel (n)" in text and "Kill (y)" in text


async def open_reject_prompt(pilot: Pilot[Any]) -> None:
    app: Any = pilot.app
    await wait_for(lambda: app.connection == "connected" and app.pending_approvals == 1)
    app.switch_mode("approvals")
    await wait_for(lambda: isinstance(app.screen, ApprovalsScreen)
                   and app.screen.source.row_count() == 1)
    await wait_for(lambda: "Strict review" in screen_text(app))
    await pilot.press("x")
    await wait_for(lambda: isinstance(app.screen, DecisionScreen))
    await wait_for(lambda: isinstance(app.focused, Input) and app.focused.id == "text")
    await wait_for(lambda: "Reject this approval?" in screen_text(app))
    await assert_centred_with_border(app)
    text = "\n".join(await painted_rows(app))
    for part in ("Strict review — team.beta.strict-gate", "requested by started via api",
                 " · 1 row", "A comment is required.", "Cancel (n)", "Reject (y)"):
        assert part in text, part


async def open_command_prompt(pilot: Pilot[Any]) -> None:
    await executions_listed(pilot)
    app: Any = pilot.app
    await pilot.press("colon")
    await wait_for(lambda: isinstance(app.screen, CommandPrompt))
    box = app.screen.query_one(Input)
    await wait_for(lambda: app.focused is box and box.value == ":")
    await wait_for(lambda: box.region.height == 3 and screen_text(app).splitlines()[
        box.region.y + 1].startswith("▊  :"))
    # docked at the bottom, full width, one line above the footer, with its tall border
    width, height = app.size
    region = box.region
    assert (region.x, region.right, region.bottom) == (0, width, height - 1), region
    rows = await painted_rows(app)
    assert rows[region.y] == "▊" + "▔" * (width - 2) + "▎", rows[region.y]
    assert rows[region.y + 1].startswith("▊  :") and rows[region.y + 1].endswith("▎")
    assert rows[region.y + 2] == "▊" + "▁" * (width - 2) + "▎", rows[region.y + 2]


async def light_executions(pilot: Pilot[Any]) -> None:
    await executions_listed(pilot)
    app: Any = pilot.app
    assert app.theme == "flowdeck-light" and not app.current_theme.dark
    assert not isinstance(app.screen, ModalScreen)


DIALOGS: dict[str, tuple[Callable[[Backend], Awaitable[None]],
                         Callable[[Pilot[Any]], Awaitable[None]], dict[str, Any]]] = {
    "run-form": (seed_flows, open_run_form, {}),
    "kill-confirm": (seed_running, open_kill_confirm, {}),
    "reject-comment": (seed_commented, open_reject_prompt, {}),
    "command-prompt": (seed_list, open_command_prompt, {}),
    "executions-light": (seed_list, light_executions, {"theme": "flowdeck-light"}),
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", list(DIALOGS))
async def test_dialog_layout(tmp_path: Path, name: str, size: tuple[int, int]) -> None:
    """Each dialog at both sizes: centred, whole border, expected text and focus (the checks
    live in the `open_*` steps). Not byte-compared SVGs: their ids hash style metadata that
    varies between runs without changing the picture."""
    seed, run_before, kwargs = DIALOGS[name]
    app = deck(tmp_path, seed, **kwargs)
    async with app.run_test(size=size) as pilot:
        await run_before(pilot)


async def test_dialogs_show_the_screen_behind(tmp_path: Path) -> None:
    app = deck(tmp_path, seed_running)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_kill_confirm(pilot)
        assert app.screen.styles.background.a < 1
        assert "team.beta.slow" in app.export_screenshot()  # the row behind the dialog

