"""A pipeline run read from a Forge server of a profile's own, phase by phase.

Where releases come from a separate Forge (`[profiles.NAME.forge]`), a release's pipeline run
is not an execution of the deck's backend, so the execution screen cannot show it. This screen
draws what the forge API says of the run instead: its phases in order, their tasks and each
task's steps with status and exit code, and the log text of the steps that failed. It is read
again on the `[tui] refresh` beat until the run has ended.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Static

from flowdeck.client.releases import Releases
from flowdeck.core.errors import FlowdeckError
from flowdeck.core.forge import PipelineRun
from flowdeck.core.sanitize import sanitize_line
from flowdeck.tui.format import safe_text
from flowdeck.tui.screens.base import DeckScreen
from flowdeck.tui.theme import rich_style
from flowdeck.tui.widgets.status import StatusBar

STATUS_VARIABLES = {"success": "success", "failed": "error", "cancelled": "error",
                    "running": "warning", "pending": "text-muted", "skipped": "text-muted"}
ENDED = ("success", "failed", "cancelled")
#: Log lines shown per failed step (its last ones).
FAILED_LOG_LINES = 20


@dataclass
class ForgeRunLoaded(Message):
    run: PipelineRun
    #: step id -> its last log lines, for the steps that failed.
    failed_logs: dict[str, list[str]]


@dataclass
class ForgeRunFailed(Message):
    text: str


class ForgeRunScreen(DeckScreen):
    DEFAULT_CSS = """
    ForgeRunScreen #run-title { height: auto; background: $boost; padding: 0 1; }
    ForgeRunScreen #run-body { padding: 0 1; }
    """

    def __init__(self, run_id: str, client: Releases) -> None:
        super().__init__()
        self.run_id = run_id
        self.client = client
        self.run: PipelineRun | None = None
        self.failed_logs: dict[str, list[str]] = {}
        self.problem: str | None = None

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield Static(id="run-title")
        with VerticalScroll():
            yield Static(id="run-body")
        yield Footer()

    def on_mount(self) -> None:
        self.render_run()
        self.reload()
        self.set_interval(self.deck.refresh_seconds, self.refresh_beat)

    def reload(self) -> None:
        self.load()

    def refresh_beat(self) -> None:
        if self.run is None or self.run.status not in ENDED:
            self.load()

    @work(group="forge-run", exclusive=True)
    async def load(self) -> None:
        try:
            run = await self.client.run(self.run_id)
            logs: dict[str, list[str]] = {}
            for phase in run.phases:
                for task in phase.tasks:
                    for step in task.steps:
                        if step.status == "failed":
                            text = await self.client.step_logs(run.id, step.id)
                            logs[step.id] = text.splitlines()[-FAILED_LOG_LINES:]
        except FlowdeckError as exc:
            self.post_message(ForgeRunFailed(str(exc)))
            return
        self.post_message(ForgeRunLoaded(run, logs))

    def on_forge_run_loaded(self, message: ForgeRunLoaded) -> None:
        message.stop()
        self.run, self.failed_logs, self.problem = message.run, message.failed_logs, None
        self.stamp()
        self.render_run()

    def on_forge_run_failed(self, message: ForgeRunFailed) -> None:
        message.stop()
        self.problem = message.text
        self.render_run()

    def styled(self, status: str) -> Text:
        return Text(status.upper(), end="", style=rich_style(
            self.deck, STATUS_VARIABLES.get(status, "text-muted")))

    def render_run(self) -> None:
        title = Text(end="")
        body = Text(end="")
        run = self.run
        if run is None:
            title.append_text(safe_text(f"pipeline run {self.run_id}"))
            body.append_text(safe_text(f"cannot read it: {self.problem}" if self.problem
                                       else "reading ..."))
        else:
            title.append_text(safe_text(f"{run.repository}  run {run.id}  "))
            title.append_text(self.styled(run.status))
            title.append("\n")
            title.append_text(safe_text(
                f"{run.branch} @ {run.commit_sha[:12]}  {run.trigger_type} by "
                f"{run.triggered_by}  started {run.started_at}"
                + (f"  completed {run.completed_at}" if run.completed_at else "")))
            if self.problem:
                title.append_text(safe_text(f"\nnot read again: {self.problem}"))
            for phase in run.phases:
                body.append_text(safe_text(f"phase {phase.group_number} · {phase.name}  "))
                body.append_text(self.styled(phase.status))
                body.append("\n")
                for task in phase.tasks:
                    body.append_text(safe_text(f"  {task.project_name}  "))
                    body.append_text(self.styled(task.status))
                    if task.error:
                        body.append_text(safe_text(f"  {task.error}", 200))
                    body.append("\n")
                    for step in task.steps:
                        code = "" if step.exit_code is None else f"  exit {step.exit_code}"
                        body.append_text(safe_text(f"    - {step.name}  "))
                        body.append_text(self.styled(step.status))
                        body.append_text(safe_text(code))
                        body.append("\n")
                        for line in self.failed_logs.get(step.id, []):
                            body.append("      " + sanitize_line(line, 300) + "\n",
                                        style=rich_style(self.deck, "text-muted"))
        self.query_one("#run-title", Static).update(title)
        self.query_one("#run-body", Static).update(body)
