"""Staging environments (`:st`): list, clone with live progress, delete by typed name.

Every action is an execution of the bundled `dev.deployment` flows, run through
`flowdeck.client.staging.StagingClient`, so the engine's guards decide (only `staging-*` names
are deleted, a clone never overwrites) whatever the backend. Workers only talk to the backend
and post the messages below; this screen owns every piece of UI state:

- the list is one run of `list-staging-environments` (newest first); it reloads with ctrl+r and
  when a clone or delete run reaches a terminal state (debounced, and only while this screen is
  shown; the list flow's own runs never trigger a reload);
- `c` opens the clone form and `d`/ctrl+d the typed-name confirmation; the run they start is
  followed in the progress panel (task runs, states, live log lines) and `o` (or enter on the
  log) opens it in the ordinary execution screen.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Footer, Input, Static

from flowdeck.client.staging import (
    CLONE_FLOW,
    DELETE_FLOW,
    NAMESPACE,
    Environment,
    StagingClient,
    StagingFailed,
)
from flowdeck.core.errors import BackendUnavailable, FlowdeckError
from flowdeck.core.models import Approval, Execution, LogEntry
from flowdeck.core.sanitize import sanitize_line
from flowdeck.core.states import is_terminal
from flowdeck.tui.ages import age_text
from flowdeck.tui.commands import bindings_for
from flowdeck.tui.format import safe_text, short_id
from flowdeck.tui.messages import ConnectionLost, LogBatch
from flowdeck.tui.screens.base import ListScreen
from flowdeck.tui.screens.execution import ExecutionScreen
from flowdeck.tui.theme import rich_style, state_variable
from flowdeck.tui.widgets.list_source import ListSource
from flowdeck.tui.widgets.log_view import LogView
from flowdeck.tui.widgets.staging_forms import CloneFormScreen, CloneParams, TypedNameConfirm
from flowdeck.tui.widgets.status import StatusBar
from flowdeck.tui.widgets.table import Column, VirtualTable

COLUMNS = [Column("name", "NAME"), Column("client", "CLIENT", 12),
           Column("source", "SOURCE", 10), Column("url", "URL"),
           Column("age", "AGE", 4, "right"), Column("status", "STATUS", 8)]
#: Live changes within this many seconds reload the list once.
RELOAD_DEBOUNCE = 0.3
#: How many log lines the progress panel keeps.
PANEL_LOG_LINES = 2_000
STATUS_VARIABLES = {"active": "success", "ready": "success", "creating": "warning",
                    "deleting": "warning", "failed": "error", "error": "error"}


# ---- messages (posted by the workers) ----------------------------------------------------


@dataclass
class EnvironmentsLoaded(Message):
    environments: list[Environment]


@dataclass
class EnvironmentsFailed(Message):
    """The list run could not be started or did not succeed."""

    text: str


@dataclass
class OperationStarted(Message):
    token: int
    execution: Execution


@dataclass
class OperationUpdate(Message):
    token: int
    execution: Execution


@dataclass
class OperationFinished(Message):
    token: int
    response: dict[str, Any] | None = None
    reason: str | None = None


# ---- UI state ----------------------------------------------------------------------------


@dataclass
class Operation:
    """A clone or delete the deck started, as the progress panel shows it."""

    token: int
    kind: str  # "clone" | "delete"
    target: str  # the environment name (delete) or what the clone asked for
    execution: Execution | None = None
    response: dict[str, Any] | None = None
    reason: str | None = None
    finished: bool = False

    @property
    def execution_id(self) -> str | None:
        return self.execution.id if self.execution is not None else None


class RunLog(LogView):
    """The progress panel's log: enter opens the run in the execution screen."""

    BINDINGS = [Binding("enter", "screen.open_run", "Open run", show=False)]


