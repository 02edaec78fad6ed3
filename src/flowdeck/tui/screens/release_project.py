"""One project's releases (newest first) and, per environment, what runs there and before.

- `d` deploys the release under the cursor to an environment chosen in a dialog. Where the
  environment needs an approval (production), the deploy uses the release's active approval
  for it; without one it becomes a deploy request that waits in the approval queue (`:ap`),
  where someone other than the release's creator approves it (the server must offer deploy
  requests; otherwise the screen says to approve first).
- `a` approves the release for an approval environment, with a justification; hidden for the
  release's creator and for a deck without the approver role.
- `x` revokes the release's active approval (asks first, naming it).
- `o` opens the release's pipeline run in the execution screen, phases as groups (from a
  profile's own Forge, whose runs are not the backend's executions: the run as that Forge
  describes it, `ForgeRunScreen`).

Workers only talk to the releases client and post messages; every action reloads what it
changed. Approvals are read for the release under the cursor.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.content import Content
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Footer, Input, Static

from flowdeck.client.releases import FeatureMissing, ForgeEvent, Releases
from flowdeck.core.errors import BackendUnavailable, FlowdeckError
from flowdeck.core.forge import Deployment, Release, ReleaseApproval
from flowdeck.core.sanitize import sanitize_line
from flowdeck.tui.ages import age_text
from flowdeck.tui.commands import ACTION_ROLES, bindings_for, role_allows
from flowdeck.tui.format import safe_text, short_id
from flowdeck.tui.messages import ActionFailed, ConnectionLost
from flowdeck.tui.screens.base import ListScreen
from flowdeck.tui.screens.releases import RELOAD_DEBOUNCE, instant_text
from flowdeck.tui.theme import rich_style
from flowdeck.tui.widgets.confirm import ConfirmScreen
from flowdeck.tui.widgets.list_source import ListSource
from flowdeck.tui.widgets.release_forms import ApproveDialog, DeployChoice, DeployDialog
from flowdeck.tui.widgets.status import StatusBar
from flowdeck.tui.widgets.table import Column, VirtualTable

#: Releases listed (the newest).
PAGE = 50
#: Earlier deployments shown per environment.
HISTORY = 5
COLUMNS = [Column("number", "#", 5, "right"), Column("sha", "SHA", 7),
           Column("tag", "TAG", 12, narrow=8), Column("artifacts", "ARTIFACTS", min_width=8),
           Column("by", "CREATED BY", 12, narrow=8), Column("age", "AGE", 4, "right"),
           Column("where", "RUNNING IN", 20, narrow=12)]
STATUS_VARIABLES = {"active": "success", "pending": "warning", "failed": "error",
                    "superseded": "text-muted", "expired": "text-muted", "revoked": "error"}


@dataclass
class EnvironmentView:
    name: str
    current: Deployment | None = None
    history: list[Deployment] = field(default_factory=list)


@dataclass
class ProjectLoaded(Message):
    releases: list[Release]
    total: int
    environments: list[EnvironmentView]


@dataclass
class ProjectFailed(Message):
    text: str


@dataclass
class ApprovalsLoaded(Message):
    release_id: str
    approvals: dict[str, ReleaseApproval | None]


@dataclass
class ReleaseActionDone(Message):
    text: str


class ProjectScreen(ListScreen):
    SCOPE = "release"
    AUTO_FOCUS = ""
    BINDINGS = bindings_for("release")
    DEFAULT_CSS = """
    ProjectScreen #title { height: 1; background: $boost; padding: 0 1; }
    ProjectScreen #message { height: auto; max-height: 3; padding: 0 1; display: none; }
    ProjectScreen #message.-shown { display: block; }
    ProjectScreen #detail { height: auto; max-height: 4; padding: 0 1; background: $boost; }
    ProjectScreen #envs { height: auto; max-height: 8; padding: 0 1;
        border-top: solid $panel; }
    ProjectScreen #filter { dock: bottom; display: none; }
    ProjectScreen #filter.-shown { display: block; }
    ProjectScreen.-stale VirtualTable, ProjectScreen.-stale #envs { opacity: 60%; }
    """

    def __init__(self, client: Releases, repository: str, project: str,
                 environments: tuple[str, ...],
                 approval_environments: tuple[str, ...]) -> None:
        super().__init__()
        self.client = client
        self.repository = repository
        self.project = project
        self.environments = environments
        self.approval_environments = approval_environments
        self.source = ListSource()
        self.releases: list[Release] = []
        self.total = 0
        self.env_views: list[EnvironmentView] = [EnvironmentView(e) for e in environments]
        self.approvals: dict[str, dict[str, ReleaseApproval | None]] = {}
        self.loading = False
        self.loaded = False
        self.problem: str | None = None
        self._reload_timer: Timer | None = None

    @property
    def title_text(self) -> str:
        return f"{self.repository}/{self.project}"

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield Static(id="title")
        yield Static(id="message")
        yield VirtualTable(COLUMNS, self.source, id="table")
        yield Static(id="detail")
        yield Static(id="envs")
        yield Input(placeholder="filter releases", id="filter")
        yield Footer()

    def on_mount(self) -> None:
        self.table.focus()
        self.rebuild()
        self.reload()
        self.set_interval(self.deck.refresh_seconds, self.refresh_approvals)
        self.set_interval(5.0, self.tick)

    def tick(self) -> None:
        if self.releases and self.app.screen is self:
            self.rebuild()  # the ages

    # -- loading ---------------------------------------------------------------------------

    def reload(self) -> None:
        self.loading = True
        self.load()

    def forge_changed(self, event: ForgeEvent) -> None:
        """A forge event: reload if it may concern this project (debounced)."""
        data = event.data
        if data.get("repository") not in (None, self.repository):
            return
        if data.get("project") not in (None, self.project):
            return
        if self._reload_timer is not None:
            self._reload_timer.stop()
        self._reload_timer = self.set_timer(RELOAD_DEBOUNCE, self.reload)

    def on_live_event(self, item: object) -> None:
        """A deploy request decided in the approval queue changes what runs where."""
        from flowdeck.core.models import Approval

        if isinstance(item, Approval) and item.namespace == "flowdeck.forge" and (
                item.status != "pending"):
            self.forge_changed(ForgeEvent(0, "approval", "", {}))

    @work(group="load", exclusive=True)
    async def load(self) -> None:
        client = self.client
        try:
            page = await client.releases(self.repository, self.project, limit=PAGE)

            async def environment(name: str) -> EnvironmentView:
                current = await client.current(name, self.repository, self.project)
                history = await client.history(name, self.repository, self.project,
                                               limit=HISTORY + 1)
                return EnvironmentView(name, current, list(history.items))

            views = await asyncio.gather(*(environment(e) for e in self.environments))
        except BackendUnavailable as exc:
            self.post_message(ConnectionLost(str(exc)))
            self.post_message(ProjectFailed(f"releases unavailable: {exc}"))
            return
        except FlowdeckError as exc:
            self.post_message(ProjectFailed(str(exc)))
            return
        self.post_message(ProjectLoaded(list(page.items), page.total, list(views)))

    def on_project_loaded(self, message: ProjectLoaded) -> None:
        message.stop()
        self.releases = message.releases
        self.total = message.total
        self.env_views = message.environments
        self.loading = False
        self.loaded = True
        self.problem = None
        self.stamp()
        self.rebuild()
        self.refresh_approvals()

    def on_project_failed(self, message: ProjectFailed) -> None:
        message.stop()
        self.loading = False
        self.loaded = True
        self.problem = message.text
        self.rebuild()

    def refresh_approvals(self) -> None:
        release = self.current()
        if release is not None and self.approval_environments:
            self.load_approvals(release.id)

    @work(group="approvals", exclusive=True)
    async def load_approvals(self, release_id: str) -> None:
        found: dict[str, ReleaseApproval | None] = {}
        try:
            for env in self.approval_environments:
                found[env] = await self.client.approval(release_id, env)
        except FlowdeckError:
            return  # the next refresh tries again; the detail says "not read"
        self.post_message(ApprovalsLoaded(release_id, found))

    def on_approvals_loaded(self, message: ApprovalsLoaded) -> None:
        message.stop()
        self.approvals[message.release_id] = message.approvals
        self.render_detail()
        self.refresh_bindings()

    def action_reload(self) -> None:
        self.reload()

    # -- drawing ---------------------------------------------------------------------------

    def running_in(self, release: Release) -> list[str]:
        return [v.name for v in self.env_views
                if v.current is not None and v.current.release_id == release.id]

    def shown(self) -> list[Release]:
        if not self.filter_text:
            return self.releases
        needle = self.filter_text.lower()
        return [r for r in self.releases if needle in " ".join(
            (str(r.release_number), r.commit_sha, r.tag or "", r.created_by,
             *(a.name for a in r.artifacts))).lower()]

    def apply_filter(self) -> None:
        self.rebuild()

    def rebuild(self) -> None:
        if not self.query("#table"):
            return
        app = self.deck
        now = app.clock.now()
        rows: list[tuple[str, list[Text]]] = []
        for release in self.shown():
            where = self.running_in(release)
            rows.append((release.id, [
                Text(str(release.release_number), end=""), Text(release.commit_sha[:7], end=""),
                safe_text(release.tag or "-", 60),
                safe_text(", ".join(a.name for a in release.artifacts) or "-", 200),
                safe_text(release.created_by or "-", 60),
                Text(age_text(release.created_at, now), end=""),
                safe_text(" ".join(where) or "-", 60,
                          rich_style(app, "success") if where else None)]))
        self.source.set_rows(rows)
        self.table.reset()
        title = f"Releases of {sanitize_line(self.title_text, 160)}"
        if self.loaded:
            title += f" ({len(rows)} of {self.total}, newest first)"
        if self.filter_text:
            title += f"  │  filter: {sanitize_line(self.filter_text, 40)}"
        self.query_one("#title", Static).update(Content(title))
        self.render_message(len(rows))
        self.render_detail()
        self.render_envs()

    def render_message(self, shown: int) -> None:
        box = self.query_one("#message", Static)
        text = Text(end="")
        if self.loading and not self.loaded:
            text.append("loading…", style=rich_style(self.app, "text-muted"))
        if self.problem is not None:
            text.append("✕ " + sanitize_line(self.problem, 500), style=rich_style(self.app,
                                                                                   "error"))
        if not text and self.loaded and shown == 0:
            text.append("No release matches the filter (esc clears it)." if self.releases
                        else "No releases of this project yet.")
        box.update(text)
        box.set_class(bool(text), "-shown")

    def current(self) -> Release | None:
        key = self.table.current_key()
        if key is None:
            return None
        return next((r for r in self.releases if r.id == key), None)

    def on_virtual_table_cursor_moved(self, message: VirtualTable.CursorMoved) -> None:
        if message.table.id == "table":
            self.render_detail()
            self.refresh_approvals()
            self.refresh_bindings()

    def approval_line(self, release: Release, env: str) -> Text:
        app = self.deck
        text = Text(f"{env} approval: ", end="")
        known = self.approvals.get(release.id)
        if known is None:
            text.append("…", style=rich_style(app, "text-muted"))
            return text
        approval = known.get(env)
        if approval is None:
            text.append("none", style=rich_style(app, "text-muted"))
            return text
        text.append(approval.status, style=rich_style(app, STATUS_VARIABLES.get(
            approval.status, "text")))
        text.append(f" by {sanitize_line(approval.approver, 60)}")
        if approval.used_by_deployment:
            text.append(" (used)")
        elif approval.status == "active":
            text.append(f" until {instant_text(approval.expires_at)}")
        if approval.justification:
            text.append(f" — {sanitize_line(approval.justification, 120)}")
        return text

    def render_detail(self) -> None:
        box = self.query_one("#detail", Static)
        release = self.current()
        if release is None:
            box.update(Content("no release selected"))
            return
        app = self.deck
        text = Text(end="", no_wrap=True, overflow="ellipsis")
        text.append(f"release {release.release_number}", style="bold")
        text.append(f"  {release.commit_sha}")
        if release.tag:
            text.append(f"  {sanitize_line(release.tag, 60)}")
        trigger = release.trigger
        text.append(f"  by {sanitize_line(release.created_by, 60)}  "
                    f"{sanitize_line(trigger.trigger_type, 20)}")
        if trigger.branch:
            text.append(f" on {sanitize_line(trigger.branch, 60)}")
        if release.pipeline_run_id:
            text.append(f"  run {short_id(release.pipeline_run_id)} (o)",
                        style=rich_style(app, "secondary"))
        if release.artifacts:
            text.append("\n" + sanitize_line("; ".join(
                f"{a.name} ({a.type}) {a.tracking_oci_uri or a.primary_published_uri or ''}"
                .strip() for a in release.artifacts), 400))
        for env in self.approval_environments:
            text.append("\n")
            text.append_text(self.approval_line(release, env))
        box.update(text)

    def render_envs(self) -> None:
        app = self.deck
        now = app.clock.now()
        text = Text(end="", no_wrap=True, overflow="ellipsis")
        width = max([len(v.name) for v in self.env_views] + [4])
        for i, view in enumerate(self.env_views):
            if i:
                text.append("\n")
            text.append(sanitize_line(view.name, 40).ljust(width) + "  ", style="bold")
            current = view.current
            if current is None:
                text.append("nothing deployed", style=rich_style(app, "text-muted"))
            else:
                text.append(f"#{current.release_number} ")
                text.append(current.status, style=rich_style(app, STATUS_VARIABLES.get(
                    current.status, "text")))
                text.append(f"  by {sanitize_line(current.deployed_by, 40)} "
                            f"{age_text(current.deployed_at, now)} ago")
                if current.gitops_commit_sha:
                    text.append(f"  commit {current.gitops_commit_sha[:7]}",
                                style=rich_style(app, "text-muted"))
            earlier = [d for d in view.history if current is None or d.id != current.id]
            if earlier:
                text.append("   before: " + " ".join(
                    f"#{d.release_number}" + ("" if d.status == "superseded" else
                                              f"({d.status})")
                    for d in earlier[:HISTORY]), style=rich_style(app, "text-muted"))
        self.query_one("#envs", Static).update(text)

    def handle_back(self) -> bool:
        return self.close_filter()

    # -- which actions apply -------------------------------------------------------------------

    def active_approval(self, release: Release) -> ReleaseApproval | None:
        for approval in (self.approvals.get(release.id) or {}).values():
            if approval is not None and approval.status == "active" and (
                    not approval.used_by_deployment):
                return approval
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        allowed = super().check_action(action, parameters)
        if allowed and self.client.role is not None:
            # Releases from a Forge of the profile's own: its token's role decides.
            allowed = role_allows(self.client.role, ACTION_ROLES.get(action))
        if not allowed or action not in ("approve_release", "revoke_approval",
                                         "open_release_run", "deploy_release"):
            return allowed
        release = self.current()
        if release is None:
            return None if action != "approve_release" else allowed
        if action == "approve_release":
            # Nobody approves their own release: hidden for its creator.
            return bool(self.approval_environments) and (
                self.client.identity is None or self.client.identity != release.created_by)
        if action == "revoke_approval":
            return True if self.active_approval(release) is not None else None
        if action == "open_release_run":
            return True if release.pipeline_run_id else None
        return allowed

    # -- actions ---------------------------------------------------------------------------

    def action_deploy_release(self) -> None:
        release = self.current()
        if release is None:
            self.nothing_selected()
            return

        def chosen(choice: DeployChoice | None) -> None:
            if choice is not None:
                self.deploy(release, choice)

        self.app.push_screen(DeployDialog(
            release, self.title_text, self.environments, self.approval_environments,
            self.approvals.get(release.id), {v.name: v.current for v in self.env_views}),
            chosen)

    @work(group="action")
    async def deploy(self, release: Release, choice: DeployChoice) -> None:
        try:
            if choice.request:
                request = await self.client.request_deploy(release.id, choice.environment)
                self.post_message(ReleaseActionDone(
                    f"deploy request for release {release.release_number} to "
                    f"{choice.environment} waits in the approval queue (:ap, run "
                    f"{short_id(request.execution_id)})"))
                return
            deployment = await self.client.deploy(release.id, choice.environment,
                                                  choice.approval_id)
        except FeatureMissing:
            self.post_message(ActionFailed(
                f"{choice.environment} needs an approval first, and this server takes no "
                "deploy requests: approve the release (a), then deploy"))
            return
        except FlowdeckError as exc:
            self.post_message(ActionFailed(f"deploy: {exc}"))
            return
        self.post_message(ReleaseActionDone(
            f"release {release.release_number} deployed to {choice.environment}: "
            f"{deployment.status}"))

    def action_approve_release(self) -> None:
        release = self.current()
        if release is None:
            self.nothing_selected()
            return

        def answered(result: tuple[str, str] | None) -> None:
            if result is not None:
                self.approve(release, *result)

        self.app.push_screen(ApproveDialog(release, self.title_text,
                                           self.approval_environments), answered)

    @work(group="action")
    async def approve(self, release: Release, environment: str, justification: str) -> None:
        try:
            approval = await self.client.approve(release.id, environment, justification)
        except FlowdeckError as exc:
            self.post_message(ActionFailed(f"approve: {exc}"))
            return
        self.post_message(ReleaseActionDone(
            f"release {release.release_number} approved for {environment} until "
            f"{instant_text(approval.expires_at)}"))

    def action_revoke_approval(self) -> None:
        release = self.current()
        approval = self.active_approval(release) if release is not None else None
        if release is None or approval is None:
            self.deck.toast("no active approval to revoke", severity="warning")
            return
        if not self.deck.confirm:
            self.revoke(approval)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.revoke(approval)

        self.app.push_screen(ConfirmScreen(
            "Revoke this approval?",
            f"Release {release.release_number} of {self.title_text} for "
            f"{approval.environment}\napproved by {approval.approver} at "
            f"{instant_text(approval.approved_at)}: {approval.justification}\n"
            f"approval {approval.id}\n\nA deployment can no longer use it.",
            confirm="Revoke"), answered)

    @work(group="action")
    async def revoke(self, approval: ReleaseApproval) -> None:
        try:
            await self.client.revoke(approval.id)
        except FeatureMissing:
            self.post_message(ActionFailed("this server cannot revoke approvals"))
            return
        except FlowdeckError as exc:
            self.post_message(ActionFailed(f"revoke: {exc}"))
            return
        self.post_message(ReleaseActionDone(f"approval {short_id(approval.id)} revoked"))

    def on_release_action_done(self, message: ReleaseActionDone) -> None:
        message.stop()
        self.deck.toast(message.text, title="Releases")
        self.approvals.clear()
        self.reload()

    def action_open_release_run(self) -> None:
        release = self.current()
        if release is None or not release.pipeline_run_id:
            self.deck.toast("this release has no pipeline run recorded", severity="warning")
            return
        if self.deck.forge is not None:
            # Releases from a Forge of the profile's own: the run is not an execution of
            # the deck's backend, so it is drawn from what that Forge says of it.
            from flowdeck.tui.screens.forge_run import ForgeRunScreen

            self.app.push_screen(ForgeRunScreen(release.pipeline_run_id, self.client))
            return
        from flowdeck.tui.screens.pipeline_run import PipelineRunScreen

        self.app.push_screen(PipelineRunScreen(release.pipeline_run_id, self.client))
