"""The deck's approval queue on a real Kestra (its recorded answers, 1.0.x and 2.0.x): the
executions PAUSED on a Pause task, with how long each waits and its `onResume` form; approve
resumes, reject kills with the comment kept as labels, and a pause someone else decided first
says so. Snapshots of the queue at 120x40 and 80x24 (fixed clock, TZ=UTC)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from client.test_http_kestra_recorded import CONTESTED, GATE, REJECT, KestraReplay
from flowdeck.core.clock import ManualClock
from flowdeck.tui.app import FlowdeckApp
from flowdeck.tui.screens.approvals import ApprovalScreen, ApprovalsScreen
from flowdeck.tui.widgets.confirm import DecisionScreen
from tui.deck_helpers import make_app, screen_text, wait_for

NOON = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)  # the pauses began at 09:00, 09:05, 09:10


def kestra_deck(replay: KestraReplay, tmp_path: Path, **kw: Any) -> FlowdeckApp:
    backend = replay.backend(poll_interval=3600)  # the watches poll once, then wait
    return make_app(backend, ManualClock(NOON), tmp_path, initial="approvals",
                    close_backend=True, **kw)


async def queue_of(app: FlowdeckApp) -> ApprovalsScreen:
    queue: ApprovalsScreen = await wait_for(
        lambda: isinstance(app.screen, ApprovalsScreen) and app.screen)
    await wait_for(lambda: queue.source.row_count() == 3, message="three pauses listed")
    return queue


@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
async def test_the_deck_decides_kestra_pauses(version: str, tmp_path: Path) -> None:
    replay = KestraReplay.load(version)
    app = kestra_deck(replay, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await queue_of(app)
        text = screen_text(app)
        assert "Kestra: paused executions" in text and "Release the payouts?" in text
        assert "2h59m" in text and "2h49m" in text  # paused since 09:00:02 and 09:10:02
        await pilot.press("enter")  # the oldest: GATE
        detail = await wait_for(lambda: isinstance(app.screen, ApprovalScreen) and app.screen)
        await wait_for(lambda: detail.execution is not None)
        text = screen_text(app)
        assert "reason" in text and "ticket" in text and "STRING" in text  # the form
        await pilot.press("a")
        await wait_for(lambda: isinstance(app.screen, DecisionScreen))
        await pilot.press(*"checked", "ctrl+s")
        await wait_for(lambda: any(r.method == "POST" and r.url.path.endswith("resume")
                                   for r in replay.requests), message="resumed")
        resume = next(r for r in replay.requests if r.url.path.endswith("resume"))
        assert 'name="reason"\r\n\r\nchecked' in resume.read().decode()


async def test_someone_else_decided_first_and_reject_keeps_the_comment(tmp_path: Path) -> None:
    replay = KestraReplay.load("2.0.0")
    app = kestra_deck(replay, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        queue = await queue_of(app)
        queue.table.select_key(f"{CONTESTED}:tr8CoNtE")
        replay.happen("elsewhere: resumed")  # from Kestra's UI, while the reviewer looks
        await pilot.press("x")
        await wait_for(lambda: isinstance(app.screen, DecisionScreen))
        await pilot.press(*"no", "ctrl+s")
        await wait_for(lambda: any(
            "not changed — execution 8CoNtEsTeDpAuSeOnE4rTy was already approved (resumed, "
            "now RUNNING) at 2025-06-01T11:00:00Z" in str(n.message) for n in app._notifications),
            message="first decision wins")
        await wait_for(lambda: queue.source.row_count() == 2)  # the queue re-read
        assert not [r for r in replay.requests if r.method in ("POST", "DELETE")]
        await wait_for(lambda: isinstance(app.screen, ApprovalsScreen))
        queue.table.select_key(f"{REJECT}:tr2ReJeC")
        await pilot.press("x")
        await wait_for(lambda: isinstance(app.screen, DecisionScreen))
        await pilot.press(*"not today", "ctrl+s")
        await wait_for(lambda: any(r.url.path.endswith("/labels") for r in replay.requests),
                       message="labelled")
        labels = json.loads(next(r for r in replay.requests
                                 if r.url.path.endswith("/labels")).read())
        assert {"key": "flowdeck.comment", "value": "not today"} in labels
        assert GATE  # untouched


async def settled_queue(pilot: Pilot[Any]) -> None:
    app: Any = pilot.app
    await queue_of(app)
    await wait_for(lambda: "Release the payouts?" in screen_text(app)
                   and "updated 0s ago" in screen_text(app))


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_kestra_pause_queue_snapshot(snap_compare: Any, size: tuple[int, int],
                                     tmp_path: Path) -> None:
    app = kestra_deck(KestraReplay.load("2.0.0"), tmp_path, show_toasts=False)
    assert snap_compare(app, terminal_size=size, run_before=settled_queue)


async def settled_detail(pilot: Pilot[Any]) -> None:
    await settled_queue(pilot)
    app: Any = pilot.app
    app.push_screen(ApprovalScreen(f"{GATE}:tr6GaTeW"))
    await wait_for(lambda: isinstance(app.screen, ApprovalScreen)
                   and app.screen.execution is not None
                   and "ticket" in screen_text(app))


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_kestra_pause_detail_snapshot(snap_compare: Any, size: tuple[int, int],
                                      tmp_path: Path) -> None:
    """The pause's `onResume` inputs are its rows: the form it resumes with."""
    app = kestra_deck(KestraReplay.load("2.0.0"), tmp_path, show_toasts=False)
    assert snap_compare(app, terminal_size=size, run_before=settled_detail)
