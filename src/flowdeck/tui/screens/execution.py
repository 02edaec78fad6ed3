"""One execution: task-run tree with a Gantt strip of attempts, inputs/outputs, live logs."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Footer, Input, Static

from flowdeck.core.errors import BackendUnavailable, FlowdeckError
from flowdeck.core.models import Approval, Execution, LogEntry, TaskRun
from flowdeck.core.sanitize import sanitize, sanitize_line
from flowdeck.core.states import RESTARTABLE_STATES, is_terminal
from flowdeck.tui.commands import bindings_for
from flowdeck.tui.format import (
    duration_text,
    execution_seconds,
    finished_at,
    local_time,
    progress_text,
    short_id,
    state_seconds,
)
from flowdeck.tui.messages import (
    ActionDone,
    ActionFailed,
    ConnectionLost,
    ExecutionLoaded,
    FlowLoaded,
    LogBatch,
)
from flowdeck.tui.screens.base import DeckScreen
from flowdeck.tui.screens.executions import execution_line
from flowdeck.tui.theme import rich_style, state_variable
from flowdeck.tui.widgets.confirm import ConfirmScreen
from flowdeck.tui.widgets.log_view import LogView
from flowdeck.tui.widgets.status import StatusBar

GANTT_WIDTH = 24


def text_shape(widget: Static, text: Text) -> int | None:
    """The height `text` takes in the `height: auto` `widget`, when it is its number of
    lines (no line is wider than the widget); None when a line wraps (the height then
    depends on the words) or the widget is not laid out yet."""
    lines = text.plain.split("\n")
    width = widget.content_region.width
    return None if any(cell_len(line) > width for line in lines) else len(lines)


def task_depths(runs: list[TaskRun]) -> list[tuple[int, TaskRun]]:
    """Task runs in tree order (children under their parent), with their depth."""
    children: dict[str | None, list[TaskRun]] = {}
    ids = {tr.id for tr in runs}
    for tr in runs:
        parent = tr.parent_task_run_id if tr.parent_task_run_id in ids else None
        children.setdefault(parent, []).append(tr)
    out: list[tuple[int, TaskRun]] = []

    def walk(parent: str | None, depth: int) -> None:
        for tr in children.get(parent, []):
            out.append((depth, tr))
            walk(tr.id, depth + 1)

    walk(None, 0)
    return out


def gantt(app: Any, tr: TaskRun, start: datetime, span: float, now: datetime,
          width: int = GANTT_WIDTH) -> Text:
    """A strip `width` cells wide: each attempt is a bar placed on the execution's timeline."""
    cells = [" "] * width
    styles: list[Any] = [None] * width
    attempts = tr.attempts or []
    for n, attempt in enumerate(attempts):
        a_start = attempt.state.start_date
        a_end = finished_at(attempt.state) or finished_at(tr.state) or now
        lo = int((a_start - start).total_seconds() / span * width) if span > 0 else 0
        hi = int((a_end - start).total_seconds() / span * width) if span > 0 else width
        lo = max(0, min(width - 1, lo))
        hi = max(lo + 1, min(width, hi))
        style = rich_style(app, state_variable(attempt.state.current))
        for i in range(lo, hi):
            cells[i] = "█" if n % 2 == 0 else "▓"
            styles[i] = style
    text = Text("▕", end="")
    for ch, st in zip(cells, styles, strict=True):
        text.append(ch if st else "·", style=st or rich_style(app, "stale", dim=True))
    text.append("▏")
    return text


