"""The staging screen's two modals: the clone form and the typed-name delete confirmation.

Both answer through `dismiss` and start nothing themselves: the staging screen owns the run
(and shows its progress). Names are checked by the engine, not here; the only local rules are
that a client name is given and that the delete dialog's text equals the name exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from flowdeck.core.sanitize import sanitize_line
from flowdeck.tui.widgets.confirm import scoped_modal_css

DEFAULT_SOURCE = "production"


@dataclass(frozen=True, slots=True)
class CloneParams:
    """What the clone form asks for (values as typed; the engine validates them)."""

    client_name: str
    environment_name: str | None = None
    source_environment: str = DEFAULT_SOURCE
    skip_database: bool = False


class CloneFormScreen(ModalScreen[CloneParams | None]):
    """Client name (required), environment name (optional), source, skip database."""

    DEFAULT_CSS = scoped_modal_css("CloneFormScreen") + """
    CloneFormScreen .hint { color: $text-muted; }
    CloneFormScreen .row { height: 1; margin-bottom: 1; }
    CloneFormScreen .row Label { width: 20; }
    CloneFormScreen .row Input { width: 1fr; }
    CloneFormScreen #skip-database { margin-bottom: 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "submit", "Clone")]
    AUTO_FOCUS = ""  # on_mount focuses the client box

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content("Clone a staging environment"), classes="title")
            with Horizontal(classes="row"):
                yield Label(Content("Client name *"))
                yield Input(placeholder="e.g. acme-corp", id="client", compact=True)
            with Horizontal(classes="row"):
                yield Label(Content("Environment name"))
                yield Input(placeholder="generated: staging-<client>-<time>",
                            id="environment", compact=True)
            with Horizontal(classes="row"):
                yield Label(Content("Source environment"))
                yield Input(value=DEFAULT_SOURCE, id="source", compact=True)
            yield Checkbox(Content("Skip the database (environment only)"), id="skip-database",
                           compact=True)
            yield Label(Content("Names: lowercase letters, digits and '-'; the engine checks "
                                "them."), classes="hint")
            yield Label("", classes="problem", id="problem")
            with Horizontal():
                yield Button(Content("Cancel"), id="cancel")
                yield Button(Content("Clone (ctrl+s)"), variant="primary", id="clone")

    def on_mount(self) -> None:
        self.query_one("#client", Input).focus()

    def params(self) -> CloneParams | None:
        """The request, or None (and the problem shown) when the client name is missing."""
        client = self.query_one("#client", Input).value
        if not client.strip():
            self.query_one("#problem", Label).update(Content("the client name is required"))
            self.query_one("#client", Input).focus()
            return None
        environment = self.query_one("#environment", Input).value
        source = self.query_one("#source", Input).value
        return CloneParams(client_name=client, environment_name=environment or None,
                           source_environment=source or DEFAULT_SOURCE,
                           skip_database=self.query_one("#skip-database", Checkbox).value)

    def action_submit(self) -> None:
        params = self.params()
        if params is not None:
            self.dismiss(params)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "clone":
            self.action_submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()


class TypedNameConfirm(ModalScreen[bool]):
    """Delete only after the name is typed exactly: no trimming, no case folding.

    Cancel has the focus when the dialog opens (Enter never deletes); tab reaches the box.
    The delete button stays disabled until the box holds exactly `name`.
    """

    DEFAULT_CSS = scoped_modal_css("TypedNameConfirm") + """
    TypedNameConfirm .name { text-style: bold; color: $warning; padding-bottom: 1; }
    TypedNameConfirm .hint { color: $text-muted; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    AUTO_FOCUS = ""  # on_mount focuses Cancel

    def __init__(self, name: str, *, title: str = "Delete staging environment",
                 verb: str = "Delete") -> None:
        super().__init__()
        self.expected = name
        self._title = title
        self._verb = verb

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content(self._title), classes="title")
            yield Static(Content(sanitize_line(self.expected, 200)), classes="name",
                         id="expected")
            yield Static(Content("This deletes the environment and its data; it cannot be "
                                 "undone. Type its name exactly to confirm."), classes="body")
            yield Input(placeholder="environment name", id="typed")
            yield Label(Content("tab: the name box · esc: cancel"), classes="hint",
                        id="problem")
            with Horizontal():
                yield Button(Content("Cancel"), id="cancel")
                yield Button(Content(self._verb), variant="error", id="confirm",
                             disabled=True)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def matches(self) -> bool:
        return self.query_one("#typed", Input).value == self.expected

    @on(Input.Changed, "#typed")
    def typed(self) -> None:
        self.query_one("#confirm", Button).disabled = not self.matches()

    @on(Input.Submitted, "#typed")
    def submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.matches():
            self.dismiss(True)
        else:
            problem = self.query_one("#problem", Label)
            problem.set_classes("problem")
            problem.update(Content("the name does not match"))

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm" and self.matches())

    def action_cancel(self) -> None:
        self.dismiss(False)
