"""Plain-text formatting shared by screens (durations, times, ids, progress)."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

from flowdeck.core.models import Execution, StateInfo
from flowdeck.core.sanitize import sanitize_line
from flowdeck.core.states import is_terminal


def safe_text(value: object, limit: int = 500, style: object = None) -> Text:
    """Untrusted text as a literal Rich Text (sanitized, one line, never markup)."""
    return Text(sanitize_line(str(value), limit), style=style or "", end="")  # type: ignore[arg-type]


def short_id(execution_id: str) -> str:
    return execution_id[-8:]


def duration_text(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        m, s = divmod(int(seconds), 60)
        return f"{m}m{s:02d}s"
    h, rest = divmod(int(seconds), 3600)
    return f"{h}h{rest // 60:02d}m"


def finished_at(state: StateInfo) -> datetime | None:
    """When a run (or task run) ended; None while it goes on. A PAUSED one has not ended: it
    waits, and the wait counts in its duration."""
    return state.histories[-1].date if is_terminal(state.current) else None


def state_seconds(state: StateInfo, now: datetime) -> float:
    return ((finished_at(state) or now) - state.start_date).total_seconds()


def execution_seconds(ex: Execution, now: datetime) -> float:
    return state_seconds(ex.state, now)


def local_time(dt: datetime | None) -> str:
    """Every time the deck shows, in one format (the local time zone)."""
    if dt is None:
        return "-"
    return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def progress(ex: Execution, in_flow: int = 0) -> tuple[int, int]:
    """(tasks done, tasks in the flow): a task is done when every run of it has ended (a
    loop or a retry makes several); the flow's count is `in_flow` when known, and never less
    than the tasks that have run."""
    finished: dict[str, bool] = {}
    for run in ex.task_runs:
        finished[run.task_id] = finished.get(run.task_id, True) and is_terminal(
            run.state.current)
    return sum(finished.values()), max(in_flow, len(finished))


def progress_text(ex: Execution, in_flow: int = 0) -> str:
    done, total = progress(ex, in_flow)
    return f"{done} done / {total} in flow"


def waiting_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d{(seconds % 86400) // 3600:02d}h"
