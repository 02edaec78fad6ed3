"""Executions list: live rows, filter, sort, marks, kill/restart/replay, virtual paging."""

from __future__ import annotations

from pathlib import Path

from flowdeck.client.backend import ExecutionFilter
from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.core.clock import ManualClock
from flowdeck.tui.filters import parse_filter
from flowdeck.tui.screens.execution import ExecutionScreen
from flowdeck.tui.screens.executions import PAGE, ExecutionsScreen
from flowdeck.tui.widgets.confirm import ConfirmScreen
from tui.deck_flows import FAIL, HELLO, SLOW
from tui.deck_helpers import both_backends, make_app, screen_text, wait_for


def test_filter_grammar() -> None:
    spec = parse_filter("state:failed,RUNNING ns:prod flow:nightly label:team=ops since:2h abc")
    assert spec.states == ["FAILED", "RUNNING"]
    assert (spec.namespace, spec.flow, spec.labels) == ("prod", "nightly", {"team": "ops"})
    assert spec.since is not None and spec.since.total_seconds() == 7200
    assert spec.words == ["abc"] and not spec.problems
    assert parse_filter("state:NOPE since:x label:y").problems


async def open_list(app, pilot) -> ExecutionsScreen:  # type: ignore[no-untyped-def]
    return await wait_for(lambda: isinstance(app.screen, ExecutionsScreen) and app.screen)


@both_backends
async def test_live_rows_filter_sort_and_marks(backend: EmbeddedBackend, clock: ManualClock,
                                               tmp_path: Path) -> None:
    for src in (HELLO, FAIL, SLOW):
        await backend.apply_flow(src)
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_list(app, pilot)
        await wait_for(lambda: app.connection == "connected")
        # live: executions created after the screen opened appear without a keypress
        ok = await backend.create_execution("team.alpha", "hello")
        bad = await backend.create_execution("team.alpha", "broken")
        slow = await backend.create_execution("team.beta", "slow")
        await wait_for(lambda: screen.source.total == 3, message="3 rows")
        await wait_for(lambda: "FAILED" in screen_text(app) and "RUNNING" in screen_text(app))
        # filter as you type
        await pilot.press("slash", *"state:FAILED")
        await wait_for(lambda: screen.source.total == 1 and screen.source.execution(0).id
                       == bad.id)
        await pilot.press("escape")
        await wait_for(lambda: screen.source.total == 3 and not screen.filter_text)
        await pilot.press("slash", *"ns:team.beta")
        await wait_for(lambda: screen.source.total == 1 and screen.source.execution(0).id
                       == slow.id)
        await pilot.press("escape")
        await wait_for(lambda: screen.source.total == 3)
        # sort by state, then reverse
        await pilot.press("s")
        await wait_for(lambda: "sort: state" in screen_text(app))
        await wait_for(lambda: [screen.source.execution(i).state.current for i in range(3)]
                       == ["SUCCESS", "RUNNING", "FAILED"])
        await pilot.press("S")
        await wait_for(lambda: [screen.source.execution(i).state.current for i in range(3)]
                       == ["FAILED", "RUNNING", "SUCCESS"])
        # marks (from the first row: the cursor followed its execution through the sorts)
        await pilot.press("home", "space", "space")
        await wait_for(lambda: len(screen.table.marked) == 2)
        assert "2 marked" in screen_text(app)
        await pilot.press("escape")
        await wait_for(lambda: not screen.table.marked)
        assert ok.id  # all three were shown
        await backend.kill(slow.id)


