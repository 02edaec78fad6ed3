"""`?` help for the current screen (from the action catalogue and the screen registry) and
the `:` command prompt."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Static

from flowdeck.tui.commands import CATALOGUE, GLOBAL, LIST_SCOPES, MOVING_KEYS, key_text
from flowdeck.tui.registry import command_suggestions, commands_help

if TYPE_CHECKING:
    from flowdeck.tui.app import FlowdeckApp

FILTER_HELP = ("state:FAILED,RUNNING  ns:NAMESPACE  flow:ID  label:key=value  since:1h  "
               "free words search ids, namespaces and flows")


def help_lines(app: FlowdeckApp, scope: str) -> list[str]:
    """Every key of the screen `scope` and the global ones, each with the action id that
    `[tui.keys]` rebinds it by; the moving keys; the `:` commands; the filter grammar."""
    lines: list[str] = ["Keys are rebound by id in [tui.keys] of the config file."]
    sections = [("Everywhere", GLOBAL)]
    if scope != GLOBAL:
        sections.insert(0, (f"This screen ({scope})", scope))
    for title, section in sections:
        lines.append(f"\n{title:<38}id")
        for entry in CATALOGUE:
            if section not in entry.scopes or not app.may(entry.role):
                continue
            key = app.keymap.get(entry.id, entry.key)
            shown = (entry.key_display if entry.key_display and entry.id not in app.keymap
                     else key_text(key) if key else "(palette)")
            lines.append(f"  {shown:<12} {entry.description:<22} {entry.id}")
        if section == GLOBAL:
            lines.append(f"  {'ctrl+p':<12} {'Command palette':<22} (Textual)")
    if scope != GLOBAL:
        lines.append("\nMoving")
        lines.extend(f"  {keys:<14} {what}" for keys, what in MOVING_KEYS)
    lines.append("\nCommands (press :)")
    lines.extend(f"  {cmd:<18} {what}" for cmd, what in commands_help())
    if scope in LIST_SCOPES:
        lines.append("\nFilter (press /)")
        lines.append(f"  {FILTER_HELP if scope == 'executions' else 'words in any column'}")
    return lines


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss_help", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; background: $background 60%; }
    HelpScreen > Vertical { width: 80; max-width: 98%; height: 90%; border: thick $primary;
        background: $surface; padding: 0 1; }
    HelpScreen VerticalScroll { height: 1fr; }
    HelpScreen .heading { text-style: bold; color: $accent; }
    """

    def __init__(self, scope: str) -> None:
        super().__init__()
        self.scope = scope

    def compose(self) -> ComposeResult:
        app: FlowdeckApp = self.app  # type: ignore[assignment]
        text = "\n".join(help_lines(app, self.scope)).lstrip("\n")
        with Vertical():
            yield Static(Content("flowdeck — keys (esc closes)"), classes="heading")
            with VerticalScroll():
                yield Static(Content(text), id="help-text")

    def action_dismiss_help(self) -> None:
        self.dismiss(None)


class CommandPrompt(ModalScreen[str | None]):
    """`:` command mode at the bottom of the screen, with completion of command names."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    CommandPrompt { align: left bottom; background: $background 0%; }
    CommandPrompt Input { dock: bottom; margin-bottom: 1; border: tall $accent; }
    """

    def __init__(self) -> None:
        super().__init__()
        #: Set by the app once the command typed here has run (keys typed after it wait).
        self.finished = False

    def compose(self) -> ComposeResult:
        yield Input(placeholder=":ex  :flows  :ap  :ns NAME  :theme NAME  :q",
                    suggester=SuggestFromList(command_suggestions(), case_sensitive=False),
                    id="command", value=":")

    @property
    def ready(self) -> bool:
        """Mounted, with the box focused: keys typed after `:` can go to it."""
        return self.is_mounted and self.focused is not None and self.focused.id == "command"

    def on_mount(self) -> None:
        box = self.query_one(Input)
        box.focus()
        box.cursor_position = len(box.value)

    def _close(self, value: str | None) -> None:
        # The keys typed after enter/esc wait for the command to have run (a screen switch).
        self.app.hold_keys(lambda: self.finished)  # type: ignore[attr-defined]
        self.dismiss(value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._close(event.value)

    def action_cancel(self) -> None:
        self._close(None)
