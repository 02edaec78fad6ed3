"""What every deck screen shares: the header, the footer, read-only checks, data age."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on
from textual.screen import Screen
from textual.widgets import Input

from flowdeck.tui.commands import MUTATING_ACTIONS
from flowdeck.tui.widgets.table import VirtualTable

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


class FilteredListScreen(DeckScreen):
    """A list screen with a `#table` and a `/` filter box: the filter keys, in one place."""

    filter_text: str

    @property
    def table(self) -> VirtualTable:
        return self.query_one("#table", VirtualTable)

    def rebuild(self) -> None:
        raise NotImplementedError

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("-shown")
        box.focus()

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.table.cursor = 0
        self.rebuild()

    @on(Input.Submitted, "#filter")
    def filter_submitted(self) -> None:
        self.table.focus()

    def close_filter(self) -> bool:
        """Esc with a filter open or set: clear it (True), else leave esc to others (False)."""
        box = self.query_one("#filter", Input)
        if box.has_class("-shown") or self.filter_text:
            box.value = ""
            box.remove_class("-shown")
            self.table.focus()
            return True
        return False

