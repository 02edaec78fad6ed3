"""Type-ahead: keys that arrive while a prompt, a dialog or a screen is opening.

Keys typed fast (a paste, a laggy SSH link, a terminal multiplexer) arrive in one read. Textual
hands each to the widget that has the focus *now*, but a prompt takes the focus a moment after
the key that opened it: the keys after `/` would go to the list (`/r` restarted a run). The
app therefore holds the keys that arrive while something is opening in a `KeyHold`, and takes
them, in order, once it is ready (its text box has the focus, its screen is mounted and
focused). A hold that never becomes ready lets its keys go after `TIMEOUT` seconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from textual import events
from textual.screen import Screen


@dataclass(slots=True)
class KeyHold:
    """Keys waiting for `ready()`; `nudge` is called while it is not (e.g. focus again)."""

    #: Seconds between checks of `ready`.
    POLL = 0.005
    #: Seconds after which held keys go on even if `ready` never became true.
    TIMEOUT = 2.0

    ready: Callable[[], bool]
    deadline: float
    nudge: Callable[[], object] | None = None
    keys: list[events.Key] = field(default_factory=list)

    def also(self, ready: Callable[[], bool], deadline: float,
             nudge: Callable[[], object] | None) -> None:
        """Wait for this too (a second opening while the first is not ready yet)."""
        first = self.ready
        self.ready = lambda: first() and ready()
        self.deadline = max(self.deadline, deadline)
        self.nudge = nudge or self.nudge

    def is_ready(self) -> bool:
        try:
            return bool(self.ready())
        except Exception:  # a widget being removed: try again at the next poll
            return False

    def poke(self) -> None:
        if self.nudge is not None:
            with contextlib.suppress(Exception):  # gone: the deadline lets the keys go
                self.nudge()


def screen_ready(screen: Screen[Any]) -> bool:
    """A screen is ready for keys once it is mounted and something in it has the focus (or
    nothing in it can have it)."""
    return screen.is_mounted and (screen.focused is not None or not screen.focus_chain)
