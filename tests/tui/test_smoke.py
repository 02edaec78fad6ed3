from __future__ import annotations

from pathlib import Path

from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.core.clock import ManualClock
from flowdeck.tui.screens.executions import ExecutionsScreen
from tui.deck_flows import FAIL, HELLO
from tui.deck_helpers import make_app, screen_text, wait_for


async def test_app_starts_and_lists_executions(backend: EmbeddedBackend, clock: ManualClock,
                                               tmp_path: Path) -> None:
    await backend.apply_flow(HELLO)
    await backend.apply_flow(FAIL)
    ex = await backend.create_execution("team.alpha", "hello")
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await wait_for(lambda: isinstance(app.screen, ExecutionsScreen) and app.screen)
        await wait_for(lambda: screen.source.total >= 1 and app.connection == "connected")
        text = screen_text(app)
        assert "team.alpha.hello" in text, text
        assert ex.id[-8:] in text
        await pilot.press("q")
