"""The deck: a Textual app over one `Backend` (embedded engine or a server).

k9s grammar: `:` commands, `/` filter, `?` help, `esc` back, `enter` drill in, `space` mark,
ctrl+p palette. Every screen is fed by workers that only talk to the backend and post
messages; the app owns the connection state, the approvals badge and the live fan-out. The
screens and `:` commands come from `flowdeck.tui.registry`; the app reaches a screen only
through the hooks `DeckScreen` declares.

Keys are taken one at a time, in the order they arrived (`flowdeck.tui.keys`): a key that
opens a prompt, a dialog or a screen holds the keys after it until what it opened has the
focus, so type-ahead lands where the operator meant, never on the list behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import weakref
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from textual import events, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Input, TextArea

from flowdeck.client.backend import Backend, Capabilities, InterruptedRun
from flowdeck.client.releases import ForgeEndpoint
from flowdeck.core.clock import Clock, SystemClock
from flowdeck.core.errors import BackendUnavailable, FlowdeckError
from flowdeck.core.models import Approval, Execution
from flowdeck.core.sanitize import sanitize_line
from flowdeck.core.states import FAILED_STATES
from flowdeck.tui.commands import GLOBAL, bindings_for, role_allows
from flowdeck.tui.format import short_id
from flowdeck.tui.keys import KeyHold, screen_ready
from flowdeck.tui.messages import (
    ActionFailed,
    ApprovalChanged,
    Connected,
    ConnectionLost,
    ExecutionChanged,
    PendingApprovals,
)
from flowdeck.tui.palette import DeckCommandProvider
from flowdeck.tui.registry import MODES, CommandError, parse_command
from flowdeck.tui.screens.base import DeckScreen
from flowdeck.tui.screens.help import CommandPrompt, HelpScreen
from flowdeck.tui.theme import DEFAULT_THEME, register_themes, resolve_theme, with_domain_variables
from flowdeck.tui.widgets.confirm import ConfirmScreen

Severity = Literal["information", "warning", "error"]

#: Seconds between checks that the backend still answers (the header says so within this
#: and the ping's own timeout).
HEARTBEAT = 2.0
#: Keys that submit or leave a text box: the keys after them wait until the focus moved.
LEAVING_KEYS = frozenset({"enter", "escape", "tab", "shift+tab", "ctrl+s"})
#: How long keys wait after such a key when nothing moves (a prompt that refused the text).
LEAVE_TIMEOUT = 0.5


class FlowdeckApp(App[None]):
    TITLE = "flowdeck"
    CSS_PATH = "app.tcss"
    MODES = dict(MODES)
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
                 before_close: Callable[[Backend], Awaitable[None]] | None = None,
                 confirm: bool = True, heartbeat: float = HEARTBEAT,
                 forge: ForgeEndpoint | None = None,
                 forge_for_profile: Callable[[str], ForgeEndpoint | None] | None = None
                 ) -> None:
        super().__init__()
        self.backend = backend
        self.clock: Clock = clock or SystemClock()
        self.read_only = read_only
        #: Ask before a state change (restart, replay, bulk actions, quitting with runs in
        #: progress); `[deck] confirm = false` turns the questions off.
        self.confirm = confirm
        self.refresh_seconds = max(0.5, refresh_seconds)
        self.stale_after = max(10.0, self.refresh_seconds * 3)
        self.heartbeat_seconds = heartbeat
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
        #: Where the releases screen reads releases when not from the backend itself: the
        #: profile's own Forge (`[profiles.NAME.forge]`); `forge_for_profile` gives the next
        #: profile's on `:profile`.
        self.forge = forge
        self._forge_for_profile = forge_for_profile
        #: Key overrides by action id (`[tui.keys]`), as help shows them.
        self.keymap = dict(keymap or {})
        self._wanted_theme = theme or DEFAULT_THEME
        self._theme_dirs = theme_dirs
        self._pending: dict[str, Approval] = {}
        self._failed_seen: set[str] = set()
        self._pending_ready = False
        self._hold: KeyHold | None = None
        self._routed: weakref.WeakSet[events.Key] = weakref.WeakSet()
        self._quitting = False
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
        if self.keymap:
            self.set_keymap(self.keymap)
        for problem in self.theme_problems:
            self.toast(problem, severity="warning")
        if self._wanted_theme not in self.available_themes:
            self.toast(f"theme {self._wanted_theme!r} not found; using {self.theme}",
                       severity="warning")
        self.switch_mode(self.initial)
        self.connect()
        if self.heartbeat_seconds > 0:
            self.set_interval(self.heartbeat_seconds, self.heartbeat)

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

    @property
    def role(self) -> str | None:
        """The role the backend gives this deck (None: not known, nothing is hidden)."""
        return self.capabilities.role if self.capabilities is not None else None

    def may(self, needed: str | None) -> bool:
        """Whether the deck may take an action that needs the role `needed` (None: any)."""
        if needed is None:
            return True
        return not self.read_only and role_allows(self.role, needed)

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

    def deck_screens(self) -> list[DeckScreen]:
        """Every deck screen in any mode's stack (dialogs are not deck screens)."""
        return [s for s in self._live_screens() if isinstance(s, DeckScreen)]

    # -- keys: one at a time, in the order they arrived ----------------------------------

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not event.is_forwarded:
            if self._hold is not None:
                self._hold.keys.append(event)
                return
            await self._route_key(event)
            return
        await super().on_event(event)

    async def _route_key(self, event: events.Key) -> None:
        """Take one key now. Outside a text box its binding runs here, before the next key
        is looked at (Textual would run it only once the key has travelled through the
        focused widget and back, after the keys that followed it were already handed out).
        If it opened or closed a screen, the keys after it wait until that screen has the
        focus; a key that leaves a text box holds them until the focus has moved."""
        screen, focused = self.screen, self.focused
        if isinstance(focused, Input | TextArea):
            await super().on_event(event)  # priority bindings, then the box itself
            if event.key in LEAVING_KEYS or self.screen is not screen:
                self.hold_keys(lambda: self._moved_on(screen, focused),
                               timeout=LEAVE_TIMEOUT)
            return
        self.app_focus = True
        handled = (await self._check_bindings(event.key, priority=True)
                   or await self._check_bindings(event.key))
        if not handled:
            self._routed.add(event)  # its bindings were looked up: only the widgets' handlers
            (focused or screen)._forward_event(event)
        if self.screen is not screen:
            opened = self.screen
            self.hold_keys(lambda: self.screen is not opened or screen_ready(opened))

    def _moved_on(self, screen: Screen[Any], focused: Any) -> bool:
        if self.screen is not screen:
            return screen_ready(self.screen)
        return self.focused is not focused and self.focused is not None

    async def _on_key(self, event: events.Key) -> None:
        if event in self._routed:
            event.prevent_default()  # already looked up: do not run a binding a second time

    def hold_keys(self, ready: Callable[[], bool], *, nudge: Callable[[], object] | None = None,
                  timeout: float = KeyHold.TIMEOUT) -> None:
        """Hold the keys that arrive from now on until `ready()`, then take them in order (a
        hold already in place waits for both). After `timeout` seconds they go on anyway."""
        if self._hold is None:
            self._hold = KeyHold(ready, self._hold_clock() + timeout, nudge)
            self.set_timer(KeyHold.POLL, self._check_hold)
        else:
            self._hold.also(ready, self._hold_clock() + timeout, nudge)

    @staticmethod
    def _hold_clock() -> float:
        return asyncio.get_running_loop().time()

    async def _check_hold(self) -> None:
        hold = self._hold
        if hold is None:
            return
        if not hold.is_ready() and self._hold_clock() < hold.deadline:
            hold.poke()
            self.set_timer(KeyHold.POLL, self._check_hold)
            return
        self._hold = None
        keys = hold.keys
        while keys:
            await self._route_key(keys.pop(0))
            if self._hold is not None:  # that key opened something: the rest wait again
                self._hold.keys[:0] = keys
                return

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
        for screen in self.deck_screens():  # what they asked for before the engine was up
            screen.reload()
            screen.refresh_bindings()  # the role may hide actions

    def on_connection_lost(self, message: ConnectionLost) -> None:
        if self.connection != "disconnected":
            self.toast(f"backend unavailable: {message.reason}", severity="error")
        self.connection = "disconnected"

    def heartbeat(self) -> None:
        if self.capabilities is not None:
            self.ping()

    @work(group="heartbeat", exclusive=True)
    async def ping(self) -> None:
        """Ask the backend whether it still answers, so every screen's header says when it
        stops (the live streams retry quietly for a while before they give up)."""
        try:
            await self.backend.ping()
        except FlowdeckError as exc:
            self.post_message(ConnectionLost(str(exc)))
            return
        if self.connection != "connected":
            self.connection = "connected"
            for screen in self.deck_screens():
                screen.reload()

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
                       f"({short_id(execution.id)})", severity="error", title="Run failed")
            self.ring()
        self._fan_out(execution)

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
        self._fan_out(approval)

    def _fan_out(self, item: Execution | Approval) -> None:
        for screen in self.deck_screens():
            screen.on_live_event(item)

    def ring(self) -> None:
        if self.bell_enabled:
            self.bell()

    def on_action_failed(self, message: ActionFailed) -> None:
        self.toast(message.text, severity="error")

    def pending_list(self) -> list[Approval]:
        return sorted(self._pending.values(), key=lambda a: a.created_at)

    # -- global actions -----------------------------------------------------------------

    def action_command_mode(self) -> None:
        prompt = CommandPrompt()

        def done(text: str | None) -> None:
            try:
                if text:
                    self.run_command(text)
            finally:
                prompt.finished = True  # the keys typed after the command may go on

        self.push_screen(prompt, done)
        self.hold_keys(lambda: self.screen is not prompt or prompt.ready)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        screen = self.screen
        self.push_screen(HelpScreen(screen.SCOPE if isinstance(screen, DeckScreen) else GLOBAL))

    async def action_back(self) -> None:
        screen = self.screen
        if isinstance(screen, DeckScreen) and screen.handle_back():
            return
        if len(self.screen_stack) > 1:
            self.pop_screen()

    def action_show(self, mode: str) -> None:
        self.show_list(mode)

    def show_list(self, mode: str) -> None:
        """Open a section's list itself (`:flows`, `:ex`, ...), never a screen left open on
        top of it from before."""
        self.switch_mode(mode)
        while len(self.screen_stack) > 1:
            self.pop_screen()
        base = self.screen
        self.hold_keys(lambda: self.screen is not base or screen_ready(base))

    async def action_quit(self) -> None:
        """Quit (ctrl+q, `q` on a list, `:q`). With the embedded engine, runs in progress stop
        with the deck: ask first, saying what happens to them at the next start."""
        if self._quitting or not self.confirm:
            self.exit()
            return
        runs = await self._runs_stopped_by_quit()
        if not runs:
            self.exit()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._quitting = True
                self.exit()

        self.push_screen(ConfirmScreen("Quit flowdeck?", quit_question(runs), confirm="Quit"),
                         answered)

    async def _runs_stopped_by_quit(self) -> list[InterruptedRun]:
        if self.capabilities is None:
            return []
        try:
            return await asyncio.wait_for(self.backend.runs_stopped_by_close(), 3.0)
        except (FlowdeckError, TimeoutError):
            return []

    def run_command(self, text: str) -> None:
        try:
            name, arg = parse_command(text)
        except CommandError as exc:
            self.toast(str(exc), severity="error")
            return
        if name in MODES:
            self.show_list(name)
        elif name == "ns":
            self.namespace = arg or None
            for screen in self.deck_screens():
                screen.namespace_changed()
            self.toast(f"namespace: {arg}" if arg else "all namespaces")
        elif name == "theme":
            self.set_theme(arg)
        elif name == "profile":
            if not arg:
                have = ", ".join(self.profile_names) or "none configured"
                self.toast(f"profile: {self.profile or self.backend.name}; profiles: {have}. "
                           "Usage: :profile NAME")
            else:
                self.switch_profile(arg)
        elif name == "quit":
            self.run_worker(self.action_quit(), group="quit", exclusive=True)
        elif name == "help":
            self.action_help()

    def set_theme(self, name: str) -> None:
        """`:theme NAME`: a theme's full name or a bundled one's short name (`light`)."""
        found = resolve_theme(name, self.available_themes)
        if found is None:
            have = ", ".join(sorted(self.available_themes))
            self.toast(f"no theme {name!r}; have: {have}", severity="error")
            return
        self.theme = found
        for screen in self._live_screens():
            screen.refresh(layout=False)
            for widget in screen.query("*"):
                widget.refresh()

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
            forge = self._forge_for_profile(name) if self._forge_for_profile else None
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
        for group in ("connect", "watch-executions", "watch-approvals", "pending", "heartbeat"):
            self.workers.cancel_group(self, group)
        await self._reset_screens()
        self.backend, self.profile = new, name
        self.forge = forge
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
        screen = self.screen
        if isinstance(screen, DeckScreen):
            screen.reset_for_backend()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)


def quit_question(runs: list[InterruptedRun], limit: int = 8) -> str:
    """What quitting does to the runs in progress, naming them."""
    count = len(runs)
    lines = [f"Quitting stops this deck's engine, and with it {count} run"
             f"{'s' if count != 1 else ''} in progress:"]
    for run in runs[:limit]:
        line = (f"  {short_id(run.execution_id)}  "
                f"{sanitize_line(run.namespace + '.' + run.flow_id, 60)}  {run.state}")
        if run.fail:
            line += f"  — fails at next start: {sanitize_line(', '.join(run.fail), 60)}"
        lines.append(line)
    if count > limit:
        lines.append(f"  … and {count - limit} more")
    lines.append("")
    lines.append("They resume when flowdeck next starts on this data dir. A task that was "
                 "running then runs again, except one with side effects (a shell command, "
                 "an HTTP request): that one fails instead of running twice.")
    return "\n".join(lines)


__all__ = ["Binding", "FlowdeckApp", "quit_question"]
