"""Flows: list with triggers, last state and a recent-runs sparkline; detail with the YAML
source highlighted; run with a form built from the flow's declared inputs."""

from __future__ import annotations

from typing import Any

from rich.syntax import Syntax
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Footer, Input, Label, Static

from flowdeck.client.backend import ExecutionFilter, FlowInfo
from flowdeck.core.errors import BackendUnavailable, FlowdeckError, ValidationError
from flowdeck.core.models import Approval, Execution
from flowdeck.core.sanitize import sanitize, sanitize_line
from flowdeck.tui.commands import bindings_for
from flowdeck.tui.format import execution_seconds, safe_text, short_id
from flowdeck.tui.messages import ActionDone, ActionFailed, ConnectionLost, FlowLoaded, FlowsLoaded
from flowdeck.tui.screens.base import DeckScreen, ListScreen
from flowdeck.tui.theme import rich_style, state_variable
from flowdeck.tui.widgets.confirm import scoped_modal_css
from flowdeck.tui.widgets.list_source import ListSource
from flowdeck.tui.widgets.status import StatusBar
from flowdeck.tui.widgets.table import Column, VirtualTable

RECENT = 10
BARS = "▁▂▃▄▅▆▇█"
COLUMNS = [Column("namespace", "NAMESPACE", 18), Column("id", "FLOW", min_width=16),
           Column("triggers", "TRIGGERS", 14), Column("last", "LAST", 9),
           Column("recent", "RECENT", RECENT)]


def trigger_text(flow: FlowInfo) -> str:
    names = []
    for trigger in flow.triggers:
        kind = str(trigger.get("type", "")).rsplit(".", 1)[-1]
        names.append(f"{kind.lower()}" if kind else str(trigger.get("id", "?")))
    return ",".join(names) or "-"


def sparkline(app: Any, runs: list[Execution]) -> Text:
    """Oldest to newest: bar height is the run's duration, colour its state."""
    text = Text(end="")
    if not runs:
        return Text("-", end="")
    ordered = list(reversed(runs))
    now = app.clock.now()
    seconds = [max(0.0, execution_seconds(ex, now)) for ex in ordered]
    top = max(seconds) or 1.0
    for ex, s in zip(ordered, seconds, strict=True):
        bar = BARS[min(len(BARS) - 1, int(s / top * (len(BARS) - 1)))]
        text.append(bar, style=rich_style(app, state_variable(ex.state.current)))
    return text


def input_required(spec: dict[str, Any]) -> bool:
    """Whether the run form must be given a value: declared required and with no default
    (Kestra documents say `required: true` even where a default fills the value)."""
    return bool(spec.get("required", True)) and spec.get("defaults") is None


