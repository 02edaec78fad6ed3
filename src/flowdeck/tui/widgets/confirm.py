"""Confirmation and text prompts: modal screens that answer through `dismiss`."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

MODAL_CSS = """
ModalScreen { align: center middle; background: $background 60%; }
ModalScreen > Vertical { width: 70; max-width: 96%; height: auto; max-height: 90%;
    border: thick $primary; background: $surface; padding: 0 1; }
ModalScreen .title { text-style: bold; padding-bottom: 1; }
ModalScreen .body { padding-bottom: 1; }
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

    DEFAULT_CSS = scoped_modal_css("ConfirmScreen")
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


class TextPrompt(ModalScreen[str | None]):
    """One line of text (a comment, a reason); `required` refuses an empty answer."""

    DEFAULT_CSS = scoped_modal_css("TextPrompt")
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
