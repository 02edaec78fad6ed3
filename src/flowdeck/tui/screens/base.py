"""What every deck screen shares: the header, the footer, read-only checks, data age."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from textual.screen import Screen

from flowdeck.tui.commands import MUTATING_ACTIONS

if TYPE_CHECKING:
    from flowdeck.tui.app import FlowdeckApp


class DeckScreen(Screen[None]):
    SCOPE: ClassVar[str] = ""
    TITLE_TEXT: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.updated_at: datetime | None = None

    @property
    def deck(self) -> FlowdeckApp:
        return self.app  # type: ignore[return-value]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # A state-changing action in read-only mode: hidden from footer and palette, inert.
        return not (action in MUTATING_ACTIONS and self.deck.read_only)

    def stamp(self) -> None:
        self.updated_at = self.deck.clock.now()
        self.set_class(False, "-stale")
        from flowdeck.tui.widgets.status import StatusBar

        for bar in self.query(StatusBar):
            bar.refresh()

    def data_age(self) -> float | None:
        if self.updated_at is None:
            return None
        return (self.deck.clock.now() - self.updated_at).total_seconds()

    def is_stale(self) -> bool:
        age = self.data_age()
        stale = self.deck.connection != "connected" or (
            age is not None and age > self.deck.stale_after)
        self.set_class(stale, "-stale")
        return stale

    def on_live_event(self, message: Any) -> None:
        """The app forwards live events (executions, approvals) to every screen."""
