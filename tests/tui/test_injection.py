"""Untrusted text (logs, flow descriptions, approval comments) renders inert and literal."""

from __future__ import annotations

from pathlib import Path

from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.core.clock import ManualClock
from flowdeck.tui.screens.approvals import ApprovalScreen
from flowdeck.tui.screens.execution import ExecutionScreen
from flowdeck.tui.screens.flows import FlowScreen
from tui.deck_helpers import make_app, screen_text, wait_for

# YAML double-quoted: \e is ESC, \a is BEL.
PAYLOAD_YAML = r"[TODO] [/] [bold]x \e]0;pwned\a \e[2J [@click=app.quit]q[/]"
MARKUP = ["[TODO]", "[/]", "[bold]x", "[@click=app.quit]q[/]"]

FLOW = f"""
id: inject
namespace: team.evil
description: "desc {PAYLOAD_YAML}"
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "log {PAYLOAD_YAML}"
  - id: gate
    type: flowdeck.approval.Request
    title: "title {PAYLOAD_YAML}"
    rows: [{{service: "svc {PAYLOAD_YAML}"}}]
"""
COMMENT = "comment [TODO] [/] [bold]x \x1b]0;pwned\x07 \x1b[2J"


def assert_inert(text: str, *prefixes: str) -> None:
    assert "\x1b" not in text and "\x07" not in text
    for prefix in prefixes:
        line = next((ln for ln in text.splitlines() if prefix in ln), None)
        assert line is not None, f"{prefix!r} not on screen:\n{text}"
        assert "pwned" not in line  # the whole OSC sequence is dropped, not just ESC
        for token in MARKUP:
            assert token in line, f"{token!r} not shown literally in {line!r}"


async def test_escape_and_markup_payloads_render_literally(
        backend: EmbeddedBackend, clock: ManualClock, tmp_path: Path) -> None:
    await backend.apply_flow(FLOW)
    ex = await backend.create_execution("team.evil", "inject")
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(200, 40)):
        await wait_for(lambda: app.connection == "connected")
        # the log pane
        app.push_screen(ExecutionScreen(ex.id))
        detail = await wait_for(lambda: isinstance(app.screen, ExecutionScreen) and app.screen)
        await wait_for(lambda: any("log [TODO]" in line
                                   for line in detail.log_view.lines_plain()))
        await wait_for(lambda: "log [TODO]" in screen_text(app))
        assert_inert(screen_text(app), "log [TODO]")
        # the flow description (header of the flow screen)
        app.push_screen(FlowScreen("team.evil", "inject"))
        flow = await wait_for(lambda: isinstance(app.screen, FlowScreen) and app.screen)
        await wait_for(lambda: flow.flow is not None and "desc [TODO]" in screen_text(app))
        assert_inert(screen_text(app), "desc [TODO]")
        # an approval title, its rows and a reviewer's comment
        [approval] = await backend.list_approvals("pending")
        await backend.decide(approval.id, approve=False, by="mallory", comment=COMMENT)
        app.push_screen(ApprovalScreen(approval.id))
        screen = await wait_for(lambda: isinstance(app.screen, ApprovalScreen) and app.screen)
        await wait_for(lambda: screen.approval is not None and screen.approval.comment
                       and "svc [TODO]" in screen_text(app))
        text = screen_text(app)
        assert_inert(text, "title [TODO]", "svc [TODO]")
        assert "comment [TODO] [/] [bold]x" in text
        # toasts are literal too
        app.toast("toast [TODO] [/] \x1b]0;pwned\x07")
        await wait_for(lambda: any("toast [TODO] [/]" in str(n.message)
                                   for n in app._notifications))
        assert app.is_running  # nothing crashed, no [@click] action fired