@both_backends
async def test_kill_confirms_with_safe_choice_focused(backend: EmbeddedBackend,
                                                      clock: ManualClock,
                                                      tmp_path: Path) -> None:
    await backend.apply_flow(SLOW)
    slow = await backend.create_execution("team.beta", "slow")
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_list(app, pilot)
        await wait_for(lambda: screen.source.execution(0) is not None
                       and screen.source.execution(0).state.current == "RUNNING")
        await pilot.press("ctrl+k")
        dialog = await wait_for(lambda: isinstance(app.screen, ConfirmScreen) and app.screen)
        assert app.focused is not None and app.focused.id == "cancel"
        await pilot.press("enter")  # the safe choice: nothing is killed
        await wait_for(lambda: app.screen is screen)
        assert (await backend.get_execution(slow.id)).state.current == "RUNNING"
        await pilot.press("ctrl+k")
        dialog = await wait_for(lambda: isinstance(app.screen, ConfirmScreen) and app.screen)
        assert dialog is not screen
        await pilot.press("y")
        await wait_for(lambda: screen.source.execution(0).state.current == "KILLED",
                       timeout=20, message="row shows KILLED")


@both_backends
async def test_restart_and_replay(backend: EmbeddedBackend, clock: ManualClock,
                                  tmp_path: Path) -> None:
    await backend.apply_flow(FAIL)
    bad = await backend.create_execution("team.alpha", "broken")
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_list(app, pilot)
        await wait_for(lambda: screen.source.execution(0) is not None
                       and screen.source.execution(0).state.current == "FAILED")
        await pilot.press("R")  # replay asks first, naming the execution; enter is "no"
        dialog = await wait_for(lambda: isinstance(app.screen, ConfirmScreen) and app.screen)
        assert bad.id in screen_text(app) and "team.alpha.broken" in screen_text(app)
        await pilot.press("enter")
        await wait_for(lambda: app.screen is screen)
        assert screen.source.total == 1 and dialog is not screen
        await pilot.press("R")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")  # replay: a new execution
        await wait_for(lambda: screen.source.total == 2, message="replayed row")
        await wait_for(lambda: any("replayed as" in str(n.message) for n in app._notifications))
        # the cursor stayed on the replayed execution as the new one was listed above it
        await wait_for(lambda: screen.table.current_key() == bad.id)
        assert screen.table.cursor == 1
        await pilot.press("r")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(lambda: any("restarted" in str(n.message) for n in app._notifications))
        page = await backend.search_executions(ExecutionFilter(size=10))
        restarted = next(e for e in page.results if e.id == bad.id)
        assert restarted.attempt_number >= 1 and any(
            h.state == "RESTARTED" for h in restarted.state.histories)


@both_backends
async def test_enter_opens_detail_and_escape_goes_back(backend: EmbeddedBackend,
                                                       clock: ManualClock,
                                                       tmp_path: Path) -> None:
    await backend.apply_flow(HELLO)
    ex = await backend.create_execution("team.alpha", "hello")
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_list(app, pilot)
        await wait_for(lambda: screen.source.total == 1)
        await pilot.press("enter")
        detail = await wait_for(lambda: isinstance(app.screen, ExecutionScreen) and app.screen)
        assert detail.execution_id == ex.id
        await wait_for(lambda: app.focused is not None and app.focused.id == "log")
        await pilot.press("escape")
        await wait_for(lambda: app.screen is screen)


async def test_only_visible_pages_are_fetched(backend: EmbeddedBackend, clock: ManualClock,
                                              tmp_path: Path) -> None:
    """Virtualised: 3 pages of executions, but only the pages on screen are asked for."""
    await backend.apply_flow(HELLO)
    total = PAGE * 2 + 30
    for _ in range(total):
        await backend.create_execution("team.alpha", "hello")
    asked: list[int] = []
    original = backend.search_executions

    async def spy(query: ExecutionFilter):  # type: ignore[no-untyped-def]
        asked.append(query.page)
        assert query.size == PAGE
        return await original(query)

    backend.search_executions = spy  # type: ignore[method-assign]
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_list(app, pilot)
        await wait_for(lambda: screen.source.total == total)
        assert set(asked) == {1}
        await pilot.press("end")
        await wait_for(lambda: screen.source.execution(total - 1) is not None)
        assert 2 not in asked, "the middle page was never on screen"
        assert set(asked) == {1, 3}
        assert screen.table.cursor == total - 1
        assert screen_text(app).count("team.alpha.hello") >= 15
