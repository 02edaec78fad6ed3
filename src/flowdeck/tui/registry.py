"""The deck's screens and `:` commands, in one place.

The app's modes, the `:` command aliases, the `?` help and the palette's "Show ..." entries
are all built from `SCREENS` and `COMMANDS`, so they cannot disagree; adding a screen
(releases `:rel`, webhook deliveries `:wh`) is one `ScreenEntry` here.
"""

from __future__ import annotations

from dataclasses import dataclass

from flowdeck.tui.screens.approvals import ApprovalsScreen
from flowdeck.tui.screens.base import DeckScreen
from flowdeck.tui.screens.executions import ExecutionsScreen
from flowdeck.tui.screens.flows import FlowsScreen
from flowdeck.tui.screens.releases import ReleasesScreen
from flowdeck.tui.screens.staging import StagingScreen


@dataclass(frozen=True, slots=True)
class ScreenEntry:
    """A top-level screen: an app mode, opened by `:` and any of its aliases."""

    mode: str
    screen: type[DeckScreen]
    aliases: tuple[str, ...]
    summary: str

    @property
    def title(self) -> str:
        return f"Show {self.mode}"


@dataclass(frozen=True, slots=True)
class CommandEntry:
    """A `:` command that is not a screen."""

    name: str
    aliases: tuple[str, ...]
    usage: str
    summary: str


SCREENS: tuple[ScreenEntry, ...] = (
    ScreenEntry("executions", ExecutionsScreen, ("ex", "executions", "exe", "execution"),
                "the executions list"),
    ScreenEntry("flows", FlowsScreen, ("flows", "flow", "fl"), "the flows list"),
    ScreenEntry("approvals", ApprovalsScreen, ("ap", "approvals", "approval"),
                "the approvals queue (h: the decided ones)"),
    ScreenEntry("staging", StagingScreen, ("st", "staging"),
                "staging environments: clone, delete, follow the run"),
    ScreenEntry("releases", ReleasesScreen, ("rel", "releases", "release"),
                "releases per project: deploy, approve for production, revoke, the run"),
)

COMMANDS: tuple[CommandEntry, ...] = (
    CommandEntry("ns", ("ns", "namespace"), ":ns NAMESPACE",
                 "show only this namespace (:ns alone shows all)"),
    CommandEntry("theme", ("theme",), ":theme NAME",
                 "switch theme: dark, light or any installed theme's name"),
    CommandEntry("profile", ("profile", "ctx"), ":profile NAME",
                 "switch to a [profiles.NAME] backend (no NAME: list them)"),
    CommandEntry("quit", ("q", "quit"), ":q", "quit (asks first while this deck's engine "
                 "has runs in progress)"),
    CommandEntry("help", ("help",), ":help", "this help"),
)

#: mode -> screen class, as `App.MODES` takes it.
MODES: dict[str, type[DeckScreen]] = {entry.mode: entry.screen for entry in SCREENS}

#: alias -> the screen's mode or the command's name.
ALIASES: dict[str, str] = {
    **{alias: entry.mode for entry in SCREENS for alias in entry.aliases},
    **{alias: entry.name for entry in COMMANDS for alias in entry.aliases},
}


class CommandError(ValueError):
    """A `:` command that cannot be run."""


def parse_command(text: str) -> tuple[str, str]:
    """`":ns  prod "` -> ("ns", "prod"); raises CommandError for an unknown command."""
    text = text.strip().removeprefix(":").strip()
    if not text:
        raise CommandError("empty command")
    word, _, rest = text.partition(" ")
    name = ALIASES.get(word.lower())
    if name is None:
        raise CommandError(f"unknown command ':{word}' (press ? for the list)")
    return name, rest.strip()


def command_suggestions() -> list[str]:
    return sorted({f":{alias}" for alias in ALIASES})


def commands_help() -> list[tuple[str, str]]:
    """(how to type it, what it does) for every screen and command, for `?`."""
    rows = [("  ".join(f":{a}" for a in entry.aliases[:2]), entry.summary)
            for entry in SCREENS]
    rows.extend((entry.usage, entry.summary) for entry in COMMANDS)
    return rows
