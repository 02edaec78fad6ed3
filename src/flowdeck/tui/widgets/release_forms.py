"""The releases screen's two dialogs: deploy a release to an environment, approve a release.

Both answer through `dismiss` and do nothing themselves (the project screen acts), and both
default to No: `y`, ctrl+s or the button acts, `n` or esc cancels, and enter in a list or a
text box moves to the buttons, where Cancel has the focus.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from flowdeck.core.forge import Deployment, Release, ReleaseApproval
from flowdeck.core.sanitize import sanitize_line
from flowdeck.tui.widgets.confirm import scoped_modal_css


@dataclass(frozen=True, slots=True)
class DeployChoice:
    """Where to deploy, with which approval, or as a request for one."""

    environment: str
    approval_id: str | None = None
    request: bool = False


def release_line(release: Release) -> str:
    parts = [f"release {release.release_number}", release.commit_sha[:12]]
    if release.tag:
        parts.append(release.tag)
    parts.append(f"created by {release.created_by}")
    return sanitize_line("  ".join(parts), 200)


def usable(approval: ReleaseApproval | None) -> ReleaseApproval | None:
    if approval is None or approval.status != "active" or approval.used_by_deployment:
        return None
    return approval


class DeployDialog(ModalScreen[DeployChoice | None]):
    """Pick an environment; the dialog says what deploying there will do."""

    DEFAULT_CSS = scoped_modal_css("DeployDialog") + """
    DeployDialog OptionList { height: auto; max-height: 6; margin-bottom: 1; }
    DeployDialog #plan { height: auto; padding-bottom: 1; }
    """
    BINDINGS = [Binding("escape,n", "cancel", "Cancel"), Binding("y", "deploy", "Deploy"),
                Binding("ctrl+s", "deploy", "Deploy", priority=True)]
    AUTO_FOCUS = ""

    def __init__(self, release: Release, project: str, environments: tuple[str, ...],
                 approval_environments: tuple[str, ...],
                 approvals: dict[str, ReleaseApproval | None] | None,
                 current: dict[str, Deployment | None]) -> None:
        super().__init__()
        self.release = release
        self.project = project
        self.environments = environments
        self.approval_environments = approval_environments
        self.approvals = approvals or {}
        self.current = current

    def compose(self) -> ComposeResult:
        options = []
        for env in self.environments:
            now = self.current.get(env)
            label = f"{env:<12} " + (f"now #{now.release_number}" if now else "nothing yet")
            if env in self.approval_environments:
                label += "  (needs an approval)"
            options.append(Option(Content(sanitize_line(label, 80)), id=env))
        with Vertical():
            yield Static(Content(f"Deploy {sanitize_line(self.project, 120)}"),
                         classes="title")
            yield Static(Content(release_line(self.release)), classes="body")
            yield OptionList(*options, id="environments")
            yield Static(id="plan")
            yield Static(Content("↑↓: environment · y or ctrl+s: deploy · n or esc: cancel"),
                         classes="hint")
            with Horizontal():
                yield Button(Content("Cancel (n)"), id="cancel")
                yield Button(Content("Deploy (y)"), variant="warning", id="ok")

    def on_mount(self) -> None:
        box = self.query_one("#environments", OptionList)
        box.highlighted = 0
        box.focus()
        self.show_plan()

    def chosen(self) -> str | None:
        box = self.query_one("#environments", OptionList)
        index = box.highlighted
        if index is None:
            return None
        return self.environments[index]

    def choice(self) -> DeployChoice | None:
        env = self.chosen()
        if env is None:
            return None
        if env not in self.approval_environments:
            return DeployChoice(env)
        approval = usable(self.approvals.get(env))
        if approval is not None:
            return DeployChoice(env, approval_id=approval.id)
        return DeployChoice(env, request=True)

    @on(OptionList.OptionHighlighted)
    def show_plan(self) -> None:
        choice = self.choice()
        plan = self.query_one("#plan", Static)
        if choice is None:
            plan.update("")
            return
        env = choice.environment
        if choice.approval_id is not None:
            approval = self.approvals[env]
            assert approval is not None
            text = (f"Deploys to {env} with the approval of {approval.approver} "
                    f"({approval.justification}); it is used up.")
        elif choice.request:
            text = (f"{env} needs an approval and this release has none: this asks for one "
                    "in the approval queue (:ap), where someone other than "
                    f"{self.release.created_by} approves it, and it deploys then.")
        else:
            text = f"Commits the release to {env} (a GitOps commit)."
        plan.update(Content(sanitize_line(text, 400)))

    @on(OptionList.OptionSelected)
    def selected(self) -> None:
        self.query_one("#cancel", Button).focus()

    def action_deploy(self) -> None:
        choice = self.choice()
        if choice is not None:
            self.dismiss(choice)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self.action_deploy()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ApproveDialog(ModalScreen[tuple[str, str] | None]):
    """Approve a release for an environment, with a justification (required)."""

    DEFAULT_CSS = scoped_modal_css("ApproveDialog") + """
    ApproveDialog OptionList { height: auto; max-height: 4; margin-bottom: 1; }
    """
    BINDINGS = [Binding("escape,n", "cancel", "Cancel"), Binding("y", "approve", "Approve"),
                Binding("ctrl+s", "approve", "Approve", priority=True)]
    AUTO_FOCUS = ""

    def __init__(self, release: Release, project: str,
                 environments: tuple[str, ...]) -> None:
        super().__init__()
        self.release = release
        self.project = project
        self.environments = environments

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content(f"Approve {sanitize_line(self.project, 120)}"),
                         classes="title")
            yield Static(Content(release_line(self.release)), classes="body")
            if len(self.environments) > 1:
                yield OptionList(*[Option(Content(sanitize_line(e, 60)), id=e)
                                   for e in self.environments], id="environments")
            else:
                yield Static(Content(f"for {sanitize_line(self.environments[0], 60)}"),
                             classes="body")
            yield Input(placeholder="justification (required): a change ticket, a sign-off",
                        id="justification")
            yield Label("", classes="problem", id="problem")
            yield Static(Content("enter: to the buttons · y or ctrl+s: approve · n or esc: "
                                 "cancel"), classes="hint")
            with Horizontal():
                yield Button(Content("Cancel (n)"), id="cancel")
                yield Button(Content("Approve (y)"), variant="primary", id="ok")

    def on_mount(self) -> None:
        if len(self.environments) > 1:
            self.query_one("#environments", OptionList).highlighted = 0
        self.query_one("#justification", Input).focus()

    def environment(self) -> str:
        if len(self.environments) == 1:
            return self.environments[0]
        index = self.query_one("#environments", OptionList).highlighted or 0
        return self.environments[index]

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one("#cancel", Button).focus()

    def action_approve(self) -> None:
        text = self.query_one("#justification", Input).value.strip()
        if not text:
            self.query_one("#problem", Label).update(Content("a justification is required"))
            self.query_one("#justification", Input).focus()
            return
        self.dismiss((self.environment(), text))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self.action_approve()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
