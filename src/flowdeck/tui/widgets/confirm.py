"""Confirmation, decision and text prompts: modal screens that answer through `dismiss`.

Every dialog that changes something defaults to No: the focused button is Cancel, so Enter
(or a key typed a moment too late) never does the dangerous thing; `y` (or the button) does.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

MODAL_CSS = """
ModalScreen { align: center middle; background: $background 60%; }
ModalScreen > Vertical { width: 70; max-width: 96%; height: auto; max-height: 90%;
    border: thick $primary; background: $surface; padding: 0 1; }
ModalScreen .title { text-style: bold; padding-bottom: 1; }
ModalScreen .body { padding-bottom: 1; }
ModalScreen .hint { color: $text-muted; }
ModalScreen .problem { color: $error; }
ModalScreen Horizontal { height: auto; align: right middle; }
ModalScreen Button { margin-left: 1; min-width: 10; }
"""


def scoped_modal_css(screen: str) -> str:
    """`MODAL_CSS` written for one modal class. Textual scopes a class's DEFAULT_CSS to that
    class, so a rule that starts with `ModalScreen` would only match a ModalScreen *inside*
    this one (i.e. never): each rule has to start with the class's own name."""
    return MODAL_CSS.replace("ModalScreen", screen)


class ConfirmScreen(ModalScreen[bool]):
    """Yes/no with the SAFE choice focused: Enter on open never does the dangerous thing."""

    DEFAULT_CSS = scoped_modal_css("ConfirmScreen") + """
    ConfirmScreen VerticalScroll { height: auto; max-height: 12; }
    """
    AUTO_FOCUS = ""  # on_mount focuses Cancel: nothing else may have the focus first
    BINDINGS = [Binding("escape,n", "answer(False)", "Cancel"),
                Binding("y", "answer(True)", "Confirm")]

    def __init__(self, title: str, body: str, confirm: str = "Confirm",
                 danger: bool = True) -> None:
        super().__init__()
        self._title = title
        self._body = body
        self._confirm = confirm
        self._danger = danger

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content(self._title), classes="title")
            with VerticalScroll(can_focus=False):
                yield Static(Content(self._body), classes="body")
            with Horizontal():
                yield Button(Content("Cancel (n)"), id="cancel")
                yield Button(Content(f"{self._confirm} (y)"),
                             variant="error" if self._danger else "primary", id="confirm")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class DecisionScreen(ModalScreen[str | None]):
    """Approve or reject one or more approvals, each named in full, with a comment.

    The comment box has the focus; enter in it moves to the buttons, where Cancel is focused.
    The decision is taken with `y` (outside the box), ctrl+s or its button. Answers the
    comment ("" for none), or None when cancelled."""

    DEFAULT_CSS = scoped_modal_css("DecisionScreen") + """
    DecisionScreen VerticalScroll { height: auto; max-height: 8; }
    """
    AUTO_FOCUS = ""  # on_mount focuses the comment box
    BINDINGS = [Binding("escape,n", "cancel", "Cancel"), Binding("y", "decide", "Decide"),
                Binding("ctrl+s", "decide", "Decide", priority=True)]

    def __init__(self, title: str, lines: list[str], *, verb: str,
                 required: bool = False) -> None:
        super().__init__()
        self._title = title
        self._lines = lines
        self._verb = verb
        self._required = required

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content(self._title), classes="title")
            with VerticalScroll(can_focus=False):
                yield Static(Content("\n".join(self._lines)), classes="body", id="items")
            yield Input(placeholder="comment" + (" (required)" if self._required
                                                 else " (optional)"), id="text")
            yield Label("", classes="problem", id="problem")
            yield Static(Content(f"enter: to the buttons · y or ctrl+s: {self._verb} · "
                                 "n or esc: cancel"), classes="hint")
            with Horizontal():
                yield Button(Content("Cancel (n)"), id="cancel")
                yield Button(Content(f"{self._verb} (y)"),
                             variant="primary" if self._verb == "Approve" else "error",
                             id="ok")

    def on_mount(self) -> None:
        self.query_one("#text", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one("#cancel", Button).focus()

    def action_decide(self) -> None:
        value = self.query_one("#text", Input).value.strip()
        if self._required and not value:
            self.query_one("#problem", Label).update(Content("a comment is required"))
            self.query_one("#text", Input).focus()
            return
        self.dismiss(value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self.action_decide()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class TextPrompt(ModalScreen[str | None]):
    """One line of text (a comment, a reason); `required` refuses an empty answer."""

    DEFAULT_CSS = scoped_modal_css("TextPrompt")
    AUTO_FOCUS = ""
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, body: str = "", *, placeholder: str = "",
                 required: bool = False, confirm: str = "OK") -> None:
        super().__init__()
        self._title = title
        self._body = body
        self._placeholder = placeholder
        self._required = required
        self._confirm = confirm

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content(self._title), classes="title")
            if self._body:
                yield Static(Content(self._body), classes="body")
            yield Input(placeholder=self._placeholder, id="text")
            yield Label("", classes="problem", id="problem")
            with Horizontal():
                yield Button(Content("Cancel"), id="cancel")
                yield Button(Content(self._confirm), variant="primary", id="ok")

    def on_mount(self) -> None:
        self.query_one("#text", Input).focus()

    def _submit(self) -> None:
        value = self.query_one("#text", Input).value.strip()
        if self._required and not value:
            self.query_one("#problem", Label).update(Content("a comment is required"))
            return
        self.dismiss(value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
