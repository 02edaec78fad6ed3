"""The ctrl+p palette: every action of the current screen, the global ones, the screens of
the registry and the themes."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content

from flowdeck.tui.commands import CATALOGUE, GLOBAL
from flowdeck.tui.registry import SCREENS
from flowdeck.tui.screens.base import DeckScreen

if TYPE_CHECKING:
    from flowdeck.tui.app import FlowdeckApp


class DeckCommandProvider(Provider):
    """Entries from the action catalogue and the screen registry."""

    def _entries(self) -> Iterable[tuple[str, str, Any]]:
        app: FlowdeckApp = self.app  # type: ignore[assignment]
        screen = self.screen
        scope = screen.SCOPE if isinstance(screen, DeckScreen) else None
        for entry in CATALOGUE:
            if not entry.palette or not app.may(entry.role):
                continue
            if GLOBAL in entry.scopes:
                target: Any = app
                action = entry.action.removeprefix("app.")
            elif scope in entry.scopes:
                target = screen
                action = entry.action
            else:
                continue
            key = f" ({entry.key_display or entry.key})" if entry.key else ""
            yield (f"{entry.description}{key}", entry.id, partial(target.run_action, action))
        for item in SCREENS:
            yield (f"{item.title} (:{item.aliases[0]})", f"show-{item.mode}",
                   partial(app.show_list, item.mode))
        for theme in sorted(app.available_themes):
            yield (f"Theme: {theme}", "theme", partial(app.set_theme, theme))

    async def discover(self) -> Hits:
        for title, help_id, callback in self._entries():
            yield DiscoveryHit(Content(title), callback, help=help_id)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_id, callback in self._entries():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_id)
