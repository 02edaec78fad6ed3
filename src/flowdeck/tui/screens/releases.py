"""Releases (`:rel`): every project, its newest release and what runs in each environment.

`enter` opens a project (`ProjectScreen`: its releases, each environment's deployment and
history, deploy, approve, revoke, the pipeline run). The data comes from the releases client
(`flowdeck.client.releases`): the engine in this process, a flowdeck server, or a profile's
own Forge; a backend without releases (a real Kestra) is said so on screen.

Live: this screen follows the forge's event log (new releases and deployments reload it and
the open project at once); where the server keeps no event log, both are read again every
`[tui] refresh` seconds. Release approvals have no event: the project screen reads them again
on that same beat and after every action.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.content import Content
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Footer, Input, Static

from flowdeck.client.releases import (
    FeatureMissing,
    ForgeEvent,
    Overview,
    Releases,
    ReleasesUnavailable,
    releases_for,
)
from flowdeck.core.errors import BackendUnavailable, FlowdeckError
from flowdeck.core.forge import ProjectSummary
from flowdeck.core.sanitize import sanitize_line
from flowdeck.tui.ages import age_text
from flowdeck.tui.commands import bindings_for
from flowdeck.tui.format import local_time, safe_text
from flowdeck.tui.messages import ConnectionLost
from flowdeck.tui.screens.base import ListScreen
from flowdeck.tui.theme import rich_style
from flowdeck.tui.widgets.list_source import ListSource
from flowdeck.tui.widgets.status import StatusBar
from flowdeck.tui.widgets.table import Column, VirtualTable

#: Events within this many seconds reload once.
RELOAD_DEBOUNCE = 0.3
#: Seconds before a broken event follow is tried again (doubling up to a minute).
RETRY = 1.0


def instant_text(stamp: str) -> str:
    """An ISO-8601 instant as the deck shows times (local, to the minute)."""
    try:
        return local_time(datetime.fromisoformat(stamp.replace("Z", "+00:00")))[:16]
    except ValueError:
        return sanitize_line(stamp, 40)


def project_key(summary: ProjectSummary) -> str:
    return f"{summary.repository}/{summary.project}"


# ---- messages (posted by the workers) ----------------------------------------------------


@dataclass
class OverviewLoaded(Message):
    overview: Overview


@dataclass
class OverviewFailed(Message):
    text: str
    unavailable: bool = False


@dataclass
class ForgeChanged(Message):
    """An event of the forge's log (a release, a deployment, a pipeline run)."""

    event: ForgeEvent


class PollInstead(Message):
    """The server keeps no event log: read again on a timer."""


