"""The live log pane: a line-API view over the last `max_lines` log entries.

Follow mode sticks to the bottom; scrolling up turns it off and End turns it back on. Wrap,
timestamps, a minimum level, search (next/previous match), jump to the next error, a
separator whenever a task run starts another attempt, save to a file and copy a line.
Every message is sanitized once, when it arrives; lines render as Rich `Text`, never markup.

Display lines are an index, not text: a `_Line` names its row (and, wrapped, where its piece
starts) and its text is made when it is painted or searched. So a batch costs O(batch) with
no string built per line but the row's own, the timestamps toggle costs nothing per line
(unwrapped, the same rows are shown: only the width changes), and wrap or a level filter
re-index the kept rows with integer arithmetic only. Painting is for the visible region
only, with the level styles resolved once per theme.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

from rich.segment import Segment
from rich.style import Style as RichStyle
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
from flowdeck.tui.widgets.table import render_cell


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
    head: str = ""  # the time of day and a space, shown with timestamps on
    body: str = ""  # level, task and message: the line without its time

    def plain(self, timestamps: bool) -> str:
        return self.head + self.body if timestamps else self.body


def last_state(message: str) -> str:
    """A line a program rewrote with carriage returns (a progress bar: `10%\r20%\r30%`)
    as it ended up: its last state, not the pieces joined."""
    text = message.rstrip("\r")
    return text.rsplit("\r", 1)[-1] if "\r" in text else text


def _make_row(seq: int, timestamp: str, level: str, task: str, task_run_id: str | None,
              attempt: int | None, message: str, separator: str | None = None) -> _Row:
    return _Row(seq, timestamp, level, task, task_run_id, attempt, message, separator,
                f"{timestamp[11:23]} ", f"{level:<5} {task}  {message}")


@dataclass(slots=True)
class _Line:
    row: int  # absolute row number (rows[row - base]); -1 for a separator
    separator_of: int = -1  # for a separator: the row it opens
    offset: int = 0  # where this wrapped piece starts in the row's plain text


#: (theme name, level label styles, the ERROR message style, the search match style)
_Styles = tuple[str, dict[str, RichStyle], RichStyle, RichStyle]


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
        # Unwrapped, the widest line with and without timestamps (only ever grows between
        # re-indexes: a dropped row may leave it a little wide, never too narrow).
        self._width_stamped = 0
        self._width_bare = 0
        self._wrap_width = 10  # the piece width the wrapped index was made for
        self._attempts: dict[str, int] = {}
        self._styles: _Styles | None = None
        self.cursor = -1  # display line; -1: none (follow shows the end)
        self.query_text = ""
        self.last_seq = 0

    # -- data -------------------------------------------------------------------------

    def add_entries(self, entries: list[LogEntry]) -> None:
        """Append a batch: O(batch), whatever the number of lines kept (the oldest rows and
        their display lines are dropped from the front, never re-laid out)."""
        if not entries:
            return
        rows, lines = self.rows, self._lines
        append = lines.append
        wrap, stamps = self.wrap, self.timestamps
        # The width every wrapped line was cut for: a resize re-indexes them all (on_resize)
        width = self._wrap_width
        floor = LEVEL_RANK.get(self.min_level, 0)
        rank = LEVEL_RANK.get
        attempts = self._attempts
        max_lines = self.max_lines
        widest_stamped, widest_bare = self._width_stamped, self._width_bare
        for entry in entries:
            seq = entry.seq
            if seq and seq <= self.last_seq:
                continue  # already shown (a resumed stream repeats nothing twice)
            if seq > self.last_seq:
                self.last_seq = seq
            separator = None
            run_id, attempt = entry.task_run_id, entry.attempt_number
            if run_id is not None and attempt is not None:
                seen = attempts.get(run_id)
                if seen is not None and attempt > seen:
                    separator = (f"── {sanitize_line(entry.task_id or '-', 60)} "
                                 f"attempt {attempt} ──")
                if seen is None or attempt > seen:
                    attempts[run_id] = attempt
            if len(rows) == max_lines:
                self.dropped += 1
                self._base += 1  # the deque drops rows[0] on append
            row = _make_row(seq, entry.timestamp, entry.level,
                            sanitize_line(entry.task_id or "-", 60), run_id, attempt,
                            sanitize_line(last_state(entry.message)), separator)
            rows.append(row)
            if rank(row.level, 2) < floor:
                continue
            index = self._base + len(rows) - 1
            if separator:
                append(_Line(-1, index))
                widest_stamped = max(widest_stamped, len(separator))
                widest_bare = max(widest_bare, len(separator))
            if wrap:
                total = len(row.body) + (len(row.head) if stamps else 0)
                if total > width:
                    for start in range(0, total, width):
                        append(_Line(index, -1, start))
                    continue
            else:
                bare = len(row.body)
                if bare > widest_bare:
                    widest_bare = bare
                if bare + len(row.head) > widest_stamped:
                    widest_stamped = bare + len(row.head)
            append(_Line(index))
        self._width_stamped, self._width_bare = widest_stamped, widest_bare
        self._trim()
        self._resize()
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def _piece_width(self) -> int:
        return max(10, self.scrollable_content_region.width)

    def _trim(self) -> None:
        """Drop the display lines of rows that are no longer kept (a prefix of _lines)."""
        base, lines = self._base, self._lines
        if not lines or (lines[0].row if lines[0].row >= 0 else lines[0].separator_of) >= base:
            return
        lo, hi = 0, len(lines)  # the lines are in row order: bisect for the first kept one
        while lo < hi:
            mid = (lo + hi) // 2
            line = lines[mid]
            if (line.row if line.row >= 0 else line.separator_of) < base:
                lo = mid + 1
            else:
                hi = mid
        if lo:
            del lines[:lo]
            if self.cursor >= 0:
                self.cursor = max(0, self.cursor - lo)

    def _row(self, line: _Line) -> _Row:
        return self.rows[line.row - self._base]

    def _text(self, line: _Line) -> str:
        """The text of one display line (made on demand: the index holds no text)."""
        if line.row < 0:
            return self.rows[line.separator_of - self._base].separator or ""
        text = self.rows[line.row - self._base].plain(self.timestamps)
        if self.wrap:
            return text[line.offset:line.offset + self._wrap_width]
        return text

    def _visible(self, row: _Row) -> bool:
        return LEVEL_RANK.get(row.level, 2) >= LEVEL_RANK.get(self.min_level, 0)

    def _relayout(self) -> None:
        """Re-index the kept rows (wrap, level or, wrapped, timestamps changed): integers
        only, no text is made; the cursor stays on its row."""
        keep = self._lines[self.cursor] if 0 <= self.cursor < len(self._lines) else None
        keep_row = None if keep is None else (keep.row if keep.row >= 0 else keep.separator_of)
        lines: list[_Line] = []
        append = lines.append
        floor = LEVEL_RANK.get(self.min_level, 0)
        rank = LEVEL_RANK.get
        widest_stamped = widest_bare = 0
        if self.wrap:
            width = self._wrap_width = self._piece_width()
            stamps = self.timestamps
            for i, row in enumerate(self.rows, start=self._base):
                if rank(row.level, 2) < floor:
                    continue
                if row.separator:
                    append(_Line(-1, i))
                total = len(row.body) + (len(row.head) if stamps else 0)
                if total > width:
                    for start in range(0, total, width):
                        append(_Line(i, -1, start))
                else:
                    append(_Line(i))
        else:
            for i, row in enumerate(self.rows, start=self._base):
                if rank(row.level, 2) < floor:
                    continue
                if row.separator:
                    append(_Line(-1, i))
                    widest_bare = max(widest_bare, len(row.separator))
                append(_Line(i))
                widest_bare = max(widest_bare, len(row.body))
            if self.rows:
                head = max(len(row.head) for row in self.rows)
                widest_stamped = widest_bare + head
        self._lines = lines
        self._width_stamped, self._width_bare = widest_stamped, widest_bare
        if keep_row is not None:
            self.cursor = next((n for n, ln in enumerate(lines)
                                if (ln.row if ln.row >= 0 else ln.separator_of) >= keep_row),
                               -1)
        self._resize()
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def _resize(self) -> None:
        width = 0 if self.wrap else (self._width_stamped if self.timestamps
                                     else self._width_bare)
        size = Size(max(width, self.scrollable_content_region.width), len(self._lines))
        if size == self.virtual_size:
            return
        if not self.is_mounted or not self.container_size:
            self.virtual_size = size  # not laid out yet: the first layout sizes everything
            return
        # The pane's own box does not depend on what it holds (its height comes from the
        # CSS), so a longer log re-lays out nothing but this pane's scrollbars: set the size
        # without the reactive's full-screen layout, and update the scrollbars as Textual
        # does for a size found by layout (`Widget._size_updated` with layout=False). A
        # scrollbar that appears or goes still re-lays out (its `display` changes).
        self.set_reactive(LogView.virtual_size, size)
        self._scroll_update(size)
        self.refresh()

    def clear(self) -> None:
        self.rows.clear()
        self._lines = []
        self._base = 0
        self._attempts = {}
        self._width_stamped = self._width_bare = 0
        self.cursor = -1
        self.last_seq = 0
        self._resize()
        self.refresh()

    @property
    def line_count(self) -> int:
        return len(self._lines)

    def line_text(self, n: int) -> str:
        return self._text(self._lines[n])

    def lines_plain(self) -> list[str]:
        return [self._text(ln) for ln in self._lines]

    # -- reactives ----------------------------------------------------------------------

    def watch_wrap(self) -> None:
        self._relayout()

    def watch_timestamps(self) -> None:
        if self.wrap:
            self._relayout()  # the pieces move: re-index
            return
        # Unwrapped, the same rows show on the same lines: only the width changes, and the
        # visible lines repaint (their text is made when painted).
        self._resize()
        self.refresh()

    def watch_min_level(self) -> None:
        self._relayout()

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self.cursor = -1
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.post_message(self.FollowChanged(follow))
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        if self.wrap and self._piece_width() != self._wrap_width:
            self._relayout()  # follows the end itself
            return
        self._resize()
        if self.follow:  # a shorter pane: the end moved down
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    # -- rendering ----------------------------------------------------------------------

    def _level_styles(self) -> tuple[dict[str, RichStyle], RichStyle, RichStyle]:
        """Per level, its label style and (for ERROR) the message style; the match style.
        Resolved once per theme, not once per painted line."""
        theme = self.app.theme
        if self._styles is None or self._styles[0] != theme:
            app = self.app
            levels = {level: rich_style(app, f"level-{level.lower()}", bold=True)
                      for level in LOG_LEVELS}
            self._styles = (theme, levels, rich_style(app, "level-error"),
                            rich_style(app, "match", reverse=True))
        return self._styles[1], self._styles[2], self._styles[3]

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        n = scroll_y + y
        width = self.scrollable_content_region.width
        if n >= len(self._lines):
            return Strip.blank(width, self.rich_style)
        line = self._lines[n]
        if line.row < 0:
            text = Text(self._text(line),
                        style=self.get_component_rich_style("log-view--separator"))
        else:
            row = self._row(line)
            text = Text(self._text(line))
            levels, error, match = self._level_styles()
            lvl_start = (len(row.head) if self.timestamps else 0) - line.offset
            if 0 <= lvl_start < len(text):
                label = levels.get(row.level) or rich_style(
                    self.app, f"level-{row.level.lower()}", bold=True)
                text.stylize(label, lvl_start, lvl_start + len(row.level))
            if row.level == "ERROR":  # the message (all of a wrapped piece past the label)
                text.stylize(error, max(0, lvl_start + 5))
            if self.query_text:
                text.highlight_words([self.query_text], match, case_sensitive=False)
        segments = render_cell(text, self.app.console)
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
            if needle in self._text(self._lines[k]).lower():
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
            return self._text(line)
        return self._row(line).plain(True)

    def export_text(self) -> str:
        """Every kept entry, sanitized, in Kestra's download format."""
        return "".join(f"{r.timestamp} {r.level} {r.message}\n" for r in self.rows)

    def save(self, path: Path) -> Path:
        path.write_text(self.export_text(), encoding="utf-8")
        return path


__all__ = ["LogView", "Segment"]