class StagingScreen(ListScreen):
    SCOPE = "staging"
    AUTO_FOCUS = ""  # the table, from on_mount
    BINDINGS = bindings_for("staging")

    def __init__(self) -> None:
        super().__init__()
        self.source = ListSource()
        self.environments: list[Environment] = []
        self.filter_text = ""
        self.loading = False
        self.loaded = False
        self.problem: str | None = None
        self.operation: Operation | None = None
        self._tokens = 0
        self._staging: StagingClient | None = None
        self._reload_timer: Timer | None = None
        self.reload_pending = False  # a debounced reload is waiting for its timer
        self._reload_for: set[str] = set()  # clone/delete runs that already reloaded
        self._dirty = False  # a change arrived while another screen was shown

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield Static(id="title")
        yield Static(id="message")
        yield VirtualTable(COLUMNS, self.source, id="table")
        yield Static(id="detail")
        with Vertical(id="operation"):
            yield Static(id="op-head")
            yield Static(id="op-tasks")
            yield RunLog(max_lines=PANEL_LOG_LINES, id="op-log")
        yield Input(placeholder="filter environments", id="filter")
        yield Footer()

    @property
    def run_log(self) -> RunLog:
        return self.query_one("#op-log", RunLog)

    def on_mount(self) -> None:
        self.table.focus()
        self.rebuild()
        self.render_operation()
        self.reload(shown=True)
        self.set_interval(5.0, self.tick)

    def on_screen_resume(self) -> None:
        if self._dirty:
            self._dirty = False
            self.reload()

    def tick(self) -> None:
        if self.environments and self.app.screen is self:
            self.rebuild()  # the ages

    def is_stale(self) -> bool:
        # The list is reloaded on every change the deck sees (no polling: each load is a
        # run); it is stale when the backend is gone or the last load failed.
        stale = self.deck.connection != "connected" or (self.loaded and self.problem is not None)
        self.set_class(stale, "-stale")
        return stale

    def reset_for_backend(self) -> None:
        """Another backend (`:profile`): forget the rows and the run; the reload refills."""
        for group in ("load", "operation", "op-logs"):
            self.workers.cancel_group(self, group)
        if self._reload_timer is not None:
            self._reload_timer.stop()
        self.environments = []
        self.loading = self.loaded = self.reload_pending = self._dirty = False
        self.problem = None
        self.operation = None
        self._staging = None
        self._reload_for.clear()
        self.updated_at = None
        if self.query("#op-log"):
            self.run_log.clear()
        self.rebuild()
        self.render_operation()

    def staging_client(self) -> StagingClient:
        backend = self.deck.backend
        if self._staging is None or self._staging.backend is not backend:
            self._staging = StagingClient(backend, self.deck.capabilities)
        return self._staging

    # -- the list --------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A list run is in flight or about to start."""
        return self.loading or self.reload_pending

    def reload(self, *, shown: bool = False) -> None:
        """Run the list now if this screen is on show; otherwise when it is shown again
        (each load is an execution: nobody should pay for a list they are not looking at)."""
        self.reload_pending = False
        if self.deck.capabilities is None:
            return  # the app reloads every screen once connected
        if not (shown or self.is_current):
            self._dirty = True
            return
        self.loading = True
        self.rebuild()
        self.load(self.staging_client())

    @work(group="load", exclusive=True)
    async def load(self, staging: StagingClient) -> None:
        try:
            environments = await staging.list()
        except StagingFailed as exc:
            self.post_message(EnvironmentsFailed(f"cannot list environments: {exc.reason}"))
            return
        except BackendUnavailable as exc:
            self.post_message(ConnectionLost(str(exc)))
            self.post_message(EnvironmentsFailed(f"backend unavailable: {exc}"))
            return
        except FlowdeckError as exc:  # StagingUnavailable and the rest
            self.post_message(EnvironmentsFailed(str(exc)))
            return
        except TimeoutError:
            self.post_message(EnvironmentsFailed("the list run did not finish in time"))
            return
        self.post_message(EnvironmentsLoaded(environments))

    def on_environments_loaded(self, message: EnvironmentsLoaded) -> None:
        message.stop()
        self.environments = list(message.environments)
        self.loading = False
        self.loaded = True
        self.problem = None
        self.stamp()
        self.deck.mark_connected()
        self.rebuild()

    def on_environments_failed(self, message: EnvironmentsFailed) -> None:
        message.stop()
        self.loading = False
        self.loaded = True
        self.problem = message.text
        self.rebuild()
        self.deck.toast(message.text, severity="error")

    def on_live_event(self, item: Execution | Approval) -> None:
        """A clone or delete run ended (ours or anyone's): reload the list, once."""
        if not isinstance(item, Execution) or item.namespace != NAMESPACE:
            return  # (the panel's run is followed by its own worker, not from here)
        if item.flow_id not in (CLONE_FLOW, DELETE_FLOW):
            return  # never the list flow's own runs: a reload must not cause a reload
        if is_terminal(item.state.current):
            self.schedule_reload(item.id)

    def apply_filter(self) -> None:
        self.rebuild()

    def schedule_reload(self, execution_id: str) -> None:
        if execution_id in self._reload_for:
            return
        self._reload_for.add(execution_id)
        if not self.is_current:
            self._dirty = True
            return
        if self._reload_timer is not None:
            self._reload_timer.stop()
        self.reload_pending = True
        self._reload_timer = self.set_timer(RELOAD_DEBOUNCE, self.reload)

    def shown_environments(self) -> list[Environment]:
        if not self.filter_text:
            return self.environments
        needle = self.filter_text.lower()
        return [e for e in self.environments if needle in " ".join(
            v or "" for v in (e.name, e.client_name, e.source_environment, e.url, e.status,
                              e.id)).lower()]

    def rebuild(self) -> None:
        if not self.query("#table"):
            return
        app = self.deck
        now = app.clock.now()
        rows: list[tuple[str, list[Text]]] = []
        for env in self.shown_environments():
            status = env.status or "-"
            variable = STATUS_VARIABLES.get(status.lower())
            rows.append((env.name, [
                safe_text(env.name, 120), safe_text(env.client_name or "-", 60),
                safe_text(env.source_environment or "-", 60), safe_text(env.url or "-", 300),
                Text(age_text(env.created_at, now), end=""),
                safe_text(status, 20, rich_style(app, variable) if variable else None)]))
        self.source.set_rows(rows)
        self.table.reset()
        title = f"Staging environments ({len(rows)}, newest first)"
        if self.filter_text:
            title += f"  │  filter: {sanitize_line(self.filter_text, 40)}"
        self.query_one("#title", Static).update(Content(title))
        self.render_message(len(rows))
        self.render_detail()

    def render_message(self, shown: int) -> None:
        box = self.query_one("#message", Static)
        text = Text(end="")
        if self.loading:
            text.append("loading… (running dev.deployment/list-staging-environments)",
                        style=rich_style(self.app, "text-muted"))
        if self.problem is not None:
            if text:
                text.append("  ")
            text.append("✕ " + sanitize_line(self.problem, 500), style=rich_style(
                self.app, "error"))
        if not text and self.loaded and shown == 0:
            if self.environments:
                text.append("No environment matches the filter (esc clears it).")
            else:
                hint = "" if self.deck.read_only else " Press c to clone one."
                text.append(f"No staging environments yet.{hint}")
        box.update(text)
        box.set_class(bool(text), "-shown")

    def current(self) -> Environment | None:
        key = self.table.current_key()
        if key is None:
            return None
        return next((e for e in self.environments if e.name == key), None)

    def on_virtual_table_cursor_moved(self, message: VirtualTable.CursorMoved) -> None:
        if message.table.id == "table":
            self.render_detail()

    def render_detail(self) -> None:
        box = self.query_one("#detail", Static)
        env = self.current()
        if env is None:
            box.update("")
            box.remove_class("-shown")
            return
        text = Text(end="", no_wrap=True, overflow="ellipsis")
        text.append(sanitize_line(env.name, 120), style="bold")
        text.append("  " + sanitize_line(env.url or "(no URL)", 300))
        text.append(f"  created {sanitize_line(env.created_at or '?', 40)}"
                    f"  id {sanitize_line(env.id or '?', 60)}")
        box.update(text)
        box.add_class("-shown")

    def handle_back(self) -> bool:
        if self.close_filter():
            return True
        if self.operation is not None and self.operation.finished:
            self.operation = None  # esc dismisses a finished run's panel
            self.render_operation()
            self.table.focus()
            return True
        return False

    def action_reload(self) -> None:
        self.reload()

    # -- clone and delete ------------------------------------------------------------------

    def action_clone_environment(self) -> None:
        if self.deck.read_only:
            return

        def submitted(params: CloneParams | None) -> None:
            if params is not None:
                self.start_clone(params)

        self.app.push_screen(CloneFormScreen(), submitted)

    def action_delete_environment(self) -> None:
        if self.deck.read_only:
            return
        env = self.current()
        if env is None:
            self.deck.toast("no environment selected", severity="warning")
            return
        name = env.name  # exactly the row's name: the engine's guard decides

        def answered(yes: bool | None) -> None:
            if yes:
                self.start_delete(name)

        self.app.push_screen(TypedNameConfirm(name), answered)

    def start_clone(self, params: CloneParams) -> Operation | None:
        target = params.environment_name or f"client {params.client_name}"
        op = self._begin("clone", target)
        if op is not None:
            self.run_operation(self.staging_client(), op.token, "clone", params, "")
        return op

    def start_delete(self, name: str) -> Operation | None:
        """Start the delete run for `name` exactly as given (no check here: the engine's)."""
        op = self._begin("delete", name)
        if op is not None:
            self.run_operation(self.staging_client(), op.token, "delete", None, name)
        return op

    def _begin(self, kind: str, target: str) -> Operation | None:
        if self.deck.read_only:
            return None
        if self.deck.capabilities is None:
            self.deck.toast("not connected yet", severity="warning")
            return None
        self._tokens += 1
        self.operation = Operation(self._tokens, kind, target)
        self.workers.cancel_group(self, "op-logs")
        self.run_log.clear()
        self.render_operation()
        return self.operation

    @work(group="operation")
    async def run_operation(self, staging: StagingClient, token: int, kind: str,
                            params: CloneParams | None, name: str) -> None:
        """Start the run, post each snapshot until it is terminal, then its outcome."""
        post = self.post_message
        backend = staging.backend
        try:
            if params is not None:
                started = await staging.start_clone(
                    params.client_name, environment_name=params.environment_name,
                    source_environment=params.source_environment,
                    skip_database=params.skip_database)
            else:
                started = await staging.start_delete(name)
            post(OperationStarted(token, started))
            final = started
            async for snapshot in backend.follow_execution(started.id):
                final = snapshot
                post(OperationUpdate(token, snapshot))
            if not is_terminal(final.state.current):
                final = await backend.get_execution(started.id)
                post(OperationUpdate(token, final))
            response = await staging.outcome(final)
        except StagingFailed as exc:
            post(OperationFinished(token, reason=exc.reason))
        except BackendUnavailable as exc:
            post(ConnectionLost(str(exc)))
            post(OperationFinished(token, reason=f"backend unavailable: {exc}"))
        except FlowdeckError as exc:  # StagingUnavailable, a refused input, ...
            post(OperationFinished(token, reason=str(exc)))
        else:
            post(OperationFinished(token, response=response))

    @work(group="op-logs", exclusive=True)
    async def follow_operation_logs(self, execution_id: str) -> None:
        backend = self.deck.backend
        buffer: list[LogEntry] = []

        async def pump() -> None:
            async for entry in backend.follow_logs(execution_id):
                buffer.append(entry)

        reader = asyncio.create_task(pump())
        try:
            while not reader.done() or buffer:
                await asyncio.sleep(0.05)
                if buffer:
                    batch = buffer[:]
                    buffer.clear()
                    self.post_message(LogBatch(execution_id, batch))
            reader.result()
        except FlowdeckError:
            return  # the run's own screen (o) has the full log and its errors
        finally:
            reader.cancel()

    @work(group="op-logs", exclusive=True)
    async def last_operation_logs(self, execution_id: str, after_seq: int) -> None:
        """The run is over: stop following (this replaces the follower) and read whatever
        the follower had not delivered yet (the view drops lines it already has)."""
        try:
            entries = await self.deck.backend.logs(execution_id, after_seq=after_seq)
        except FlowdeckError:
            return
        if entries:
            self.post_message(LogBatch(execution_id, entries))

    def _operation(self, token: int) -> Operation | None:
        op = self.operation
        return op if op is not None and op.token == token else None

    def on_operation_started(self, message: OperationStarted) -> None:
        message.stop()
        op = self._operation(message.token)
        if op is None:
            return
        op.execution = message.execution
        self.follow_operation_logs(message.execution.id)
        self.render_operation()

    def on_operation_update(self, message: OperationUpdate) -> None:
        message.stop()
        op = self._operation(message.token)
        if op is None or op.finished:
            return
        op.execution = message.execution
        if op.kind == "clone":
            planned = self._planned_name(message.execution)
            if planned:
                op.target = planned
        self.render_operation()

    def on_operation_finished(self, message: OperationFinished) -> None:
        message.stop()
        op = self._operation(message.token)
        if op is None:
            what = message.response or {}
            self.deck.toast(f"an earlier staging run ended: "
                            f"{message.reason or what.get('environment_name') or 'done'}",
                            severity="error" if message.reason else "information")
            return
        op.finished = True
        op.response = message.response
        op.reason = message.reason
        response = message.response or {}
        if message.reason is not None:
            verb = "clone" if op.kind == "clone" else "delete"
            self.deck.toast(f"{verb} failed: {message.reason}", severity="error",
                            title="Staging")
        elif op.kind == "clone":
            name = str(response.get("environment_name") or op.target)
            op.target = name
            self.deck.toast(f"{name} is ready at {response.get('staging_url') or '?'}",
                            title="Staging")
        else:
            self.deck.toast(f"deleted {response.get('environment_name') or op.target}",
                            title="Staging")
        if op.execution_id is not None:
            self.last_operation_logs(op.execution_id, self.run_log.last_seq)
            self.schedule_reload(op.execution_id)  # if the live stream has not already
        self.render_operation()

    def on_log_batch(self, message: LogBatch) -> None:
        message.stop()
        op = self.operation
        if op is not None and op.execution_id == message.execution_id:
            self.run_log.add_entries(message.entries)

    @staticmethod
    def _planned_name(execution: Execution) -> str | None:
        for task_run in execution.task_runs:
            if task_run.task_id == "validate-inputs" and task_run.outputs:
                name = task_run.outputs.get("environment_name")
                if isinstance(name, str) and name:
                    return name
        return None

    def render_operation(self) -> None:
        if not self.query("#operation"):
            return
        panel = self.query_one("#operation", Vertical)
        op = self.operation
        panel.set_class(op is not None, "-shown")
        self.refresh_bindings()
        if op is None:
            if self.run_log.has_focus:
                self.table.focus()
            return
        app = self.deck
        head = Text(end="")
        head.append("Clone " if op.kind == "clone" else "Delete ", style="bold")
        head.append(sanitize_line(op.target, 120), style="bold")
        ex = op.execution
        if ex is not None:
            head.append("  ")
            head.append(ex.state.current, style=rich_style(app, state_variable(
                ex.state.current), bold=True))
            head.append(f"  run {short_id(ex.id)}  (o: open run)")
        else:
            head.append("  starting…")
        if op.finished and op.reason is not None:
            head.append("\n✕ " + sanitize_line(op.reason, 500), style=rich_style(app, "error"))
        elif op.finished and op.kind == "clone":
            url = (op.response or {}).get("staging_url")
            head.append("\n✓ ready at ", style=rich_style(app, "success"))
            head.append(sanitize_line(str(url or "?"), 300), style=rich_style(app, "success",
                                                                               bold=True))
        elif op.finished:
            head.append("\n✓ " + sanitize_line(str((op.response or {}).get(
                "message") or "deleted"), 200), style=rich_style(app, "success"))
        self.query_one("#op-head", Static).update(head)
        tasks = Text(end="")
        if ex is None or not ex.task_runs:
            tasks.append("waiting for the engine…" if not op.finished else "no task ran",
                         style=rich_style(app, "text-muted"))
        else:
            for i, tr in enumerate(ex.task_runs):
                if i:
                    tasks.append("   ")
                tasks.append(sanitize_line(tr.task_id, 40) + " ")
                tasks.append(tr.state.current, style=rich_style(app, state_variable(
                    tr.state.current)))
        self.query_one("#op-tasks", Static).update(tasks)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        allowed = super().check_action(action, parameters)
        if allowed and action == "open_run" and (
                self.operation is None or self.operation.execution_id is None):
            return None  # shown greyed until there is a run
        return allowed

    def action_open_run(self) -> None:
        op = self.operation
        if op is not None and op.execution_id is not None:
            self.app.push_screen(ExecutionScreen(op.execution_id))
