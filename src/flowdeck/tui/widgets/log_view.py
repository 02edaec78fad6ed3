"""The live log pane: a line-API view over the last `max_lines` log entries.

Follow mode sticks to the bottom; scrolling up turns it off and End turns it back on. Wrap,
timestamps, a minimum level, search (next/previous match), jump to the next error, a
separator whenever a task run starts another attempt, save to a file and copy a line.
Every message is sanitized once, when it arrives; lines render as Rich `Text`, never markup.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

from rich.segment import Segment
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from flowdeck.core.models import LEVEL_RANK, LOG_LEVELS, LogEntry
from flowdeck.core.sanitize import sanitize_line
from flowdeck.tui.theme import rich_style


@dataclass(slots=True)
class _Row:
    """One entry, sanitized: what the pane shows and what copy/save use."""

    seq: int
    timestamp: str
    level: str
    task: str
    task_run_id: str | None
    attempt: int | None
    message: str
    separator: str | None = None  # set on rows that open a new attempt

    def plain(self, timestamps: bool) -> str:
        head = f"{self.timestamp[11:23]} " if timestamps else ""
        return f"{head}{self.level:<5} {self.task}  {self.message}"


@dataclass(slots=True)
class _Line:
    row: int  # absolute row number (rows[row - base]); -1 for a separator
    text: str
    separator_of: int = -1
    offset: int = 0  # where this wrapped piece starts in the row's plain text


class LogView(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    LogView { background: $surface; height: 1fr; }
    LogView > .log-view--cursor { background: $primary 30%; }
    LogView > .log-view--separator { color: $text-muted; text-style: bold; }
    """
    COMPONENT_CLASSES = {"log-view--cursor", "log-view--separator"}
    BINDINGS = [
        Binding("up,k", "line_up", show=False),
        Binding("down,j", "line_down", show=False),
        Binding("pageup", "page_up", show=False),
        Binding("pagedown", "page_down", show=False),
        Binding("home,g", "top", show=False),
        Binding("end,G", "bottom", "Follow", show=False),
    ]

    follow = reactive(True)
    wrap = reactive(False)
    timestamps = reactive(True)
    min_level = reactive("TRACE")

    class FollowChanged(Message):
        def __init__(self, follow: bool) -> None:
            super().__init__()
            self.follow = follow

    def __init__(self, *, max_lines: int = 10_000, id: str | None = None) -> None:
        super().__init__(id=id)
        self.max_lines = max_lines
        self.rows: deque[_Row] = deque(maxlen=max_lines)
        self.dropped = 0
        self._lines: list[_Line] = []
        self._base = 0  # the absolute number of rows[0]: rows dropped so far
        self._max_width = 0
        self._attempts: dict[str, int] = {}
        self.cursor = -1  # display line; -1: none (follow shows the end)
        self.query_text = ""
        self.last_seq = 0

    # -- data -------------------------------------------------------------------------

    def add_entries(self, entries: list[LogEntry]) -> None:
        """Append a batch: O(batch), whatever the number of lines kept (the oldest rows and
        their display lines are dropped from the front, never re-laid out)."""
        added: list[_Line] = []
        for entry in entries:
            if entry.seq and entry.seq <= self.last_seq:
                continue  # already shown (a resumed stream repeats nothing twice)
            self.last_seq = max(self.last_seq, entry.seq)
            separator = None
            if entry.task_run_id is not None and entry.attempt_number is not None:
                seen = self._attempts.get(entry.task_run_id)
                if seen is not None and entry.attempt_number > seen:
                    separator = (f"── {sanitize_line(entry.task_id or '-', 60)} "
                                 f"attempt {entry.attempt_number} ──")
                if seen is None or entry.attempt_number > seen:
                    self._attempts[entry.task_run_id] = entry.attempt_number
            if len(self.rows) == self.max_lines:
                self.dropped += 1
                self._base += 1  # the deque drops rows[0] on append
            row = _Row(entry.seq, entry.timestamp, entry.level,
                       sanitize_line(entry.task_id or "-", 60), entry.task_run_id,
                       entry.attempt_number, sanitize_line(entry.message), separator)
            self.rows.append(row)
            added.extend(self._layout(self._base + len(self.rows) - 1, row))
        self._lines.extend(added)
        self._trim()
        if added and not self.wrap:
            self._max_width = max(self._max_width, max(len(ln.text) for ln in added))
        self._resize(measure=False)
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def _trim(self) -> None:
        """Drop the display lines of rows that are no longer kept (a prefix of _lines)."""
        base, lines = self._base, self._lines
        k = 0
        while k < len(lines) and (lines[k].row if lines[k].row >= 0
                                  else lines[k].separator_of) < base:
            k += 1
        if k:
            del lines[:k]
            if self.cursor >= 0:
                self.cursor = max(0, self.cursor - k)

    def _row(self, line: _Line) -> _Row:
        return self.rows[line.row - self._base]

    def _visible(self, row: _Row) -> bool:
        return LEVEL_RANK.get(row.level, 2) >= LEVEL_RANK.get(self.min_level, 0)

    def _layout(self, index: int, row: _Row) -> list[_Line]:
        if not self._visible(row):
            return []
        out: list[_Line] = []
        if row.separator:
            out.append(_Line(-1, row.separator, separator_of=index))
        text = row.plain(self.timestamps)
        width = max(10, self.scrollable_content_region.width)
        if self.wrap and len(text) > width:
            for start in range(0, len(text), width):
                out.append(_Line(index, text[start:start + width], offset=start))
        else:
            out.append(_Line(index, text))
        return out

    def _relayout(self) -> None:
        keep = self._lines[self.cursor].row if 0 <= self.cursor < len(self._lines) else None
        if self.wrap:
            self._lines = []
            for i, row in enumerate(self.rows, start=self._base):
                self._lines.extend(self._layout(i, row))
        else:  # the common case, inlined: a key (t, v) re-lays out 10,000 rows at once
            lines: list[_Line] = []
            append = lines.append
            stamps = self.timestamps
            floor = LEVEL_RANK.get(self.min_level, 0)
            rank = LEVEL_RANK.get
            for i, row in enumerate(self.rows, start=self._base):
                if rank(row.level, 2) < floor:
                    continue
                if row.separator:
                    append(_Line(-1, row.separator, separator_of=i))
                append(_Line(i, row.plain(stamps)))
            self._lines = lines
            self._max_width = max(map(len, (ln.text for ln in lines)), default=0)
            if keep is not None:
                self.cursor = next((n for n, ln in enumerate(lines) if ln.row >= keep), -1)
            self._resize(measure=False)
            self.refresh()
            return
        if keep is not None:
            self.cursor = next((n for n, ln in enumerate(self._lines) if ln.row >= keep), -1)
        self._resize()
        self.refresh()

    def _resize(self, *, measure: bool = True) -> None:
        if measure:
            self._max_width = (max((len(ln.text) for ln in self._lines), default=0)
                               if not self.wrap else 0)
        width = self._max_width if not self.wrap else 0
        self.virtual_size = Size(max(width, self.scrollable_content_region.width),
                                 len(self._lines))

    def clear(self) -> None:
        self.rows.clear()
        self._lines = []
        self._base = 0
        self._attempts = {}
        self.cursor = -1
        self.last_seq = 0
        self._resize()
        self.refresh()

    @property
    def line_count(self) -> int:
        return len(self._lines)

    def line_text(self, n: int) -> str:
        return self._lines[n].text

    def lines_plain(self) -> list[str]:
        return [ln.text for ln in self._lines]

    # -- reactives ----------------------------------------------------------------------

    def watch_wrap(self) -> None:
        self._relayout()

    def watch_timestamps(self) -> None:
        self._relayout()

    def watch_min_level(self) -> None:
        self._relayout()

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self.cursor = -1
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.post_message(self.FollowChanged(follow))
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        if self.wrap:
            self._relayout()
        else:
            self._resize()

    # -- rendering ----------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        n = scroll_y + y
        width = self.scrollable_content_region.width
        if n >= len(self._lines):
            return Strip.blank(width, self.rich_style)
        line = self._lines[n]
        if line.row < 0:
            text = Text(line.text, style=self.get_component_rich_style("log-view--separator"))
        else:
            row = self._row(line)
            text = Text(line.text)
            lvl_start = (13 if self.timestamps else 0) - line.offset
            if 0 <= lvl_start < len(line.text):
                text.stylize(rich_style(self.app, f"level-{row.level.lower()}", bold=True),
                             lvl_start, lvl_start + len(row.level))
            if row.level == "ERROR":
                text.stylize(rich_style(self.app, "level-error"), lvl_start + 5)
            if self.query_text:
                text.highlight_words([self.query_text],
                                     rich_style(self.app, "match", reverse=True),
                                     case_sensitive=False)
        segments = list(text.render(self.app.console))
        strip = Strip(segments).crop(scroll_x, scroll_x + width)
        strip = strip.extend_cell_length(width)
        style = self.rich_style
        if n == self.cursor:
            style = style + self.get_component_rich_style("log-view--cursor", partial=True)
        return strip.apply_style(style)

    # -- moving -------------------------------------------------------------------------

    def _set_cursor(self, n: int) -> None:
        if not self._lines:
            return
        self.cursor = max(0, min(n, len(self._lines) - 1))
        height = self.scrollable_content_region.height
        top = int(self.scroll_offset.y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)
        self.refresh()

    def _start_cursor(self) -> int:
        if 0 <= self.cursor < len(self._lines):
            return self.cursor
        return len(self._lines) - 1

    def action_line_up(self) -> None:
        self.follow = False
        self._set_cursor(self._start_cursor() - 1)

    def action_line_down(self) -> None:
        self._set_cursor(self._start_cursor() + 1)

    def action_page_up(self) -> None:
        self.follow = False
        self._set_cursor(self._start_cursor() - self.scrollable_content_region.height)

    def action_page_down(self) -> None:
        self._set_cursor(self._start_cursor() + self.scrollable_content_region.height)

    def action_top(self) -> None:
        self.follow = False
        self._set_cursor(0)

    def action_bottom(self) -> None:
        self.follow = True

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.follow = False

    # -- search and navigation ----------------------------------------------------------

    def search(self, text: str, *, forward: bool = True) -> bool:
        """Move to the next (or previous) line containing `text`; False if none."""
        self.query_text = text
        if not text or not self._lines:
            self.refresh()
            return False
        needle = text.lower()
        start = self._start_cursor()
        n = len(self._lines)
        order = (range(start + 1, start + 1 + n) if forward
                 else range(start - 1, start - 1 - n, -1))
        for i in order:
            k = i % n
            if needle in self._lines[k].text.lower():
                self.follow = False
                self._set_cursor(k)
                return True
        self.refresh()
        return False

    def next_error(self) -> bool:
        n = len(self._lines)
        if not n:
            return False
        start = self._start_cursor()
        for i in range(start + 1, start + 1 + n):
            k = i % n
            line = self._lines[k]
            if line.row >= 0 and line.offset == 0 and self._row(line).level == "ERROR":
                self.follow = False
                self._set_cursor(k)
                return True
        return False

    def cycle_level(self) -> str:
        index = LOG_LEVELS.index(self.min_level) if self.min_level in LOG_LEVELS else 0
        self.min_level = LOG_LEVELS[(index + 1) % len(LOG_LEVELS)]
        return self.min_level

    def current_text(self) -> str | None:
        """The sanitized text of the line under the cursor (or the last line)."""
        n = self._start_cursor()
        if n < 0:
            return None
        line = self._lines[n]
        if line.row < 0:
            return line.text
        return self._row(line).plain(True)

    def export_text(self) -> str:
        """Every kept entry, sanitized, in Kestra's download format."""
        return "".join(f"{r.timestamp} {r.level} {r.message}\n" for r in self.rows)

    def save(self, path: Path) -> Path:
        path.write_text(self.export_text(), encoding="utf-8")
        return path


__all__ = ["LogView", "Segment"]
