"""The deck: a Textual app over one `Backend` (embedded engine or a server).

k9s grammar: `:` commands, `/` filter, `?` help, `esc` back, `enter` drill in, `space` mark,
ctrl+p palette. Every screen is fed by workers that only talk to the backend and post
messages; the app owns the connection state, the approvals badge and the live fan-out.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen

from flowdeck.client.backend import Backend, Capabilities
from flowdeck.core.clock import Clock, SystemClock
from flowdeck.core.errors import BackendUnavailable, FlowdeckError
from flowdeck.core.models import Approval
from flowdeck.core.sanitize import sanitize_line
from flowdeck.core.states import FAILED_STATES
from flowdeck.tui.commands import (
    GLOBAL,
    CommandError,
    DeckCommandProvider,
    bindings_for,
    parse_command,
)
from flowdeck.tui.messages import (
    ActionFailed,
    ApprovalChanged,
    Connected,
    ConnectionLost,
    ExecutionChanged,
    PendingApprovals,
)
from flowdeck.tui.screens.approvals import ApprovalsScreen
from flowdeck.tui.screens.executions import ExecutionsScreen
from flowdeck.tui.screens.flows import FlowsScreen
from flowdeck.tui.screens.help import CommandPrompt, HelpScreen
from flowdeck.tui.screens.staging import StagingScreen
from flowdeck.tui.theme import DEFAULT_THEME, register_themes, with_domain_variables

Severity = Literal["information", "warning", "error"]


class FlowdeckApp(App[None]):
    TITLE = "flowdeck"
    CSS_PATH = "app.tcss"
    MODES = {"executions": ExecutionsScreen, "flows": FlowsScreen,
             "approvals": ApprovalsScreen, "staging": StagingScreen}
    BINDINGS = [*bindings_for(GLOBAL)]
    COMMANDS = App.COMMANDS | {DeckCommandProvider}
    ENABLE_COMMAND_PALETTE = True

    connection: reactive[str] = reactive("connecting")
    pending_approvals: reactive[int] = reactive(0)
    namespace: reactive[str | None] = reactive(None)

    def __init__(self, backend: Backend, *, clock: Clock | None = None,
                 read_only: bool = False, theme: str | None = None,
                 refresh_seconds: float = 5.0, bell: bool = False,
                 keymap: dict[str, str] | None = None, max_log_lines: int = 10_000,
                 save_dir: Path | None = None, user: str | None = None,
                 show_toasts: bool = True, theme_dirs: list[Path] | None = None,
                 initial: str = "executions", profile: str | None = None,
                 startup: Callable[[Backend], Awaitable[None]] | None = None,
                 close_backend: bool = False,
                 open_profile: Callable[[str], Backend] | None = None,
                 profile_names: Iterable[str] = (),
                 before_close: Callable[[Backend], Awaitable[None]] | None = None) -> None:
        super().__init__()
        self.backend = backend
        self.clock: Clock = clock or SystemClock()
        self.read_only = read_only
        self.refresh_seconds = max(0.5, refresh_seconds)
        self.stale_after = max(10.0, self.refresh_seconds * 3)
        self.bell_enabled = bell
        self.max_log_lines = max_log_lines
        self.save_dir = save_dir or Path.cwd()
        self.show_toasts = show_toasts
        self.initial = initial
        self.profile = profile
        self.capabilities: Capabilities | None = None
        self._startup = startup
        self._close_backend = close_backend
        #: Runs before the deck closes its backend (e.g. stopping the `--serve` HTTP API).
        self._before_close = before_close
        #: The URL the HTTP API is served on from this process (`flowdeck --serve`), if any.
        self.serving_url: str | None = None
        #: Builds (does not connect) the backend of a named profile; raises FlowdeckError.
        self._open_profile = open_profile
        self.profile_names = sorted(profile_names)
        self._user = user
        self._keymap = dict(keymap or {})
        self._wanted_theme = theme or DEFAULT_THEME
        self._theme_dirs = theme_dirs
        self._pending: dict[str, Approval] = {}
        self._failed_seen: set[str] = set()
        self._pending_ready = False
        self.theme_problems = register_themes(self, theme_dirs)
        if self._wanted_theme in self.available_themes:
            self.theme = self._wanted_theme

    # -- lifecycle ----------------------------------------------------------------------

    def get_theme_variable_defaults(self) -> dict[str, str]:
        theme = self.current_theme
        fields = {k: v for k in ("primary", "secondary", "warning", "error", "success",
                                 "accent", "foreground", "background", "surface", "panel")
                  if isinstance(v := getattr(theme, k), str)}
        return with_domain_variables(fields, {})

    def on_mount(self) -> None:
        if self._keymap:
            self.set_keymap(self._keymap)
        for problem in self.theme_problems:
            self.toast(problem, severity="warning")
        if self._wanted_theme not in self.available_themes:
            self.toast(f"theme {self._wanted_theme!r} not found; using {self.theme}",
                       severity="warning")
        self.switch_mode(self.initial)
        self.connect()

    async def on_unmount(self) -> None:
        if self._before_close is not None:
            before, self._before_close = self._before_close, None
            with contextlib.suppress(FlowdeckError, OSError):
                await before(self.backend)
        if self._close_backend:
            await self.backend.close()

    @property
    def user(self) -> str:
        if self._user is None:
            try:
                self._user = getpass.getuser()
            except (KeyError, OSError):
                self._user = "deck-user"
        return self._user

    def toast(self, text: str, *, severity: Severity = "information",
              title: str = "") -> None:
        """A notification with sanitized, literal text (never markup)."""
        if self.show_toasts:
            self.notify(sanitize_line(text, 500), title=sanitize_line(title, 80),
                        severity=severity, markup=False)

    def mark_connected(self) -> None:
        if self.connection != "connected" and self.capabilities is not None:
            self.connection = "connected"

    def watch_connection(self) -> None:
        self.refresh_header()

    def watch_pending_approvals(self) -> None:
        self.refresh_header()

    def watch_namespace(self) -> None:
        self.refresh_header()

    def refresh_header(self) -> None:
        from flowdeck.tui.widgets.status import StatusBar

        for screen in self._live_screens():
            for bar in screen.query(StatusBar):
                bar.refresh()

    def _live_screens(self) -> list[Screen[Any]]:
        seen: list[Screen[Any]] = []
        for stack in self._screen_stacks.values():
            for screen in stack:
                if screen not in seen:
                    seen.append(screen)
        return seen

    # -- workers: connect and watch -------------------------------------------------------

    @work(group="connect", exclusive=True)
    async def connect(self) -> None:
        delay = 0.5
        while True:
            try:
                caps = await self.backend.connect()
                if self._startup is not None:
                    startup, self._startup = self._startup, None
                    await startup(self.backend)
                self.post_message(Connected(caps))
                return
            except BackendUnavailable as exc:
                self.post_message(ConnectionLost(str(exc)))
            except FlowdeckError as exc:  # e.g. another engine owns the data dir: no retry
                self.post_message(ConnectionLost(str(exc)))
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15)

    def on_connected(self, message: Connected) -> None:
        self.capabilities = message.capabilities
        self.connection = "connected"
        self.watch_execution_stream()
        self.watch_approval_stream()
        self.load_pending()
        for screen in self._live_screens():  # what they asked for before the engine was up
            reload = getattr(screen, "reload", None)
            if reload is not None:
                reload()

    def on_connection_lost(self, message: ConnectionLost) -> None:
        if self.connection != "disconnected":
            self.toast(f"backend unavailable: {message.reason}", severity="error")
        self.connection = "disconnected"

    @work(group="watch-executions", exclusive=True)
    async def watch_execution_stream(self) -> None:
        delay = 0.5
        while True:
            try:
                async for execution in self.backend.watch_executions():
                    self.post_message(ExecutionChanged(execution))
                    delay = 0.5
            except BackendUnavailable as exc:
                self.post_message(ConnectionLost(str(exc)))
            except FlowdeckError as exc:
                self.post_message(ActionFailed(f"live updates stopped: {exc}"))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15)

    @work(group="watch-approvals", exclusive=True)
    async def watch_approval_stream(self) -> None:
        delay = 0.5
        while True:
            try:
                async for approval in self.backend.watch_approvals():
                    self.post_message(ApprovalChanged(approval))
                    delay = 0.5
            except BackendUnavailable as exc:
                self.post_message(ConnectionLost(str(exc)))
            except FlowdeckError as exc:
                self.post_message(ActionFailed(f"approval updates stopped: {exc}"))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15)

    @work(group="pending", exclusive=True)
    async def load_pending(self) -> None:
        try:
            items = await self.backend.list_approvals("pending")
        except FlowdeckError:
            return
        self.post_message(PendingApprovals(items))

    def on_pending_approvals(self, message: PendingApprovals) -> None:
        for approval in message.approvals:
            self._pending.setdefault(approval.id, approval)
        self._pending_ready = True
        self.pending_approvals = len(self._pending)

    def on_execution_changed(self, message: ExecutionChanged) -> None:
        execution = message.execution
        if (execution.state.current in FAILED_STATES and execution.state.current != "KILLED"
                and execution.id not in self._failed_seen):
            self._failed_seen.add(execution.id)
            self.toast(f"{execution.namespace}.{execution.flow_id} {execution.state.current} "
                       f"({execution.id[-8:]})", severity="error", title="Run failed")
            self.ring()
        for screen in self._live_screens():
            handler = getattr(screen, "on_live_event", None)
            if handler is not None:
                handler(execution)

    def on_approval_changed(self, message: ApprovalChanged) -> None:
        approval = message.approval
        if approval.status == "pending":
            if approval.id not in self._pending:
                self._pending[approval.id] = approval
                if self._pending_ready:
                    self.toast(approval.title, title="New approval", severity="warning")
                    self.ring()
        else:
            self._pending.pop(approval.id, None)
        self.pending_approvals = len(self._pending)
        for screen in self._live_screens():
            handler = getattr(screen, "on_live_event", None)
            if handler is not None:
                handler(approval)

    def ring(self) -> None:
        if self.bell_enabled:
            self.bell()

    def on_action_failed(self, message: ActionFailed) -> None:
        self.toast(message.text, severity="error")

    def pending_list(self) -> list[Approval]:
        return sorted(self._pending.values(), key=lambda a: a.created_at)

    # -- global actions -----------------------------------------------------------------

    def action_command_mode(self) -> None:
        def done(text: str | None) -> None:
            if text:
                self.run_command(text)

        self.push_screen(CommandPrompt(), done)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(getattr(self.screen, "SCOPE", GLOBAL)))

    async def action_back(self) -> None:
        handler = getattr(self.screen, "handle_back", None)
        if handler is not None and handler():
            return
        if len(self.screen_stack) > 1:
            self.pop_screen()

    def action_show(self, mode: str) -> None:
        self.switch_mode(mode)

    def run_command(self, text: str) -> None:
        try:
            name, arg = parse_command(text)
        except CommandError as exc:
            self.toast(str(exc), severity="error")
            return
        if name in ("executions", "flows", "approvals"):
            self.switch_mode(name)
        elif name == "ns":
            self.namespace = arg or None
            for screen in self._live_screens():
                reload = getattr(screen, "reload", None)
                if reload is not None:
                    if isinstance(screen, ExecutionsScreen):
                        screen.reload(new_query=True)
                    else:
                        reload()
            self.toast(f"namespace: {arg}" if arg else "all namespaces")
        elif name == "theme":
            if arg in self.available_themes:
                self.theme = arg
                for screen in self._live_screens():
                    screen.refresh(layout=False)
                    for widget in screen.query("*"):
                        widget.refresh()
            else:
                self.toast(f"no theme {arg!r}; have: {', '.join(sorted(self.available_themes))}",
                           severity="error")
        elif name == "profile":
            if not arg:
                have = ", ".join(self.profile_names) or "none configured"
                self.toast(f"profile: {self.profile or self.backend.name}; profiles: {have}. "
                           "Usage: :profile NAME")
            else:
                self.switch_profile(arg)
        elif name == "staging":
            self.switch_mode("staging")
        elif name == "releases":
            version = self.capabilities.version if self.capabilities else "?"
            kind = self.capabilities.kind if self.capabilities else self.backend.name
            self.toast(f":rel — {name} not available yet "
                       f"on this backend/version ({kind} {version})", severity="warning")
        elif name == "quit":
            self.exit()
        elif name == "help":
            self.action_help()

    # -- profiles -----------------------------------------------------------------------

    @work(group="profile", exclusive=True)
    async def switch_profile(self, name: str) -> None:
        """`:profile NAME`: connect the profile's backend; only once it answers, stop the
        live streams, close the old backend, and reload every screen from the new one."""
        if self._open_profile is None:
            self.toast("profiles are not available here (no configuration)", severity="error")
            return
        try:
            new = self._open_profile(name)
        except FlowdeckError as exc:  # unknown name, an unset variable, a bad key
            self.toast(f"profile {name}: {exc}", severity="error")
            return
        self.toast(f"connecting to profile {name} ({new.name})…")
        try:
            caps = await new.connect()
        except FlowdeckError as exc:
            with contextlib.suppress(FlowdeckError, OSError):
                await new.close()
            self.toast(f"profile {name}: cannot connect: {exc}; staying on "
                       f"{self.profile or self.backend.name}", severity="error")
            return
        old = self.backend
        for group in ("connect", "watch-executions", "watch-approvals", "pending"):
            self.workers.cancel_group(self, group)
        await self._reset_screens()
        self.backend, self.profile = new, name
        self.capabilities = None
        self._startup = None
        self._pending.clear()
        self._failed_seen.clear()
        self._pending_ready = False
        self.pending_approvals = 0
        self.namespace = None
        if self._close_backend:
            with contextlib.suppress(FlowdeckError, OSError):
                await old.close()
        self._close_backend = True  # the deck opened this one: it closes it
        self.post_message(Connected(caps))
        self.toast(f"profile {name}: {new.name}")

    async def _reset_screens(self) -> None:
        """Drop every screen that shows one backend's objects (details, forms, dialogs) and
        empty the lists, so nothing from the old backend is shown as the new one's."""
        current = self.current_mode
        while len(self.screen_stack) > 1:
            await self.pop_screen()
        for mode, base in type(self).MODES.items():
            if mode != current and mode in self._screen_stacks:
                await self.remove_mode(mode)
                self.add_mode(mode, base)
        reset = getattr(self.screen, "reset_for_backend", None)
        if reset is not None:
            reset()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)


__all__ = ["Binding", "FlowdeckApp"]