class FlowsScreen(ListScreen):
    SCOPE = "flows"
    AUTO_FOCUS = ""  # the table, from on_mount
    BINDINGS = bindings_for("flows")
    DEFAULT_CSS = """
    FlowsScreen #title { height: 1; background: $boost; padding: 0 1; }
    FlowsScreen #filter { dock: bottom; display: none; }
    FlowsScreen #filter.-shown { display: block; }
    FlowsScreen.-stale VirtualTable { opacity: 60%; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.source = ListSource()
        self.flows: list[FlowInfo] = []
        self.recent: dict[tuple[str, str], list[Execution]] = {}
        self.filter_text = ""

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield Static(id="title")
        yield VirtualTable(COLUMNS, self.source, id="table")
        yield Input(placeholder="filter flows", id="filter")
        yield Footer()

    def on_mount(self) -> None:
        self.table.focus()
        self.rebuild()
        self.reload()
        self.set_interval(self.deck.refresh_seconds, self.poll)

    def poll(self) -> None:
        if self.app.screen is self:
            self.reload()

    def reset_for_backend(self) -> None:
        """Another backend (`:profile`): forget every row; the reload refills."""
        self.flows = []
        self.recent = {}
        self.updated_at = None
        self.rebuild()

    def reload(self) -> None:
        if self.deck.capabilities is None:
            return  # the app reloads every screen once connected
        self.load(self.deck.namespace)

    @work(group="load", exclusive=True)
    async def load(self, namespace: str | None) -> None:
        backend = self.deck.backend
        try:
            flows = await backend.list_flows(namespace)
            recent: dict[tuple[str, str], list[Execution]] = {}
            for flow in flows[:200]:
                page = await backend.search_executions(ExecutionFilter(
                    namespace=flow.namespace, flow_id=flow.id, size=RECENT))
                recent[(flow.namespace, flow.id)] = [
                    ex for ex in page.results if ex.namespace == flow.namespace]
        except BackendUnavailable as exc:
            self.post_message(ConnectionLost(str(exc)))
            return
        except FlowdeckError as exc:
            self.post_message(ActionFailed(f"cannot list flows: {exc}"))
            return
        self.post_message(FlowsLoaded(flows, recent))  # type: ignore[arg-type]

    def on_flows_loaded(self, message: FlowsLoaded) -> None:
        message.stop()
        self.flows = sorted(message.flows, key=lambda f: (f.namespace, f.id))
        self.recent = message.recent  # type: ignore[assignment]
        self.stamp()
        self.deck.mark_connected()
        self.rebuild()

    def on_live_event(self, item: Execution | Approval) -> None:
        if isinstance(item, Execution):
            runs = self.recent.get((item.namespace, item.flow_id))
            if runs is not None:
                for i, ex in enumerate(runs):
                    if ex.id == item.id:
                        runs[i] = item
                        break
                else:
                    runs.insert(0, item)
                    del runs[RECENT:]
                self.rebuild()

    def apply_filter(self) -> None:
        self.rebuild()

    def rebuild(self) -> None:
        if not self.query("#table"):
            return
        app = self.deck
        needle = self.filter_text.lower()
        rows = []
        for flow in self.flows:
            if needle and needle not in f"{flow.namespace}.{flow.id} {flow.description or ''}"\
                    .lower():
                continue
            runs = self.recent.get((flow.namespace, flow.id), [])
            last = runs[0].state.current if runs else "-"
            rows.append((f"{flow.namespace}\x00{flow.id}", [
                safe_text(flow.namespace, 100), safe_text(flow.id, 100),
                safe_text(trigger_text(flow), 60),
                safe_text(last, 20, rich_style(app, state_variable(last)) if runs else None),
                sparkline(app, runs)]))
        self.source.set_rows(rows)
        self.table.empty = self.empty_text()
        self.table.reset()
        title = f"Flows ({len(rows)})"
        if self.filter_text:
            title += f"  │  filter: {sanitize_line(self.filter_text, 40)}"
        self.query_one("#title", Static).update(Content(title))

    def empty_text(self) -> str:
        if self.updated_at is None:
            return "loading…"
        if self.filter_text:
            return "No flow matches the filter (esc clears it)."
        if self.deck.namespace:
            return f"No flows in {self.deck.namespace} (:ns alone shows every namespace)."
        return "No flows yet: `flowdeck flow apply FILE.yml` adds one (flowdeck --demo: examples)."

    def current(self) -> FlowInfo | None:
        key = self.table.current_key()
        if key is None:
            return None
        namespace, _, flow_id = key.partition("\x00")
        return next((f for f in self.flows if f.namespace == namespace and f.id == flow_id),
                    None)

    def handle_back(self) -> bool:
        return self.close_filter()

    def action_reload(self) -> None:
        self.reload()

    def action_open(self) -> None:
        flow = self.current()
        if flow is None:
            self.nothing_selected()
            return
        self.app.push_screen(FlowScreen(flow.namespace, flow.id))

    def action_run_flow(self) -> None:
        flow = self.current()
        if flow is None:
            self.nothing_selected()
            return
        start_run(self, flow)


def start_run(screen: DeckScreen, flow: FlowInfo) -> None:
    def submitted(execution_id: str | None) -> None:
        if execution_id:
            from flowdeck.tui.screens.execution import ExecutionScreen

            screen.app.push_screen(ExecutionScreen(execution_id))

    screen.app.push_screen(RunFormScreen(flow), submitted)


class FlowScreen(DeckScreen):
    SCOPE = "flow"
    BINDINGS = bindings_for("flow")
    DEFAULT_CSS = """
    FlowScreen #summary { height: auto; background: $boost; padding: 0 1; }
    FlowScreen VerticalScroll { height: 1fr; }
    """

    def __init__(self, namespace: str, flow_id: str) -> None:
        super().__init__()
        self.namespace = namespace
        self.flow_id = flow_id
        self.flow: FlowInfo | None = None

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield Static(Content(f"{self.namespace}.{self.flow_id}"), id="summary")
        with VerticalScroll():
            yield Static(id="source")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(group="load", exclusive=True)
    async def load(self) -> None:
        try:
            flow = await self.deck.backend.get_flow(self.namespace, self.flow_id)
        except BackendUnavailable as exc:
            self.post_message(ConnectionLost(str(exc)))
            return
        except FlowdeckError as exc:
            self.post_message(ActionFailed(str(exc)))
            return
        self.post_message(FlowLoaded(flow))

    def on_flow_loaded(self, message: FlowLoaded) -> None:
        message.stop()
        flow = self.flow = message.flow
        self.stamp()
        summary = Text(end="")
        summary.append(sanitize_line(f"{flow.namespace}.{flow.id}", 200), style="bold")
        summary.append(f"  revision {flow.revision}  triggers {trigger_text(flow)}"
                       f"  inputs {len(flow.inputs)}")
        if flow.disabled:
            summary.append("  DISABLED", style=rich_style(self.app, "warning", bold=True))
        if flow.description:
            summary.append("\n" + sanitize_line(flow.description, 500))
        self.query_one("#summary", Static).update(summary)
        source = sanitize(flow.source or "# (the server did not return the source)")
        theme = "ansi_dark" if self.app.current_theme.dark else "ansi_light"
        self.query_one("#source", Static).update(
            Syntax(source, "yaml", theme=theme, line_numbers=True, word_wrap=False))

    def action_run_flow(self) -> None:
        if self.flow is not None:
            start_run(self, self.flow)


class RunFormScreen(ModalScreen[str | None]):
    """Inputs form from the flow's declared inputs: types, defaults, required."""

    DEFAULT_CSS = scoped_modal_css("RunFormScreen") + """
    RunFormScreen VerticalScroll { height: auto; max-height: 50vh; }
    RunFormScreen .field { height: auto; }
    RunFormScreen .hint { color: $text-muted; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "submit", "Run")]
    AUTO_FOCUS = ""  # on_mount focuses the first field

    def __init__(self, flow: FlowInfo) -> None:
        super().__init__()
        self.flow = flow

    def compose(self) -> ComposeResult:
        flow = self.flow
        with Vertical():
            yield Static(Content(f"Run {sanitize_line(flow.namespace + '.' + flow.id, 120)}"),
                         classes="title")
            with VerticalScroll():
                if not flow.inputs:
                    yield Static(Content("This flow declares no inputs."), classes="hint")
                for i, spec in enumerate(flow.inputs):
                    yield from self.field(i, spec)
            yield Label("", classes="problem", id="problem")
            with Horizontal():
                yield Button(Content("Cancel"), id="cancel")
                yield Button(Content("Run (ctrl+s)"), variant="primary", id="run")

    def field(self, index: int, spec: dict[str, Any]) -> ComposeResult:
        name = str(spec.get("id") or spec.get("name") or f"input{index}")
        kind = str(spec.get("type", "STRING")).upper()
        required = input_required(spec)
        default = spec.get("defaults")
        shown = "boolean" if kind == "BOOL" else kind.lower()  # Kestra 2.x writes BOOL
        hint = f"{name}  ({shown}{', required' if required else ''})"
        if spec.get("description"):
            hint += f" — {spec['description']}"
        yield Label(Content(sanitize_line(hint, 200)), classes="hint")
        if kind in ("BOOLEAN", "BOOL"):
            # Kestra writes defaults as text ("true"); an older document as a JSON boolean.
            yield Checkbox(Content(sanitize_line(name, 60)),
                           value=default is True or str(default).lower() == "true",
                           id=f"in-{index}")
        else:
            placeholder = kind.lower()
            values = spec.get("values")
            if isinstance(values, list) and values:
                placeholder = " | ".join(sanitize_line(str(v), 30) for v in values[:8])
            yield Input(value="" if default is None else sanitize_line(str(default), 500),
                        placeholder=placeholder, id=f"in-{index}")

    def on_mount(self) -> None:
        fields = self.query("Input, Checkbox")
        if fields:
            fields.first().focus()
        else:
            self.query_one("#run", Button).focus()

    def collect(self) -> tuple[dict[str, Any], list[str]]:
        values: dict[str, Any] = {}
        problems: list[str] = []
        for i, spec in enumerate(self.flow.inputs):
            name = str(spec.get("id") or spec.get("name") or f"input{i}")
            widget = self.query_one(f"#in-{i}")
            required = input_required(spec)
            if isinstance(widget, Checkbox):
                values[name] = widget.value
                continue
            assert isinstance(widget, Input)
            text = widget.value
            if not text.strip():
                if required:
                    problems.append(f"{name} is required")
                continue
            values[name] = text
        return values, problems

    def action_submit(self) -> None:
        values, problems = self.collect()
        if problems:
            self.query_one("#problem", Label).update(Content("; ".join(problems)))
            return
        self.query_one("#run", Button).disabled = True
        self.submit(values)

    @work(group="run", exclusive=True)
    async def submit(self, values: dict[str, Any]) -> None:
        app: Any = self.app
        try:
            execution = await app.backend.create_execution(self.flow.namespace, self.flow.id,
                                                           inputs=values)
        except ValidationError as exc:
            self.post_message(ActionFailed(str(exc)))
            return
        except FlowdeckError as exc:
            self.post_message(ActionFailed(str(exc)))
            return
        self.post_message(ActionDone(execution.id, refresh=False))

    def on_action_failed(self, message: ActionFailed) -> None:
        message.stop()
        self.query_one("#run", Button).disabled = False
        self.query_one("#problem", Label).update(Content(sanitize_line(message.text, 500)))

    def on_action_done(self, message: ActionDone) -> None:
        message.stop()
        app: Any = self.app
        app.toast(f"started execution {short_id(message.text)}")
        self.dismiss(message.text)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "run":
            self.action_submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def action_cancel(self) -> None:
        self.dismiss(None)
