"""Snapshots of the staging screen at 120x40 and 80x24: the list, the clone form, the
typed-name delete dialog and a finished clone's progress panel.

Deterministic: a fixed ManualClock (moved only while seeding, so the ages differ), fixed
environment names, deterministic ids, TZ=UTC, no toasts, no cursor blink; the environments are
cloned by the bundled flows through the app's own backend before the deck lists them.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from flowdeck.client.backend import Backend
from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.client.staging import StagingClient
from flowdeck.core.clock import ManualClock
from flowdeck.core.ids import DeterministicIds
from flowdeck.engine.engine import EngineSettings
from flowdeck.tui.app import FlowdeckApp
from flowdeck.tui.screens.staging import StagingScreen
from flowdeck.tui.widgets.staging_forms import CloneFormScreen, CloneParams, TypedNameConfirm
from tui.deck_helpers import START, screen_text, wait_for

SIZES = [(120, 40), (80, 24)]


def deck(tmp: Path) -> FlowdeckApp:
    clock = ManualClock(START)
    settings = EngineSettings(data_dir=tmp / "data", scheduler=False, envs={},
                              extra={"staging": {}})
    backend = EmbeddedBackend(settings, clock=clock, ids=DeterministicIds())

    async def seed(backend: Backend) -> None:
        staging = StagingClient(backend, await backend.connect())
        await staging.clone("acme-corp", environment_name="staging-acme", timeout=30)
        clock.advance(timedelta(hours=2))
        await staging.clone("beta", environment_name="staging-beta", skip_database=True,
                            timeout=30)
        clock.advance(timedelta(minutes=25))
        await staging.clone("gamma", environment_name="staging-gamma", timeout=30)
        clock.advance(timedelta(seconds=30))

    return FlowdeckApp(backend, clock=clock, user="tester", save_dir=tmp, show_toasts=False,
                       refresh_seconds=3600, startup=seed, close_backend=True,
                       initial="staging")


def settled(screen: StagingScreen, rows: int) -> bool:
    return screen.loaded and not screen.busy and screen.source.row_count() == rows


async def go_list(pilot: Pilot[Any]) -> None:
    app: Any = pilot.app
    await wait_for(lambda: app.connection == "connected")
    screen = await wait_for(lambda: isinstance(app.screen, StagingScreen) and app.screen)
    await wait_for(lambda: settled(screen, 3), timeout=20)
    # Painted and stamped: a dialog pushed on top freezes the header behind it as it is now.
    await wait_for(lambda: "updated 0s ago" in screen_text(app))


async def go_clone_form(pilot: Pilot[Any]) -> None:
    await go_list(pilot)
    app: Any = pilot.app
    await pilot.press("c")
    form = await wait_for(lambda: isinstance(app.screen, CloneFormScreen) and app.screen)
    await pilot.press(*"delta")
    await wait_for(lambda: form.query_one("#client").value == "delta")


async def go_delete(pilot: Pilot[Any]) -> None:
    await go_list(pilot)
    app: Any = pilot.app
    await pilot.press("d")
    dialog = await wait_for(lambda: isinstance(app.screen, TypedNameConfirm) and app.screen)
    await pilot.press("tab", *"staging-gam")  # not the whole name yet: Delete is disabled
    await wait_for(lambda: dialog.query_one("#typed").value == "staging-gam")


async def go_progress(pilot: Pilot[Any]) -> None:
    await go_list(pilot)
    app: Any = pilot.app
    screen: StagingScreen = app.screen
    screen.start_clone(CloneParams("delta", environment_name="staging-delta"))
    await wait_for(lambda: screen.operation is not None and screen.operation.finished)
    await wait_for(lambda: settled(screen, 4) and screen.run_log.line_count == 3, timeout=20)


SCENES = {"list": go_list, "clone-form": go_clone_form, "delete": go_delete,
          "progress": go_progress}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", list(SCENES))
def test_staging_snapshot(snap_compare: Any, name: str, size: tuple[int, int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        assert snap_compare(deck(Path(tmp)), terminal_size=size, run_before=SCENES[name])
