"""Snapshots of `:wh` (deliveries, API keys, agent messages, the redeliver question) and of an
agent run's approval, at 120x40 and 80x24.

Deterministic: the data is seeded once (`tui.public_deck`: fixed clock, ids and key secrets;
the webhook target is a closed port on 127.0.0.1, so every attempt fails the same way and the
clock alone decides the retries), copied for each snapshot, and shown by a deck whose clock is
the seed's last instant (nothing is due then); TZ=UTC, no toasts, no cursor blink.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from flowdeck.core.clock import ManualClock
from flowdeck.tui.app import FlowdeckApp
from flowdeck.tui.screens.approvals import ApprovalScreen
from flowdeck.tui.screens.webhooks import TITLES, WebhooksScreen
from flowdeck.tui.widgets.confirm import ConfirmScreen
from tui.deck_helpers import screen_text, wait_for
from tui.public_deck import FINAL, Seeded, deck_backend, seed, seeded_copy

SIZES = [(120, 40), (80, 24)]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    return asyncio.run(seed(tmp_path_factory.mktemp("public-snapshots") / "template"))


def deck(seeded: Seeded, tmp: Path) -> FlowdeckApp:
    clock = ManualClock(FINAL)
    return FlowdeckApp(deck_backend(seeded, clock), clock=clock, user="tester", save_dir=tmp,
                       show_toasts=False, refresh_seconds=3600, close_backend=True,
                       initial="webhooks")


async def view(pilot: Pilot[Any], name: str, rows: int) -> WebhooksScreen:
    app: Any = pilot.app
    await wait_for(lambda: app.connection == "connected")
    screen: WebhooksScreen = await wait_for(
        lambda: isinstance(app.screen, WebhooksScreen) and app.screen)
    for _ in range(3):
        if screen.view == name:
            break
        await pilot.press("v")
    await wait_for(lambda: screen.view == name and screen.updated_at is not None
                   and screen.source.row_count() == rows, timeout=15)
    # Painted and stamped (a dialog pushed on top freezes what is behind it as it is now).
    await wait_for(lambda: f"[{TITLES[name]}]" in screen_text(app)
                   and "updated 0s ago" in screen_text(app))
    return screen


async def go_deliveries(pilot: Pilot[Any]) -> None:
    await view(pilot, "deliveries", 5)


async def go_keys(pilot: Pilot[Any]) -> None:
    await view(pilot, "keys", 3)
    await wait_for(lambda: "may execute" in screen_text(pilot.app))  # type: ignore[arg-type]


async def go_messages(pilot: Pilot[Any]) -> None:
    await view(pilot, "messages", 2)
    await wait_for(lambda: "message id" in screen_text(pilot.app))  # type: ignore[arg-type]


async def go_redeliver(pilot: Pilot[Any]) -> None:
    screen = await view(pilot, "deliveries", 5)
    await pilot.press("end")
    await wait_for(lambda: screen.current_delivery() is not None
                   and screen.current_delivery().status == "dead")  # type: ignore[union-attr]
    await pilot.press("R")
    await wait_for(lambda: isinstance(pilot.app.screen, ConfirmScreen))


async def go_approval(pilot: Pilot[Any]) -> None:
    await view(pilot, "deliveries", 5)
    app: Any = pilot.app
    pending = await app.backend.list_approvals("pending")
    app.push_screen(ApprovalScreen(pending[0].id))
    screen = await wait_for(lambda: isinstance(app.screen, ApprovalScreen)
                            and app.screen.execution is not None and app.screen)
    await wait_for(lambda: "generated_content:" in str(screen.query_one("#body").render()))
    await wait_for(lambda: "requested by API key website" in screen_text(app))


SCENES = {"deliveries": go_deliveries, "keys": go_keys, "messages": go_messages,
          "redeliver": go_redeliver, "approval": go_approval}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", list(SCENES))
def test_webhooks_snapshot(snap_compare: Any, template: Seeded, name: str,
                           size: tuple[int, int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        seeded = seeded_copy(template, Path(tmp))
        assert snap_compare(deck(seeded, Path(tmp)), terminal_size=size,
                            run_before=SCENES[name])
