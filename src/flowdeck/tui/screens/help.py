"""`?` help for the current screen (from the action catalogue) and the `:` command prompt."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Static

from flowdeck.tui.commands import (
    CATALOGUE,
    COMMANDS_HELP,
    GLOBAL,
    MUTATING_ACTIONS,
    command_suggestions,
)

FILTER_HELP = ("state:FAILED,RUNNING  ns:NAMESPACE  flow:ID  label:key=value  since:1h  "
               "free words search ids, namespaces and flows")


def _key_text(key: str) -> str:
    names = {"colon": ":", "question_mark": "?", "slash": "/", "escape": "esc",
             "space": "space", "enter": "enter"}
    return ",".join(names.get(k, k) for k in key.split(","))


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss_help", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; background: $background 60%; }
    HelpScreen > Vertical { width: 76; max-width: 98%; height: 90%; border: thick $primary;
        background: $surface; padding: 0 1; }
    HelpScreen VerticalScroll { height: 1fr; }
    HelpScreen .heading { text-style: bold; color: $accent; }
    """

    def __init__(self, scope: str) -> None:
        super().__init__()
        self.scope = scope

    def compose(self) -> ComposeResult:
        app = self.app
        keymap: dict[str, str] = getattr(app, "_keymap", {})
        read_only = getattr(app, "read_only", False)
        lines: list[str] = []
        sections = [("Everywhere", GLOBAL)]
        if self.scope != GLOBAL:
            sections.insert(0, (f"This screen ({self.scope})", self.scope))
        for title, scope in sections:
            lines.append(f"\n{title}")
            for entry in CATALOGUE:
                if scope not in entry.scopes:
                    continue
                if entry.action in MUTATING_ACTIONS and read_only:
                    continue
                key = keymap.get(entry.id, entry.key)
                shown = entry.key_display if entry.key_display and entry.id not in keymap \
                    else _key_text(key) if key else "(palette)"
                lines.append(f"  {shown:<12} {entry.description}")
        lines.append("\nCommands (press :)")
        lines.extend(f"  {cmd:<18} {what}" for cmd, what in COMMANDS_HELP)
        lines.append("\nFilter (press /)")
        lines.append(f"  {FILTER_HELP}")
        lines.append("\n  ctrl+p       command palette   esc  back   ctrl+q  quit")
        with Vertical():
            yield Static(Content("flowdeck — keys"), classes="heading")
            with VerticalScroll():
                yield Static(Content("\n".join(lines).lstrip("\n")), id="help-text")

    def action_dismiss_help(self) -> None:
        self.dismiss(None)


class CommandPrompt(ModalScreen[str | None]):
    """`:` command mode at the bottom of the screen, with completion of command names."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    CommandPrompt { align: left bottom; background: $background 0%; }
    CommandPrompt Input { dock: bottom; margin-bottom: 1; border: tall $accent; }
    """

    def compose(self) -> ComposeResult:
        yield Input(placeholder=":ex  :flows  :ap  :ns NAME  :theme NAME  :q",
                    suggester=SuggestFromList(command_suggestions(), case_sensitive=False),
                    id="command", value=":")

    def on_mount(self) -> None:
        box = self.query_one(Input)
        box.focus()
        box.cursor_position = len(box.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
