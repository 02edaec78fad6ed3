"""App shell: command mode, help, palette, theme, namespace, read-only, header badge."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.config import ConfigError, load_settings
from flowdeck.core.clock import ManualClock
from flowdeck.tui.commands import bindings_for
from flowdeck.tui.registry import CommandError, parse_command
from flowdeck.tui.screens.approvals import ApprovalsScreen
from flowdeck.tui.screens.executions import ExecutionsScreen
from flowdeck.tui.screens.flows import FlowsScreen
from flowdeck.tui.screens.help import HelpScreen
from flowdeck.tui.screens.releases import ReleasesScreen
from flowdeck.tui.screens.staging import StagingScreen
from flowdeck.tui.theme import load_themes
from tui.deck_flows import APPROVAL, HELLO
from tui.deck_helpers import make_app, screen_text, wait_for


def test_command_aliases() -> None:
    assert parse_command(":ex") == ("executions", "")
    assert parse_command(":executions") == ("executions", "")
    assert parse_command(":ap") == ("approvals", "")
    assert parse_command(":ns  prod.x ") == ("ns", "prod.x")
    assert parse_command("theme flowdeck-light") == ("theme", "flowdeck-light")
    try:
        parse_command(":nope")
    except CommandError as exc:
        assert "unknown command" in str(exc)
    else:
        raise AssertionError("no error")
    ids = {b.id for b in bindings_for("executions")}
    assert {"kill", "restart", "replay", "filter", "open", "mark"} <= ids


def test_bundled_themes_have_state_variables() -> None:
    themes, problems = load_themes([])
    assert not problems
    names = {t.name for t in themes}
    assert {"flowdeck-dark", "flowdeck-light"} <= names
    for theme in themes:
        assert theme.variables["state-failed"] == theme.error
        assert theme.variables["state-success"] == theme.success


def test_the_example_theme_loads() -> None:
    """`themes/` holds an example for the operator's own themes; it must be usable."""
    examples = Path(__file__).resolve().parents[2] / "themes"
    themes, problems = load_themes([examples])
    assert not problems
    example = next(t for t in themes if t.name == "example-solarized")
    assert example.variables["state-paused"] == "#d33682"
    assert example.variables["state-failed"] == example.error  # unset: from `error`


async def type_command(pilot, text: str) -> None:  # type: ignore[no-untyped-def]
    await pilot.press("colon")
    await wait_for(lambda: pilot.app.screen.__class__.__name__ == "CommandPrompt")
    await pilot.press(*list(text.removeprefix(":")), "enter")


async def test_command_mode_switches_screens(backend: EmbeddedBackend, clock: ManualClock,
                                             tmp_path: Path) -> None:
    await backend.apply_flow(HELLO)
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(lambda: isinstance(app.screen, ExecutionsScreen))
        await type_command(pilot, ":flows")
        await wait_for(lambda: isinstance(app.screen, FlowsScreen))
        await wait_for(lambda: "team.alpha" in screen_text(app))
        await type_command(pilot, ":ap")
        await wait_for(lambda: isinstance(app.screen, ApprovalsScreen))
        await type_command(pilot, ":ex")
        await wait_for(lambda: isinstance(app.screen, ExecutionsScreen))
        await type_command(pilot, ":ns team.alpha")
        await wait_for(lambda: app.namespace == "team.alpha")
        await wait_for(lambda: "ns:team.alpha" in screen_text(app))
        await type_command(pilot, ":ns")
        await wait_for(lambda: app.namespace is None)
        await type_command(pilot, ":theme flowdeck-light")
        await wait_for(lambda: app.theme == "flowdeck-light")
        await type_command(pilot, ":st")
        await wait_for(lambda: isinstance(app.screen, StagingScreen))
        await type_command(pilot, ":rel")
        await wait_for(lambda: isinstance(app.screen, ReleasesScreen))


async def test_help_lists_current_screen_actions(backend: EmbeddedBackend, clock: ManualClock,
                                                 tmp_path: Path) -> None:
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(lambda: isinstance(app.screen, ExecutionsScreen))
        await pilot.press("question_mark")
        await wait_for(lambda: isinstance(app.screen, HelpScreen))
        text = str(app.screen.query_one("#help-text").render())
        assert "Kill" in text and "This screen (executions)" in text and ":ns" in text
        await pilot.press("escape")
        await wait_for(lambda: isinstance(app.screen, ExecutionsScreen))


async def test_read_only_hides_state_changing_actions(backend: EmbeddedBackend,
                                                      clock: ManualClock,
                                                      tmp_path: Path) -> None:
    await backend.apply_flow(HELLO)
    await backend.create_execution("team.alpha", "hello")
    app = make_app(backend, clock, tmp_path, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await wait_for(lambda: isinstance(app.screen, ExecutionsScreen) and app.screen)
        await wait_for(lambda: screen.source.total == 1)
        shown = {b.binding.action for b in app.screen.active_bindings.values()
                 if app.screen.check_action(b.binding.action, ())}
        assert "kill" not in shown and "restart" not in shown and "filter" in shown
        assert "READ-ONLY" in screen_text(app)
        await pilot.press("ctrl+k")  # inert: no confirmation dialog
        await pilot.press("question_mark")
        await wait_for(lambda: isinstance(app.screen, HelpScreen))
        assert "Kill" not in str(app.screen.query_one("#help-text").render())


async def test_pending_approval_badge_and_toast(backend: EmbeddedBackend, clock: ManualClock,
                                                tmp_path: Path) -> None:
    await backend.apply_flow(APPROVAL)
    app = make_app(backend, clock, tmp_path, bell=True)
    rang: list[bool] = []
    app.bell = lambda: rang.append(True)  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)):
        await wait_for(lambda: app.connection == "connected" and app._pending_ready)
        await backend.create_execution("team.alpha", "gate")
        await wait_for(lambda: app.pending_approvals == 1, message="badge")
        await wait_for(lambda: "⚑ 1 approval" in screen_text(app))
        await wait_for(lambda: any("Ship 1.2.3?" in str(n.message) for n in app._notifications))
        assert rang


def test_deck_confirm_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """`[deck] confirm`: documented in config.example.toml (true), typed, overridable."""
    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    monkeypatch.delenv("FLOWDECK_CONFIG", raising=False)
    assert load_settings(str(example)).deck.confirm is True
    monkeypatch.setenv("FLOWDECK_DECK__CONFIRM", "false")
    assert load_settings(str(example)).deck.confirm is False
    monkeypatch.setenv("FLOWDECK_DECK__CONFIRM", "perhaps")
    with pytest.raises(ConfigError, match="FLOWDECK_DECK__CONFIRM"):
        load_settings(str(example))