class ExecutionScreen(DeckScreen):
    SCOPE = "execution"
    AUTO_FOCUS = ""  # the log pane, from on_mount
    BINDINGS = bindings_for("execution")
    DEFAULT_CSS = """
    ExecutionScreen #summary { height: auto; background: $boost; padding: 0 1; }
    ExecutionScreen #top { height: 40%; min-height: 5; border-bottom: solid $panel; }
    ExecutionScreen #io { display: none; }
    ExecutionScreen.-io #io { display: block; }
    ExecutionScreen.-io #tasks { display: none; }
    ExecutionScreen #logbar { height: 1; background: $panel; padding: 0 1; }
    ExecutionScreen LogView { height: 1fr; }
    ExecutionScreen #search { dock: bottom; display: none; }
    ExecutionScreen #search.-shown { display: block; }
    ExecutionScreen.-stale #top { opacity: 60%; }
    """

    def __init__(self, execution_id: str) -> None:
        super().__init__()
        self.execution_id = execution_id
        self.execution: Execution | None = None
        self.search_text = ""
        #: Tasks the flow declares ("n done / m in flow"); 0 until the flow is read.
        self.flow_tasks = 0
        self._shapes: dict[str, int | None] = {}  # what `update_text` last laid out

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield Static(Content(f"Execution {self.execution_id} — loading"), id="summary")
        with VerticalScroll(id="top"):
            yield Static(id="tasks")
            yield Static(id="io")
        yield Static(id="logbar")
        yield LogView(max_lines=self.deck.max_log_lines, id="log")
        yield Input(placeholder="search the logs (enter: find, n/N: next/previous)",
                    id="search")
        yield Footer()

    @property
    def log_view(self) -> LogView:
        return self.query_one("#log", LogView)

    def on_mount(self) -> None:
        self.log_view.focus()
        self.update_logbar()
        self.follow_execution()
        self.follow_logs()
        self.set_interval(1.0, self.tick)

    def reload(self) -> None:
        self.follow_execution()
        self.follow_logs()

    @work(group="flow", exclusive=True)
    async def load_flow(self, namespace: str, flow_id: str) -> None:
        try:
            flow = await self.deck.backend.get_flow(namespace, flow_id)
        except FlowdeckError:
            return  # the count then says the tasks that have run
        self.post_message(FlowLoaded(flow))

    def on_flow_loaded(self, message: FlowLoaded) -> None:
        message.stop()
        self.flow_tasks = message.flow.task_count
        self.render_execution()

    # -- workers ------------------------------------------------------------------------

    @work(group="follow", exclusive=True)
    async def follow_execution(self) -> None:
        backend = self.deck.backend
        delay = 0.5
        while True:
            try:
                self.post_message(ExecutionLoaded(await backend.get_execution(self.execution_id)))
                async for snapshot in backend.follow_execution(self.execution_id):
                    self.post_message(ExecutionLoaded(snapshot))
                return  # terminal: nothing changes any more (restart re-follows)
            except BackendUnavailable as exc:
                self.post_message(ConnectionLost(str(exc)))
            except FlowdeckError as exc:
                self.post_message(ActionFailed(f"execution {short_id(self.execution_id)}: "
                                               f"{exc}"))
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)

    @work(group="logs", exclusive=True)
    async def follow_logs(self) -> None:
        backend = self.deck.backend
        buffer: list[LogEntry] = []
        last_seq = self.log_view.last_seq
        delay = 0.5

        async def pump() -> None:
            async for entry in backend.follow_logs(self.execution_id, after_seq=last_seq):
                buffer.append(entry)

        while True:
            reader = asyncio.create_task(pump())
            try:
                while not reader.done():
                    await asyncio.sleep(0.05)
                    if buffer:
                        batch = buffer[:]
                        buffer.clear()
                        last_seq = max(last_seq, batch[-1].seq)
                        self.post_message(LogBatch(self.execution_id, batch))
                reader.result()
                return
            except BackendUnavailable as exc:
                self.post_message(ConnectionLost(str(exc)))
            except FlowdeckError as exc:
                self.post_message(ActionFailed(f"logs: {exc}"))
                return
            finally:
                reader.cancel()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)

    # -- handlers -----------------------------------------------------------------------

    def on_execution_loaded(self, message: ExecutionLoaded) -> None:
        if message.execution.id != self.execution_id:
            return
        if self.execution is None:
            self.load_flow(message.execution.namespace, message.execution.flow_id)
        self.execution = message.execution
        self.stamp()
        self.deck.mark_connected()
        self.render_execution()

    def on_log_batch(self, message: LogBatch) -> None:
        if message.execution_id == self.execution_id:
            self.log_view.add_entries(message.entries)
            self.stamp()

    def on_live_event(self, item: Execution | Approval) -> None:
        if isinstance(item, Execution) and item.id == self.execution_id:
            self.execution = item
            self.render_execution()

    def tick(self) -> None:
        if self.execution is not None and not is_terminal(self.execution.state.current):
            self.render_execution()

    def render_execution(self) -> None:
        ex = self.execution
        if ex is None or not self.query("#summary"):
            return  # a live event before this screen is composed
        app = self.deck
        now = app.clock.now()
        summary = Text(end="")
        summary.append(sanitize_line(f"{ex.namespace}.{ex.flow_id}", 120), style="bold")
        summary.append(f"  {ex.id}  ")
        summary.append(ex.state.current, style=rich_style(app, state_variable(ex.state.current),
                                                          bold=True))
        summary.append(f"\nstarted {local_time(ex.state.start_date)}"
                       f"  duration {duration_text(execution_seconds(ex, now))}"
                       f"  tasks {progress_text(ex, self.flow_tasks)}")
        if ex.labels:
            labels = " ".join(f"{k}={v}" for k, v in ex.labels if not k.startswith("system."))
            if labels:
                summary.append("\n" + sanitize_line(labels, 300), style=rich_style(
                    app, "secondary"))
        self.update_text("summary", summary)

        self.update_text("tasks", self.task_lines(ex, now))

        io = Text(end="")
        io.append("Inputs\n", style="bold")
        io.append(sanitize(json.dumps(ex.inputs or {}, indent=2, ensure_ascii=False,
                                      default=str)) + "\n")
        io.append("Outputs\n", style="bold")
        outputs: dict[str, Any] = dict(ex.outputs or {})
        for tr in ex.task_runs:
            if tr.outputs:
                outputs.setdefault(tr.task_id + (f"[{tr.value}]" if tr.value else ""),
                                   tr.outputs)
        io.append(sanitize(json.dumps(outputs, indent=2, ensure_ascii=False, default=str)))
        self.update_text("io", io)

    def task_lines(self, ex: Execution, now: datetime) -> Text:
        """The task-run tree: one line per task run (indented under its parent) with its
        state, attempts, a Gantt strip on the execution's timeline and its duration."""
        lines = Text(end="")
        for depth, tr in task_depths(ex.task_runs):
            lines.append_text(self.task_line(ex, tr, depth, now))
        if not ex.task_runs:
            lines.append("no task runs yet")
        return lines

    def task_line(self, ex: Execution, tr: TaskRun, depth: int, now: datetime,
                  prefix: str = "") -> Text:
        app = self.deck
        start = ex.state.start_date
        span = max(0.001, execution_seconds(ex, now))
        width = max(20, self.size.width - GANTT_WIDTH - 34)
        line = Text(end="")
        name = "  " * depth + prefix + tr.task_id + (f"[{tr.value}]" if tr.value else "")
        label = sanitize_line(name, 200)
        label = label if len(label) <= width else label[: width - 1] + "…"
        line.append(label.ljust(width) + " ")
        line.append(tr.state.current.ljust(10), style=rich_style(
            app, state_variable(tr.state.current)))
        attempts = len(tr.attempts)
        line.append(f" {attempts:>2}x " if attempts else "     ")
        line.append_text(gantt(app, tr, start, span, now))
        line.append(f" {duration_text(state_seconds(tr.state, now))}\n")
        return line

    def update_text(self, widget_id: str, text: Text) -> None:
        """`Static.update` that re-lays out the screen only when the pane's height may
        change. The summary, task tree and io panes are `height: auto`, and the tick
        rewrites them every second with the same shape (durations, bars): a layout of the
        whole screen each time would compete with keys and the log pane for nothing."""
        widget = self.query_one(f"#{widget_id}", Static)
        if not widget.display:  # hidden (the io pane): showing it lays the screen out
            self._shapes[widget_id] = None
            widget.update(text, layout=False)
            return
        shape = text_shape(widget, text)
        same = shape is not None and shape == self._shapes.get(widget_id)
        self._shapes[widget_id] = shape
        widget.update(text, layout=not same)

    def update_logbar(self) -> None:
        log = self.log_view
        parts = [("FOLLOW" if log.follow else "paused (End: follow)"),
                 f"wrap {'on' if log.wrap else 'off'}",
                 f"time {'on' if log.timestamps else 'off'}", f"level ≥ {log.min_level}"]
        if self.search_text:
            parts.append(f"search: {sanitize_line(self.search_text, 40)}")
        if log.dropped:
            parts.append(f"{log.dropped} older lines dropped")
        # one line high whatever it says (CSS): repaint it, never re-lay out the screen
        self.query_one("#logbar", Static).update(Content("  │  ".join(parts)), layout=False)

    @on(LogView.FollowChanged)
    def follow_changed(self) -> None:
        self.update_logbar()

    # -- actions: the log pane ------------------------------------------------------------

    def action_toggle_io(self) -> None:
        self.toggle_class("-io")

    def action_log_follow(self) -> None:
        self.log_view.follow = not self.log_view.follow
        self.update_logbar()

    def action_log_wrap(self) -> None:
        self.log_view.wrap = not self.log_view.wrap
        self.update_logbar()

    def action_log_timestamps(self) -> None:
        self.log_view.timestamps = not self.log_view.timestamps
        self.update_logbar()

    def action_log_level(self) -> None:
        self.log_view.cycle_level()
        self.update_logbar()

    def action_log_search(self) -> None:
        box = self.query_one("#search", Input)
        box.add_class("-shown")
        self.focus_input(box)

    @on(Input.Submitted, "#search")
    def search_submitted(self, event: Input.Submitted) -> None:
        self.search_text = event.value.strip()
        self.query_one("#search", Input).remove_class("-shown")
        self.log_view.focus()
        if self.search_text and not self.log_view.search(self.search_text):
            self.deck.toast(f"no line matches {self.search_text!r}", severity="warning")
        self.update_logbar()

    def action_log_next(self) -> None:
        if self.search_text:
            self.log_view.search(self.search_text, forward=True)

    def action_log_prev(self) -> None:
        if self.search_text:
            self.log_view.search(self.search_text, forward=False)

    def action_log_next_error(self) -> None:
        if not self.log_view.next_error():
            self.deck.toast("no error lines", severity="information")
        self.update_logbar()

    def action_log_copy(self) -> None:
        text = self.log_view.current_text()
        if text is None:
            return
        self.app.copy_to_clipboard(sanitize_line(text))  # OSC 52; sanitized text only
        self.deck.toast("copied one line")

    def action_log_save(self) -> None:
        path = self.deck.save_dir / f"flowdeck-{self.execution_id}.log"
        self.save_log(path, self.log_view.export_text())

    @work(thread=True, group="save")
    def save_log(self, path: Path, text: str) -> None:
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            self.post_message(ActionFailed(f"cannot save {path}: {exc.strerror or exc}"))
            return
        self.post_message(ActionDone(f"saved {path}", refresh=False))

    def handle_back(self) -> bool:
        box = self.query_one("#search", Input)
        if box.has_class("-shown"):
            box.remove_class("-shown")
            self.log_view.focus()
            return True
        return False

    # -- actions: the execution -----------------------------------------------------------

    def confirm_then(self, verb: str, body: str) -> None:
        """Ask (naming the execution; Cancel focused) unless `[deck] confirm` is off."""
        if not self.deck.confirm:
            self.act(verb)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.act(verb)

        named = execution_line(self.execution, self.execution_id)
        self.app.push_screen(ConfirmScreen(f"{verb.capitalize()} 1 execution?",
                                           f"{named}\n\n{body}", confirm=verb.capitalize()),
                             answered)

    def action_kill(self) -> None:
        self.confirm_then("kill", "Running tasks are stopped; this cannot be undone.")

    def action_restart(self) -> None:
        if self.execution and self.execution.state.current not in RESTARTABLE_STATES:
            self.deck.toast(f"a {self.execution.state.current} execution cannot be restarted",
                            severity="warning")
            return
        self.confirm_then("restart", "It runs again from its failed task, in the same "
                          "execution.")

    def action_replay(self) -> None:
        self.confirm_then("replay", "It runs again from the start, as a new execution with "
                          "the same inputs.")

    @work(group="actions")
    async def act(self, verb: str) -> None:
        backend = self.deck.backend
        try:
            if verb == "kill":
                await backend.kill(self.execution_id)
                self.post_message(ActionDone(f"killing {short_id(self.execution_id)}"))
            elif verb == "restart":
                await backend.restart(self.execution_id)
                self.post_message(ActionDone(f"restarted {short_id(self.execution_id)}"))
            else:
                new = await backend.replay(self.execution_id)
                self.post_message(ActionDone(f"replayed as {short_id(new.id)}"))
        except FlowdeckError as exc:
            self.post_message(ActionFailed(f"{verb}: {exc}"))

    def on_action_done(self, message: ActionDone) -> None:
        self.deck.toast(message.text)
        if message.refresh:
            self.follow_execution()
            self.follow_logs()