class ReleasesScreen(ListScreen):
    SCOPE = "releases"
    AUTO_FOCUS = ""
    BINDINGS = bindings_for("releases")
    DEFAULT_CSS = """
    ReleasesScreen #title { height: 1; background: $boost; padding: 0 1; }
    ReleasesScreen #message { height: auto; max-height: 4; padding: 0 1; display: none; }
    ReleasesScreen #message.-shown { display: block; }
    ReleasesScreen #detail { height: 1; padding: 0 1; background: $boost; display: none; }
    ReleasesScreen #detail.-shown { display: block; }
    ReleasesScreen #filter { dock: bottom; display: none; }
    ReleasesScreen #filter.-shown { display: block; }
    ReleasesScreen.-stale VirtualTable { opacity: 60%; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.source = ListSource()
        self.overview: Overview | None = None
        self.loading = False
        self.loaded = False
        self.problem: str | None = None
        self.unavailable = False
        self.polling = False
        self._client: Releases | None = None
        self._reload_timer: Timer | None = None
        self._poll_timer: Timer | None = None
        self._environments: tuple[str, ...] = ()

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield Static(id="title")
        yield Static(id="message")
        yield VirtualTable(self.columns(("dev", "staging", "production")), self.source,
                           id="table")
        yield Static(id="detail")
        yield Input(placeholder="filter projects", id="filter")
        yield Footer()

    @staticmethod
    def columns(environments: tuple[str, ...]) -> list[Column]:
        return [Column("project", "PROJECT", min_width=12),
                Column("latest", "LATEST", 6, "right"), Column("sha", "SHA", 7),
                Column("tag", "TAG", 10, narrow=6), Column("age", "AGE", 4, "right"),
                *[Column(env, env.upper()[:12], max(5, min(12, len(env))), "right")
                  for env in environments]]

    def on_mount(self) -> None:
        self.table.focus()
        self.rebuild()
        self.reload()

    # -- the releases client -------------------------------------------------------------

    def client(self) -> Releases:
        """The releases of the deck's backend (or its profile's own Forge)."""
        app = self.deck
        if self._client is None:
            assert app.capabilities is not None
            self._client = releases_for(app.backend, app.capabilities, user=app.user,
                                        endpoint=app.forge)
        return self._client

    def reset_for_backend(self) -> None:
        for group in ("load", "watch"):
            self.workers.cancel_group(self, group)
        for timer in (self._reload_timer, self._poll_timer):
            if timer is not None:
                timer.stop()
        if self._client is not None:
            self.close_client(self._client)
        self._client = None
        self.overview = None
        self.loading = self.loaded = self.unavailable = self.polling = False
        self.problem = None
        self.updated_at = None
        self.rebuild()

    @work(group="close")
    async def close_client(self, client: Releases) -> None:
        await client.close()

    async def on_unmount(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    # -- loading ---------------------------------------------------------------------------

    def reload(self) -> None:
        if self.deck.capabilities is None:
            return  # the app reloads every screen once connected
        try:
            client = self.client()
        except ReleasesUnavailable as exc:
            self.unavailable, self.loaded, self.problem = True, True, str(exc)
            self.rebuild()
            return
        self.loading = True
        self.render_message(self.source.row_count())
        self.load(client)
        if not self.workers_in("watch"):
            self.follow_events(client)

    def workers_in(self, group: str) -> bool:
        return any(w.group == group and not w.is_finished for w in self.workers)

    @work(group="load", exclusive=True)
    async def load(self, client: Releases) -> None:
        try:
            overview = await client.overview()
        except BackendUnavailable as exc:
            self.post_message(ConnectionLost(str(exc)))
            self.post_message(OverviewFailed(f"releases unavailable: {exc}"))
            return
        except FlowdeckError as exc:
            self.post_message(OverviewFailed(str(exc)))
            return
        self.post_message(OverviewLoaded(overview))

    @work(group="watch", exclusive=True)
    async def follow_events(self, client: Releases) -> None:
        """Follow the event log from now on; retried when it breaks; `PollInstead` when the
        server has none."""
        delay = RETRY
        while True:
            try:
                after = await client.latest_event()
                async for event in client.events(after):
                    delay = RETRY
                    self.post_message(ForgeChanged(event))
            except FeatureMissing:
                self.post_message(PollInstead())
                return
            except FlowdeckError:
                pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    def on_overview_loaded(self, message: OverviewLoaded) -> None:
        message.stop()
        self.overview = message.overview
        self.loading = False
        self.loaded = True
        self.problem = None
        self.stamp()
        self.rebuild()

    def on_overview_failed(self, message: OverviewFailed) -> None:
        message.stop()
        self.loading = False
        self.loaded = True
        self.problem = message.text
        self.rebuild()

    def on_forge_changed(self, message: ForgeChanged) -> None:
        message.stop()
        self.schedule_reload()
        from flowdeck.tui.screens.release_project import ProjectScreen

        for screen in self.deck.deck_screens():
            if isinstance(screen, ProjectScreen):
                screen.forge_changed(message.event)

    def on_poll_instead(self, message: PollInstead) -> None:
        message.stop()
        self.polling = True
        if self._poll_timer is None:
            self._poll_timer = self.set_interval(self.deck.refresh_seconds, self.poll)

    def poll(self) -> None:
        from flowdeck.tui.screens.release_project import ProjectScreen

        self.reload()
        for screen in self.deck.deck_screens():
            if isinstance(screen, ProjectScreen):
                screen.reload()

    def schedule_reload(self) -> None:
        if self._reload_timer is not None:
            self._reload_timer.stop()
        self._reload_timer = self.set_timer(RELOAD_DEBOUNCE, self.reload)

    def action_reload(self) -> None:
        self.reload()

    # -- drawing ---------------------------------------------------------------------------

    def shown(self) -> list[ProjectSummary]:
        found = list(self.overview.projects) if self.overview is not None else []
        if not self.filter_text:
            return found
        needle = self.filter_text.lower()
        return [p for p in found if needle in project_key(p).lower()]

    def apply_filter(self) -> None:
        self.rebuild()

    def rebuild(self) -> None:
        if not self.query("#table"):
            return
        app = self.deck
        now = app.clock.now()
        environments = self.overview.environments if self.overview else ("dev", "staging",
                                                                         "production")
        if environments != self._environments:
            self._environments = tuple(environments)
            self.table.columns = self.columns(self._environments)
        rows: list[tuple[str, list[Text]]] = []
        for item in self.shown():
            latest = item.latest_release
            cells = [safe_text(project_key(item), 200),
                     Text(f"#{latest.release_number}" if latest else "-", end=""),
                     Text(latest.commit_sha[:7] if latest else "-", end=""),
                     safe_text(latest.tag or "-" if latest else "-", 60),
                     Text(age_text(latest.created_at if latest else None, now), end="")]
            for env in environments:
                current = item.current.get(env)
                cells.append(Text(f"#{current.release_number}", end="",
                                  style=rich_style(app, "success")) if current
                             else Text("-", end="", style=rich_style(app, "text-muted")))
            rows.append((project_key(item), cells))
        self.source.set_rows(rows)
        self.table.reset()
        title = "Releases" + (f" ({len(rows)} projects)" if self.loaded else "")
        if self.filter_text:
            title += f"  │  filter: {sanitize_line(self.filter_text, 40)}"
        if self.polling:
            title += "  │  read every " + f"{self.deck.refresh_seconds:g}s"
        self.query_one("#title", Static).update(Content(title))
        self.render_message(len(rows))
        self.render_detail()

    def render_message(self, shown: int) -> None:
        box = self.query_one("#message", Static)
        text = Text(end="")
        if self.unavailable:
            text.append(sanitize_line(self.problem or "releases are not available", 500),
                        style=rich_style(self.app, "warning"))
        else:
            if self.loading and not self.loaded:
                text.append("loading…", style=rich_style(self.app, "text-muted"))
            if self.problem is not None:
                text.append("✕ " + sanitize_line(self.problem, 500),
                            style=rich_style(self.app, "error"))
            if not text and self.loaded and shown == 0:
                if self.overview is not None and self.overview.projects:
                    text.append("No project matches the filter (esc clears it).")
                else:
                    text.append("No releases yet. Create one with `flowdeck release create "
                                "OWNER/NAME/PROJECT --sha SHA`, or POST /v1/releases.")
        box.update(text)
        box.set_class(bool(text), "-shown")

    def current(self) -> ProjectSummary | None:
        key = self.table.current_key()
        if key is None or self.overview is None:
            return None
        return next((p for p in self.overview.projects if project_key(p) == key), None)

    def on_virtual_table_cursor_moved(self, message: VirtualTable.CursorMoved) -> None:
        if message.table.id == "table":
            self.render_detail()

    def render_detail(self) -> None:
        box = self.query_one("#detail", Static)
        item = self.current()
        if item is None or item.latest_release is None:
            box.update("")
            box.remove_class("-shown")
            return
        latest = item.latest_release
        text = Text(end="", no_wrap=True, overflow="ellipsis")
        text.append(sanitize_line(project_key(item), 200), style="bold")
        text.append(f"  {item.releases} release{'s' if item.releases != 1 else ''}"
                    f"  newest #{latest.release_number} {latest.commit_sha[:12]}")
        if latest.tag:
            text.append(f" {sanitize_line(latest.tag, 60)}")
        text.append(f" by {sanitize_line(latest.created_by or '?', 60)}")
        if latest.oci_uri:
            text.append(f"  {sanitize_line(latest.oci_uri, 200)}")
        box.update(text)
        box.add_class("-shown")

    def is_stale(self) -> bool:
        if self.unavailable:
            self.set_class(False, "-stale")
            return False
        if self.polling or not self.loaded:
            return super().is_stale()
        # Followed live: stale only when the backend is gone or the last read failed.
        stale = self.deck.connection != "connected" or self.problem is not None
        self.set_class(stale, "-stale")
        return stale

    def handle_back(self) -> bool:
        return self.close_filter()

    # -- opening a project -------------------------------------------------------------------

    def action_open_project(self) -> None:
        item = self.current()
        if item is None:
            self.nothing_selected()
            return
        from flowdeck.tui.screens.release_project import ProjectScreen

        overview = self.overview
        assert overview is not None
        self.app.push_screen(ProjectScreen(self.client(), item.repository, item.project,
                                           overview.environments,
                                           overview.approval_environments))
