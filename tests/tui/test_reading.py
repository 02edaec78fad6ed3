"""Reading the screen: state colours, help, commands that open a section's list, focus,
empty lists, durations and task counts, progress lines, notifications, 80 columns."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from rich.style import Style
from textual.color import Color
from textual.widgets._toast import Toast

from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.core.clock import ManualClock
from flowdeck.core.states import is_terminal
from flowdeck.tui.screens.approvals import ApprovalsScreen
from flowdeck.tui.screens.execution import ExecutionScreen
from flowdeck.tui.screens.executions import ExecutionsScreen
from flowdeck.tui.screens.flows import FlowScreen, FlowsScreen
from flowdeck.tui.screens.help import HelpScreen
from tui.deck_flows import APPROVAL, FAIL, HELLO
from tui.deck_helpers import make_app, screen_text, wait_for

PROGRESS = """
id: progress
namespace: team.alpha
tasks:
  - id: fetch
    type: io.kestra.plugin.core.log.Log
    message: "fetching 10%\\rfetching 50%\\rfetched 100%"
"""


async def settled(backend: EmbeddedBackend, ids: list[str]) -> None:
    for _ in range(1000):
        states = [(await backend.get_execution(i)).state.current for i in ids]
        if all(is_terminal(s) or s == "PAUSED" for s in states):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("executions did not settle")


def cell_colour(screen: ExecutionsScreen, row: int, text: str) -> Color | None:
    """The foreground colour the list paints `text` with on `row` (0: the first row)."""
    strip = screen.table.render_line(row + 1)
    for segment in strip:
        if text in segment.text:
            style: Style | None = segment.style
            if style is None or style.color is None:
                return None
            return Color.from_rich_color(style.color)
    raise AssertionError(f"{text!r} is not on row {row}")


async def test_state_colours_in_the_list(backend: EmbeddedBackend, clock: ManualClock,
                                         tmp_path: Path) -> None:
    await backend.apply_flow(HELLO)
    await backend.apply_flow(FAIL)
    bad = await backend.create_execution("team.alpha", "broken")
    clock.advance(timedelta(seconds=1))
    ok = await backend.create_execution("team.alpha", "hello")
    await settled(backend, [bad.id, ok.id])
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(120, 40)):
        screen = await wait_for(lambda: isinstance(app.screen, ExecutionsScreen)
                                and app.screen.source.total == 2 and app.screen)
        await wait_for(lambda: all(screen.source.execution(i) is not None for i in range(2)))
        theme = app.current_theme
        rows = {screen.source.execution(i).state.current: i for i in range(2)}
        # the newest first: SUCCESS on the selected row (its background is the cursor's)
        assert cell_colour(screen, rows["FAILED"], "FAILED") == Color.parse(theme.error)
        assert cell_colour(screen, rows["SUCCESS"], "SUCCESS") == Color.parse(theme.success)


async def test_help_lists_every_key_with_its_id(backend: EmbeddedBackend, clock: ManualClock,
                                                tmp_path: Path) -> None:
    await backend.apply_flow(FAIL)
    bad = await backend.create_execution("team.alpha", "broken")
    app = make_app(backend, clock, tmp_path, keymap={"kill": "ctrl+x"})
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(lambda: isinstance(app.screen, ExecutionsScreen)
                       and app.connection == "connected")
        await pilot.press("question_mark")
        await wait_for(lambda: isinstance(app.screen, HelpScreen))
        text = str(app.screen.query_one("#help-text").render())
        for line in ("ctrl+x       Kill", "kill", "q            Quit", "quit-list",
                     ":ap  :approvals", ":theme NAME", "state:FAILED"):
            assert line in text, line
        await pilot.press("escape")
        app.push_screen(ExecutionScreen(bad.id))
        await wait_for(lambda: isinstance(app.screen, ExecutionScreen))
        await pilot.press("question_mark")
        await wait_for(lambda: isinstance(app.screen, HelpScreen))
        text = str(app.screen.query_one("#help-text").render())
        for line in ("i            Inputs/outputs", "inputs-outputs", "f            Follow",
                     "save-log", "pgup pgdn"):
            assert line in text, line


async def test_theme_aliases(backend: EmbeddedBackend, clock: ManualClock,
                             tmp_path: Path) -> None:
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(80, 24)):
        await wait_for(lambda: isinstance(app.screen, ExecutionsScreen))
        app.run_command(":theme light")
        assert app.theme == "flowdeck-light"
        app.run_command(":theme dark")
        assert app.theme == "flowdeck-dark"
        app.run_command(":theme nope")
        assert app.theme == "flowdeck-dark"
        await wait_for(lambda: any("no theme 'nope'" in str(n.message)
                                   for n in app._notifications))


async def test_commands_open_the_list_and_the_focus_goes_to_its_rows(
        backend: EmbeddedBackend, clock: ManualClock, tmp_path: Path) -> None:
    await backend.apply_flow(HELLO)
    app = make_app(backend, clock, tmp_path, initial="flows")
    async with app.run_test(size=(80, 24)) as pilot:
        flows = await wait_for(lambda: isinstance(app.screen, FlowsScreen)
                               and app.screen.table.current_key() is not None and app.screen)
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, FlowScreen))
        app.run_command(":ex")
        await wait_for(lambda: isinstance(app.screen, ExecutionsScreen))
        app.run_command(":flows")  # the list, not the flow left open there
        await wait_for(lambda: app.screen is flows)
        await wait_for(lambda: app.focused is flows.table)
        # the filter box had the focus when the deck went elsewhere: back, the rows have it
        await pilot.press("slash")
        await wait_for(lambda: app.focused is flows.filter_box)
        app.show_list("executions")
        await wait_for(lambda: isinstance(app.screen, ExecutionsScreen))
        app.show_list("flows")
        await wait_for(lambda: app.screen is flows and app.focused is flows.table)
        assert not flows.filter_box.has_class("-shown")  # it was empty: closed


async def test_empty_lists_say_what_to_do(backend: EmbeddedBackend, clock: ManualClock,
                                          tmp_path: Path) -> None:
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(120, 40)):
        await wait_for(lambda: "No executions yet: :flows, pick a flow, ctrl+o runs it."
                       in screen_text(app))
        app.run_command(":flows")
        await wait_for(lambda: "No flows yet: `flowdeck flow apply FILE.yml`" in screen_text(app))
        app.run_command(":ap")
        await wait_for(lambda: "Nothing waits for a decision." in screen_text(app))


async def test_paused_runs_count_the_wait_and_tasks_count_the_flow(
        backend: EmbeddedBackend, clock: ManualClock, tmp_path: Path) -> None:
    await backend.apply_flow(APPROVAL)
    gate = await backend.create_execution("team.alpha", "gate")
    await settled(backend, [gate.id])
    clock.advance(timedelta(minutes=5))
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(120, 40)):
        screen = await wait_for(lambda: isinstance(app.screen, ExecutionsScreen)
                                and app.screen.source.total == 1 and app.screen)
        # the wait counts (5 minutes so far), and the flow has 2 tasks, none done yet
        await wait_for(lambda: "5m00s" in screen_text(app) and "0/2" in screen_text(app))
        clock.advance(timedelta(minutes=1))
        await wait_for(lambda: "6m00s" in screen_text(app), message="it keeps counting")
        app.push_screen(ExecutionScreen(gate.id))
        await wait_for(lambda: isinstance(app.screen, ExecutionScreen)
                       and "tasks 0 done / 2 in flow" in str(
                           app.screen.query_one("#summary").render()))
        assert screen is not app.screen


async def test_progress_lines_show_their_last_state(backend: EmbeddedBackend,
                                                    clock: ManualClock,
                                                    tmp_path: Path) -> None:
    await backend.apply_flow(PROGRESS)
    run = await backend.create_execution("team.alpha", "progress")
    await settled(backend, [run.id])
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(120, 40)):
        await wait_for(lambda: app.connection == "connected")
        app.push_screen(ExecutionScreen(run.id))
        detail = await wait_for(lambda: isinstance(app.screen, ExecutionScreen) and app.screen)
        await wait_for(lambda: any("fetched 100%" in line
                                   for line in detail.log_view.lines_plain()))
        assert not any("10%" in line for line in detail.log_view.lines_plain())


async def test_notifications_leave_the_newest_log_lines_visible(
        backend: EmbeddedBackend, clock: ManualClock, tmp_path: Path) -> None:
    await backend.apply_flow(FAIL)
    bad = await backend.create_execution("team.alpha", "broken")
    await settled(backend, [bad.id])
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(80, 24), notifications=True):
        await wait_for(lambda: app.connection == "connected")
        app.push_screen(ExecutionScreen(bad.id))
        detail = await wait_for(lambda: isinstance(app.screen, ExecutionScreen) and app.screen)
        await wait_for(lambda: any("it broke" in line for line in detail.log_view.lines_plain()))
        app.toast("a notification that would cover the log")
        toast = await wait_for(lambda: detail.query_one(Toast).region.height > 0
                               and detail.query_one(Toast))
        log = detail.log_view.region
        assert toast.region.bottom <= log.y, (toast.region, log)
        await wait_for(lambda: "it broke" in screen_text(app))


async def test_at_80_columns_the_flow_keeps_its_room(backend: EmbeddedBackend,
                                                     clock: ManualClock,
                                                     tmp_path: Path) -> None:
    await backend.apply_flow(FAIL.replace("id: broken", "id: nightly-warehouse-eu"))
    run = await backend.create_execution("team.alpha", "nightly-warehouse-eu")
    await settled(backend, [run.id])
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(80, 24)):
        await wait_for(lambda: "team.alpha.nightly-warehouse-eu " in screen_text(app))
        text = screen_text(app)
        assert "01-01 12:00 " in text and "2026-01-01" not in text  # the day and minute
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(120, 40)):
        await wait_for(lambda: "2026-01-01 12:00:00" in screen_text(app))


async def test_the_approvals_history(backend: EmbeddedBackend, clock: ManualClock,
                                     tmp_path: Path) -> None:
    await backend.apply_flow(APPROVAL)
    gate = await backend.create_execution("team.alpha", "gate")
    for _ in range(500):
        pending = await backend.list_approvals("pending")
        if pending:
            break
        await asyncio.sleep(0.02)
    clock.advance(timedelta(minutes=2))
    await backend.decide(pending[0].id, approve=False, by="alice", comment="not on a Friday")
    app = make_app(backend, clock, tmp_path, initial="approvals")
    async with app.run_test(size=(120, 40)) as pilot:
        queue = await wait_for(lambda: isinstance(app.screen, ApprovalsScreen) and app.screen)
        await wait_for(lambda: "Nothing waits" in screen_text(app))
        await pilot.press("h")
        await wait_for(lambda: queue.decided and queue.source.row_count() == 1)
        text = screen_text(app)
        for part in ("decided (1", "2026-01-01 12:02:00", "rejected", "alice",
                     "not on a Friday", "team.alpha.gate"):
            assert part in text, part
        assert gate.id
