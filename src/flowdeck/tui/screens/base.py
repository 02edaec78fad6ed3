"""The contract between the deck app and its screens, and what list screens share.

The app talks to its screens only through the hooks declared on `DeckScreen`, each with a
default: `reload`, `namespace_changed`, `on_live_event`, `handle_back`, `reset_for_backend`,
`data_age` and `is_stale`. A screen overrides the ones it needs; nothing is probed for.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.screen import Screen
from textual.widgets import Input

from flowdeck.core.models import Approval, Execution
from flowdeck.tui.commands import ACTION_ROLES
from flowdeck.tui.widgets.table import VirtualTable

if TYPE_CHECKING:
    from flowdeck.tui.app import FlowdeckApp


class DeckScreen(Screen[None]):
    """A screen of the deck (a list or an object's detail), shown with the header bar."""

    #: The catalogue scope of this screen's keys (`flowdeck.tui.commands`).
    SCOPE: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.updated_at: datetime | None = None

    @property
    def deck(self) -> FlowdeckApp:
        return self.app  # type: ignore[return-value]

    # -- the hooks the app calls --------------------------------------------------------

    def reload(self) -> None:
        """Read what the screen shows from the backend again (after connecting, on a
        profile switch, on ctrl+r)."""

    def namespace_changed(self) -> None:
        """`:ns` changed the namespace the deck shows."""
        self.reload()

    def on_live_event(self, item: Execution | Approval) -> None:
        """A live change from the backend (the app forwards each one to every screen)."""

    def handle_back(self) -> bool:
        """Esc: True when the screen used it (closed a box, cleared marks), so the app does
        not go back a screen."""
        return False

    def reset_for_backend(self) -> None:
        """Another backend (`:profile`): forget everything the old one showed."""
        self.updated_at = None

    def data_age(self) -> float | None:
        """Seconds since the data on screen was read (None: not loaded yet)."""
        if self.updated_at is None:
            return None
        return (self.deck.clock.now() - self.updated_at).total_seconds()

    def is_stale(self) -> bool:
        """Whether the header shows the data as stale (and the screen greys it)."""
        age = self.data_age()
        stale = self.deck.connection != "connected" or (
            age is not None and age > self.deck.stale_after)
        self.set_class(stale, "-stale")
        return stale

    # -- shared behaviour ---------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # A state-changing action the deck may not take (read-only mode, or a token whose
        # role is too low): hidden from footer, help and palette, and inert.
        needed = ACTION_ROLES.get(action)
        return needed is None or self.deck.may(needed)

    def stamp(self) -> None:
        self.updated_at = self.deck.clock.now()
        self.set_class(False, "-stale")
        from flowdeck.tui.widgets.status import StatusBar

        for bar in self.query(StatusBar):
            bar.refresh()

    def focus_input(self, box: Input) -> None:
        """Focus a text box and hold every key that arrives until it has the focus, so
        keys typed right after `/` reach the box, in order, and never the list."""
        box.focus()
        self.deck.hold_keys(lambda: self.app.focused is box, nudge=box.focus)

    def nothing_selected(self) -> None:
        self.deck.toast("nothing selected: move to a row first", severity="warning")


class ListScreen(DeckScreen):
    """A screen whose main widget is a `#table` list, with a `/` filter box `#filter`."""

    filter_text: str = ""

    @property
    def table(self) -> VirtualTable:
        return self.query_one("#table", VirtualTable)

    @property
    def filter_box(self) -> Input:
        return self.query_one("#filter", Input)

    def apply_filter(self) -> None:
        """Show the rows that match `filter_text` (called as the operator types)."""
        raise NotImplementedError

    def action_filter(self) -> None:
        box = self.filter_box
        box.add_class("-shown")
        self.focus_input(box)

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.apply_filter()

    @on(Input.Submitted, "#filter")
    def filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            self.filter_box.remove_class("-shown")
        self.table.focus()

    def close_filter(self) -> bool:
        """Esc with a filter open or set: clear it (True), else leave esc to others (False)."""
        box = self.filter_box
        if box.has_class("-shown") or self.filter_text:
            box.value = ""
            box.remove_class("-shown")
            self.table.focus()
            return True
        return False

    def on_screen_resume(self) -> None:
        """Coming back to the list: the focus is on the rows, never left in the filter box
        (an empty box is closed)."""
        if not self.is_mounted:
            return
        box = self.filter_box
        if not box.value.strip():
            box.remove_class("-shown")
        if self.focused is None or self.focused is box:
            self.table.focus()
