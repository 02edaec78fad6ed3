"""The deck's screen contract and its one registry of screens."""

from __future__ import annotations

import inspect
from pathlib import Path

from flowdeck.tui import app as app_module
from flowdeck.tui.app import FlowdeckApp
from flowdeck.tui.commands import CATALOGUE
from flowdeck.tui.registry import ALIASES, MODES, SCREENS, command_suggestions, parse_command
from flowdeck.tui.screens.base import DeckScreen, ListScreen

HOOKS = ("reload", "namespace_changed", "on_live_event", "handle_back", "reset_for_backend",
         "data_age", "is_stale")


def test_every_hook_is_declared_on_deck_screen_with_a_default() -> None:
    for name in HOOKS:
        assert callable(DeckScreen.__dict__.get(name)), name


def test_modes_commands_and_palette_come_from_the_registry() -> None:
    assert FlowdeckApp.MODES == MODES == {e.mode: e.screen for e in SCREENS}
    for entry in SCREENS:
        assert issubclass(entry.screen, ListScreen) and entry.mode == entry.screen.SCOPE
        for alias in entry.aliases:
            assert parse_command(f":{alias}") == (entry.mode, "")
            assert f":{alias}" in command_suggestions()
    assert set(ALIASES.values()) >= set(MODES)
    # every list screen's keys are in the catalogue (help and footer come from it)
    scopes = {scope for action in CATALOGUE for scope in action.scopes}
    assert set(MODES) <= scopes


def test_the_app_reaches_screens_through_the_contract_only() -> None:
    source = inspect.getsource(app_module)
    assert "getattr(screen" not in source and "getattr(self.screen" not in source
    for path in (Path(app_module.__file__).parent / "widgets").glob("*.py"):
        assert "getattr(screen" not in path.read_text(), path
