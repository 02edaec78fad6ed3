"""Plain-text formatting shared by screens (durations, times, ids, progress)."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

from flowdeck.core.models import Execution
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


def execution_seconds(ex: Execution, now: datetime) -> float:
    end = ex.state.end_date or now
    return (end - ex.state.start_date).total_seconds()


def local_time(dt: datetime | None) -> str:
    if dt is None:
        return "-"
    return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def progress(ex: Execution) -> tuple[int, int]:
    done = sum(1 for t in ex.task_runs if is_terminal(t.state.current))
    return done, len(ex.task_runs)


def waiting_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d{(seconds % 86400) // 3600:02d}h"
