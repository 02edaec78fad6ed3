"""The header line on every screen: backend, connection, data age, approvals badge."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.content import Content
from textual.widget import Widget

from flowdeck.core.sanitize import sanitize_line

if TYPE_CHECKING:
    from flowdeck.tui.app import FlowdeckApp


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "not loaded yet"
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"updated {seconds}s ago"
    if seconds < 7200:
        return f"updated {seconds // 60}m ago"
    return f"updated {seconds // 3600}h ago"


class StatusBar(Widget):
    DEFAULT_CSS = """
    StatusBar { dock: top; height: 1; background: $panel; color: $foreground; }
    """

    def on_mount(self) -> None:
        self.set_interval(1.0, self.refresh)

    def render(self) -> Content:
        from flowdeck.tui.screens.base import DeckScreen

        app: FlowdeckApp = self.app  # type: ignore[assignment]
        # The screen this bar is on, not the one on top: behind a dialog, the list's bar keeps
        # saying how old the list's data is.
        screen = self.screen
        parts: list[tuple[str, str] | str] = [(" flowdeck ", "bold $accent"), "│ "]
        parts.append((sanitize_line(app.backend.name, 60), "$foreground"))
        if app.connection == "connected":
            parts.append(("  ● connected", "$success"))
        elif app.connection == "connecting":
            parts.append(("  ○ connecting", "$warning"))
        else:
            parts.append(("  ✕ " + app.connection, "$error"))
        if isinstance(screen, DeckScreen):
            stale = screen.is_stale()
            parts.append(("  " + age_text(screen.data_age()),
                          "$stale" if stale else "$text-muted"))
        if app.serving_url:
            parts.append(("  ⇄ " + sanitize_line(app.serving_url, 60), "$secondary"))
        if app.namespace:
            parts.append(("  ns:" + sanitize_line(app.namespace, 40), "$secondary"))
        if app.read_only:
            parts.append(("  READ-ONLY", "bold $warning"))
        elif app.role is not None and app.role != "admin":
            parts.append(("  role: " + sanitize_line(app.role, 20), "$warning"))
        count = app.pending_approvals
        badge = f"  ⚑ {count} approval{'s' if count != 1 else ''} "
        parts.append((badge, "bold $badge-approvals" if count else "$text-muted"))
        return Content.assemble(*parts)
