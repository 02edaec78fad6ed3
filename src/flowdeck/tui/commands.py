"""The one action catalogue: key bindings, the footer, `?` help and the ctrl+p palette.

Each `DeckAction` names a Textual action, its default key, the screens it belongs to and
whether it changes anything (read-only mode hides those everywhere). Users rebind by id in
`[tui.keys]` (`kill = "ctrl+x"`), which goes to `App.set_keymap`. `:` commands and their
aliases are parsed here too, so the palette, help and command mode cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content

if TYPE_CHECKING:
    from flowdeck.tui.app import FlowdeckApp

GLOBAL = "global"


@dataclass(frozen=True, slots=True)
class DeckAction:
    id: str
    key: str
    action: str
    description: str
    scopes: tuple[str, ...]
    mutates: bool = False
    footer: bool = True
    palette: bool = True
    key_display: str | None = None


CATALOGUE: tuple[DeckAction, ...] = (
    # everywhere
    DeckAction("command", "colon", "app.command_mode", "Command", (GLOBAL,), key_display=":"),
    DeckAction("help", "question_mark", "app.help", "Help", (GLOBAL,), key_display="?"),
    DeckAction("back", "escape", "app.back", "Back", (GLOBAL,), footer=False, palette=False),
    DeckAction("show-executions", "", "app.show('executions')", "Show executions", (GLOBAL,),
               footer=False),
    DeckAction("show-flows", "", "app.show('flows')", "Show flows", (GLOBAL,), footer=False),
    DeckAction("show-approvals", "", "app.show('approvals')", "Show approvals", (GLOBAL,),
               footer=False),
    DeckAction("show-staging", "", "app.show('staging')", "Show staging environments",
               (GLOBAL,), footer=False),
    DeckAction("quit", "ctrl+q", "app.quit", "Quit", (GLOBAL,), footer=False),
    # lists
    DeckAction("filter", "slash", "filter", "Filter",
               ("executions", "flows", "approvals", "staging"), key_display="/"),
    DeckAction("open", "enter", "open", "Open", ("executions", "flows", "approvals")),
    DeckAction("mark", "space", "mark", "Mark", ("executions", "approvals")),
    DeckAction("sort", "s", "sort", "Sort column", ("executions",)),
    DeckAction("sort-reverse", "S", "sort_reverse", "Reverse sort", ("executions",),
               footer=False),
    DeckAction("reload", "ctrl+r", "reload", "Reload",
               ("executions", "flows", "approvals", "staging"), footer=False),
    # executions and execution detail
    DeckAction("kill", "ctrl+k", "kill", "Kill", ("executions", "execution"), mutates=True),
    DeckAction("restart", "r", "restart", "Restart", ("executions", "execution"),
               mutates=True),
    DeckAction("replay", "R", "replay", "Replay", ("executions", "execution"), mutates=True),
    # the log pane
    DeckAction("follow", "f", "log_follow", "Follow", ("execution",)),
    DeckAction("wrap", "w", "log_wrap", "Wrap", ("execution",)),
    DeckAction("timestamps", "t", "log_timestamps", "Time", ("execution",)),
    DeckAction("level", "v", "log_level", "Level", ("execution",)),
    DeckAction("search", "slash", "log_search", "Search", ("execution",), key_display="/"),
    DeckAction("next-match", "n", "log_next", "Next match", ("execution",), footer=False),
    DeckAction("prev-match", "N", "log_prev", "Previous match", ("execution",), footer=False),
    DeckAction("next-error", "e", "log_next_error", "Next error", ("execution",)),
    DeckAction("save-log", "ctrl+s", "log_save", "Save", ("execution",)),
    DeckAction("copy-line", "c", "log_copy", "Copy line", ("execution",)),
    # approvals
    DeckAction("approve", "a", "approve", "Approve", ("approvals", "approval"), mutates=True),
    DeckAction("reject", "x", "reject", "Reject", ("approvals", "approval"), mutates=True),
    DeckAction("bulk-approve", "A", "bulk_approve", "Approve marked", ("approvals",),
               mutates=True),
    # flows
    DeckAction("run", "ctrl+o", "run_flow", "Run", ("flows", "flow"), mutates=True,
               key_display="^o"),
    # staging environments (`d` or k9s's ctrl+d; the dialog asks for the name typed exactly)
    DeckAction("clone-environment", "c", "clone_environment", "Clone", ("staging",),
               mutates=True),
    DeckAction("delete-environment", "d,ctrl+d", "delete_environment", "Delete",
               ("staging",), mutates=True),
    DeckAction("open-run", "o", "open_run", "Open run", ("staging",)),
)

MUTATING_ACTIONS: frozenset[str] = frozenset(a.action for a in CATALOGUE if a.mutates)


def actions_for(scope: str) -> list[DeckAction]:
    return [a for a in CATALOGUE if scope in a.scopes]


def bindings_for(scope: str) -> list[BindingType]:
    """Textual bindings for one scope (the App gets GLOBAL); ids allow user rebinding."""
    return [Binding(a.key, a.action.removeprefix("app.") if scope == GLOBAL else a.action,
                    a.description, show=a.footer, id=a.id, key_display=a.key_display)
            for a in actions_for(scope) if a.key]


# ---- `:` command mode -------------------------------------------------------------------

#: alias -> canonical command
ALIASES: dict[str, str] = {
    "ex": "executions", "exe": "executions", "executions": "executions", "execution": "executions",
    "flows": "flows", "flow": "flows", "fl": "flows",
    "ap": "approvals", "approvals": "approvals", "approval": "approvals",
    "ns": "ns", "namespace": "ns",
    "theme": "theme", "profile": "profile", "ctx": "profile",
    "st": "staging", "staging": "staging", "rel": "releases", "releases": "releases",
    "q": "quit", "quit": "quit", "help": "help",
}
COMMANDS_HELP: tuple[tuple[str, str], ...] = (
    (":ex  :executions", "the executions list"),
    (":flows", "the flows list"),
    (":ap  :approvals", "the approvals queue"),
    (":ns NAMESPACE", "show only this namespace (:ns alone shows all)"),
    (":theme NAME", "switch theme"),
    (":profile NAME", "switch to a [profiles.NAME] backend (no NAME: list them)"),
    (":st  :staging", "staging environments: clone, delete, follow the run"),
    (":rel", "releases (not available yet)"),
    (":q", "quit"),
)


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


# ---- the ctrl+p palette ----------------------------------------------------------------


class DeckCommandProvider(Provider):
    """Every action of the current screen and the global ones, from the catalogue."""

    def _entries(self) -> Iterable[tuple[str, str, Any]]:
        app: FlowdeckApp = self.app  # type: ignore[assignment]
        screen = self.screen
        scope = getattr(screen, "SCOPE", None)
        for entry in CATALOGUE:
            if not entry.palette:
                continue
            if GLOBAL in entry.scopes:
                target: Any = app
                action = entry.action.removeprefix("app.")
            elif scope in entry.scopes:
                target = screen
                action = entry.action
            else:
                continue
            if entry.mutates and app.read_only:
                continue
            key = f" ({entry.key_display or entry.key})" if entry.key else ""
            yield (f"{entry.description}{key}", entry.id,
                   partial(target.run_action, action))
        for theme in sorted(app.available_themes):
            yield (f"Theme: {theme}", "theme", partial(app.run_command, f":theme {theme}"))

    async def discover(self) -> Hits:
        for title, help_id, callback in self._entries():
            yield DiscoveryHit(Content(title), callback, help=help_id)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_id, callback in self._entries():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_id)
