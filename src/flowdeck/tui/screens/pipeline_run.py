"""A pipeline run in the execution screen, its task runs grouped by phase.

A run is an execution of the repository's pipeline flow, so everything of the execution
screen applies (live task runs, the log pane, kill, restart); the task tree is drawn phase by
phase (`phase 2 · ci`), in the order the releases client gives them, with the phases that have
not started (pending, or skipped once the run ended) shown too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from textual import work
from textual.message import Message

from flowdeck.client.releases import Releases
from flowdeck.core.errors import FlowdeckError
from flowdeck.core.forge import Phase, PipelineRun
from flowdeck.core.models import Execution, TaskRun
from flowdeck.core.sanitize import sanitize_line
from flowdeck.core.states import is_terminal
from flowdeck.tui.screens.execution import ExecutionScreen, task_depths
from flowdeck.tui.theme import rich_style

PHASE_VARIABLES = {"success": "success", "failed": "error", "running": "warning",
                   "pending": "text-muted", "skipped": "text-muted"}


@dataclass
class RunLoaded(Message):
    run: PipelineRun


class PipelineRunScreen(ExecutionScreen):
    def __init__(self, run_id: str, client: Releases) -> None:
        super().__init__(run_id)
        self.client = client
        self.run: PipelineRun | None = None

    def on_mount(self) -> None:
        super().on_mount()
        self.load_run()

    @work(group="run", exclusive=True)
    async def load_run(self) -> None:
        try:
            run = await self.client.run(self.execution_id)
        except FlowdeckError:
            return  # drawn as a plain execution then
        self.post_message(RunLoaded(run))

    def on_run_loaded(self, message: RunLoaded) -> None:
        message.stop()
        self.run = message.run
        self.render_execution()

    def task_lines(self, ex: Execution, now: datetime) -> Text:
        phases: tuple[Phase, ...] = self.run.phases if self.run is not None else ()
        if not phases:
            return super().task_lines(ex, now)
        groups: dict[str, list[tuple[int, TaskRun]]] = {}
        root = ""
        for depth, tr in task_depths(ex.task_runs):
            if depth == 0:
                root = tr.task_id
            groups.setdefault(root, []).append((depth, tr))
        lines = Text(end="")
        for phase in phases:
            prefix = f"phase {phase.group_number} · "
            runs = groups.get(phase.name) or []
            if runs and runs[0][0] == 0:
                lines.append_text(self.task_line(ex, runs[0][1], 0, now, prefix))
                for depth, tr in runs[1:]:
                    lines.append_text(self.task_line(ex, tr, depth, now))
                continue
            status = phase.status
            if status == "pending" and is_terminal(ex.state.current):
                status = "skipped"  # it will not start any more
            width = max(20, self.size.width - 58)
            lines.append(sanitize_line(prefix + phase.name, 200)[:width].ljust(width) + " ")
            lines.append(status.upper().ljust(10) + "\n", style=rich_style(
                self.deck, PHASE_VARIABLES.get(status, "text-muted")))
        return lines
