"""The `:wh` screen on a real engine (and over HTTP): deliveries, keys and messages; redeliver
with a confirmation; hidden in read-only mode and for a role that may not act; the approval of
an agent run shows its rows in full; the execution detail names the key that started it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from flowdeck.client.http import HttpBackend
from flowdeck.core.clock import ManualClock
from flowdeck.engine.engine import Engine, EngineSettings
from flowdeck.engine.keys import TokenStore
from flowdeck.server.app import ServerOptions
from flowdeck.tui.app import FlowdeckApp
from flowdeck.tui.screens.approvals import ApprovalScreen
from flowdeck.tui.screens.execution import ExecutionScreen
from flowdeck.tui.screens.webhooks import TITLES, WebhooksScreen
from flowdeck.tui.widgets.confirm import ConfirmScreen
from live_server import start_server, stop_server
from tui.deck_helpers import screen_text, wait_for
from tui.public_deck import EXTRA, FINAL, Seeded, deck_backend, seed, seeded_copy


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    return asyncio.run(seed(tmp_path_factory.mktemp("public-deck") / "template"))


@pytest.fixture
def seeded(template: Seeded, tmp_path: Path) -> Seeded:
    return seeded_copy(template, tmp_path)


def deck(seeded: Seeded, tmp_path: Path, **options: Any) -> FlowdeckApp:
    clock = ManualClock(FINAL)
    return FlowdeckApp(deck_backend(seeded, clock), clock=clock, user="tester",
                       save_dir=tmp_path, show_toasts=False, refresh_seconds=3600,
                       close_backend=True, initial="webhooks", **options)


async def loaded(app: FlowdeckApp, view: str, rows: int) -> WebhooksScreen:
    screen = await wait_for(lambda: isinstance(app.screen, WebhooksScreen) and app.screen)
    await wait_for(lambda: screen.view == view and screen.updated_at is not None
                   and screen.source.row_count() == rows, timeout=15)
    await wait_for(lambda: f"[{TITLES[view]}]" in screen_text(app)
                   and "updated 0s ago" in screen_text(app))  # painted
    if view == "deliveries" and rows:  # the detail of the row under the cursor, painted too
        await wait_for(lambda: (current := screen.current_delivery()) is not None
                       and f"delivery {current.id}" in screen_text(app))
    return screen  # type: ignore[no-any-return]


async def test_three_views_and_what_they_show(seeded: Seeded, tmp_path: Path) -> None:
    app = deck(seeded, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await loaded(app, "deliveries", 5)
        text = screen_text(app)
        assert text.count("dead") == 2 and text.count("in 1s") == 3
        assert "execution.pending_approval" in text and "http://127.0.0.1:9/hook" in text
        assert "target website" in text  # the key's name, not only its id
        assert "ConnectError" in text
        for secret in seeded.secrets:
            assert secret not in text
        await pilot.press("v")
        await loaded(app, "keys", 3)
        await wait_for(lambda: "may execute every agent" in screen_text(app))  # the first
        text = screen_text(app)
        for name, status in (("website", "active"), ("partner", "active"),
                             ("retired", "inactive")):
            assert any(name in line and status in line for line in text.splitlines()), name
        assert "01c0ffee…" in text
        await pilot.press("down")
        await wait_for(lambda: "may execute workflow_bfsi_marketing_template · 0 of 50"
                       in screen_text(app))
        assert all(secret not in text and secret[8:] not in text for secret in seeded.secrets)
        assert "signing-secret" not in text
        await pilot.press("v")
        screen = await loaded(app, "messages", 2)
        text = screen_text(app)
        assert "CUST001" in text and "CUST002" in text and "sent" in text
        # a message opens the execution that sent it: it names the key that started it
        await pilot.press("enter")
        detail = await wait_for(lambda: isinstance(app.screen, ExecutionScreen)
                                and app.screen.execution is not None and app.screen)
        assert detail.execution_id == seeded.first
        await wait_for(lambda: "public API, key website" in screen_text(app))
        text = screen_text(app)
        assert seeded.website in text and "Spring campaign" in text
        await pilot.press("escape")
        await wait_for(lambda: app.screen is screen)
        # the filter narrows the view as it is typed
        await pilot.press("slash", *"CUST002")
        await wait_for(lambda: screen.source.row_count() == 1)


async def test_redeliver_asks_then_sends_again(seeded: Seeded, tmp_path: Path) -> None:
    app = deck(seeded, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await loaded(app, "deliveries", 5)
        assert screen.check_action("redeliver", ()) is None  # a pending one: greyed
        await pilot.press("end")
        dead = await wait_for(lambda: (d := screen.current_delivery()) is not None
                              and d.status == "dead" and d)
        await pilot.press("R", "n")  # asked, and declined: nothing happens
        await wait_for(lambda: app.screen is screen)
        await pilot.press("R")
        dialog = await wait_for(lambda: isinstance(app.screen, ConfirmScreen) and app.screen)
        assert dead.id in screen_text(app) and dead.event in screen_text(app)
        assert dialog.query_one("#cancel").has_focus  # enter would not redeliver
        await pilot.press("y")
        backend: Any = app.backend

        async def state(engine: Engine) -> tuple[str, int]:
            found = await engine.outbox.get(dead.id)
            return found.status, found.attempts

        # pending again; the deck's engine tried once more (nothing listens) at once
        await wait_for(lambda: screen.current_delivery() is not None
                       and screen.current_delivery().status == "pending", timeout=15)
        assert (await backend.engine_call(state))[0] == "pending"


async def test_read_only_hides_redeliver(seeded: Seeded, tmp_path: Path) -> None:
    app = deck(seeded, tmp_path, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await loaded(app, "deliveries", 5)
        await pilot.press("end")
        await wait_for(lambda: screen.current_delivery() is not None
                       and screen.current_delivery().status == "dead")
        assert screen.check_action("redeliver", ()) is False
        assert "Redeliver" not in screen_text(app)
        await pilot.press("R")
        assert not isinstance(app.screen, ConfirmScreen)


async def look_as(app: FlowdeckApp, role: str) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await wait_for(lambda: isinstance(app.screen, WebhooksScreen)
                                and app.capabilities is not None and app.screen)
        if role == "admin":
            await loaded(app, "deliveries", 5)
            assert "target website" in screen_text(app)
        else:
            await wait_for(lambda: "need the admin role" in screen_text(app))
            assert screen.check_action("redeliver", ()) is False
            await pilot.press("v", "v")
            await loaded(app, "messages", 2)


async def test_over_http_by_role(seeded: Seeded, tmp_path: Path) -> None:
    engine = await Engine.open(EngineSettings(data_dir=seeded.data_dir, scheduler=False,
                                              envs={}, extra=EXTRA))
    server, task, url = await start_server(engine, ServerOptions(auth_required=True))
    try:
        tokens = TokenStore(engine.store, engine.clock)
        admin, viewer = (await tokens.create("admin", "ops"))[1], \
            (await tokens.create("viewer", "watcher"))[1]
        for token, role in ((admin, "admin"), (viewer, "viewer")):
            clock = ManualClock(FINAL)
            app = FlowdeckApp(HttpBackend(url, token=token), clock=clock, user="tester",
                              save_dir=tmp_path, show_toasts=False, refresh_seconds=3600,
                              close_backend=True, initial="webhooks")
            await look_as(app, role)
    finally:
        await stop_server(server, task)
        await engine.close()


async def test_an_agent_approval_shows_its_rows_in_full(seeded: Seeded,
                                                        tmp_path: Path) -> None:
    app = deck(seeded, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, "deliveries", 5)
        backend: Any = app.backend
        approvals = await backend.list_approvals("pending")
        [approval] = [a for a in approvals if a.execution_id == seeded.second]
        app.push_screen(ApprovalScreen(approval.id))
        screen = await wait_for(lambda: isinstance(app.screen, ApprovalScreen)
                                and app.screen.execution is not None and app.screen)
        body = await wait_for(lambda: str(screen.query_one("#body").render()))
        assert "requested by API key website" in body
        content = approval.rows[2]["generated_content"]
        assert len(content) > 80
        # every word of the last row's message is there, wrapped, not cut at a column width
        flat = " ".join(body.split())
        assert " ".join(content.split()) in flat
        assert "generated_content:" in body  # the long field follows its row
        await pilot.press("escape")
