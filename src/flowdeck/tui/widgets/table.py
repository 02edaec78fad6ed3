"""A virtual table on Textual's line API: it renders only the rows on screen and asks its
source for the ones it does not have, so 100,000 executions scroll as fast as 100.

Cells are Rich `Text` built by the screen from sanitized strings (never markup). Column
widths: fixed numbers, and one flexible column that takes what is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rich.segment import Segment
from rich.style import Style as RichStyle
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    title: str
    width: int = 0  # 0: flexible
    justify: str = "left"


class TableSource(Protocol):
    def row_count(self) -> int: ...

    def row(self, index: int) -> list[Text] | None:
        """The cells, or None while the row is not loaded yet."""
        ...

    def row_key(self, index: int) -> str | None: ...


class VirtualTable(ScrollView, can_focus=True):
    """Header line plus rows; cursor, marks and a placeholder for rows still loading."""

    COMPONENT_CLASSES = {"virtual-table--header", "virtual-table--cursor",
                         "virtual-table--marked", "virtual-table--loading"}
    DEFAULT_CSS = """
    VirtualTable { background: $surface; height: 1fr; }
    VirtualTable > .virtual-table--header {
        text-style: bold; color: $text-muted; background: $panel;
    }
    VirtualTable > .virtual-table--cursor { background: $primary 40%; }
    VirtualTable:focus > .virtual-table--cursor { background: $primary 60%; }
    VirtualTable > .virtual-table--marked { color: $mark; text-style: bold; }
    VirtualTable > .virtual-table--loading { color: $text-muted; }
    """
    BINDINGS = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", show=False),
        Binding("pagedown", "page_down", show=False),
        Binding("home,g", "first", show=False),
        Binding("end,G", "last", show=False),
    ]

    cursor = reactive(0, always_update=True)

    class NeedRows(Message):
        """Rows first..last are on screen but not loaded."""

        def __init__(self, table: VirtualTable, first: int, last: int) -> None:
            super().__init__()
            self.table = table
            self.first = first
            self.last = last

    class CursorMoved(Message):
        def __init__(self, table: VirtualTable, index: int) -> None:
            super().__init__()
            self.table = table
            self.index = index

    def __init__(self, columns: list[Column], source: TableSource, *, id: str | None = None
                 ) -> None:
        super().__init__(id=id)
        self.columns = columns
        self.source = source
        self.marked: set[str] = set()
        self._missing: tuple[int, int] | None = None

    # -- size and geometry ---------------------------------------------------------------

    def reset(self) -> None:
        """The row count or contents changed: resize and repaint."""
        rows = self.source.row_count()
        self.virtual_size = Size(self.size.width, rows + 1)
        if self.cursor >= rows:
            self.cursor = max(0, rows - 1)
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        self.reset()

    @property
    def body_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def widths(self, total: int) -> list[int]:
        fixed = sum(c.width for c in self.columns if c.width) + len(self.columns) - 1
        flex = [c for c in self.columns if not c.width]
        left = max(4, total - fixed)
        out = []
        for c in self.columns:
            if c.width:
                out.append(c.width)
            else:
                share = left // len(flex)
                out.append(share)
        return out

    # -- rendering --------------------------------------------------------------------

    def _cells_strip(self, cells: list[Text], width: int, base: RichStyle) -> Strip:
        segments: list[Segment] = []
        widths = self.widths(width)
        for i, (cell, w) in enumerate(zip(cells, widths, strict=False)):
            text = cell.copy()
            text.no_wrap = True
            text.end = ""
            text.truncate(w, overflow="ellipsis")
            if self.columns[i].justify == "right":
                text.pad_left(w - text.cell_len)
            else:
                text.pad_right(w - text.cell_len)
            segments.extend(text.render(self.app.console))
            if i < len(widths) - 1:
                segments.append(Segment(" "))
        strip = Strip(segments).extend_cell_length(width).crop(0, width)
        return strip.apply_style(base) if base else strip

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        scroll_y = int(self.scroll_offset.y)
        if y == 0:
            style = self.get_component_rich_style("virtual-table--header")
            header = [Text(c.title) for c in self.columns]
            return self._cells_strip(header, width, style)
        index = scroll_y + y - 1
        if index >= self.source.row_count():
            return Strip.blank(width, self.rich_style)
        cells = self.source.row(index)
        if cells is None:
            self._note_missing(index)
            style = self.get_component_rich_style("virtual-table--loading")
            return self._cells_strip([Text("…")], width, style)
        key = self.source.row_key(index)
        base = self.rich_style
        if key is not None and key in self.marked:
            base = base + self.get_component_rich_style("virtual-table--marked")
            cells = [Text("✓ ") + cells[0], *cells[1:]] if cells else cells
        if index == self.cursor:
            base = base + self.get_component_rich_style("virtual-table--cursor",
                                                        partial=True)
        return self._cells_strip(cells, width, base)

    def _note_missing(self, index: int) -> None:
        if self._missing is None:
            self._missing = (index, index)
            self.call_after_refresh(self._post_missing)
        else:
            lo, hi = self._missing
            self._missing = (min(lo, index), max(hi, index))

    def _post_missing(self) -> None:
        if self._missing is not None:
            first, last = self._missing
            self._missing = None
            self.post_message(self.NeedRows(self, first, last))

    def visible_rows(self) -> tuple[int, int]:
        first = int(self.scroll_offset.y)
        return first, first + self.body_height - 1

    # -- cursor -----------------------------------------------------------------------

    def watch_cursor(self, old: int, new: int) -> None:
        self._scroll_to_cursor()
        # Again once the layout has caught up with a row count that just changed.
        self.call_after_refresh(self._scroll_to_cursor)
        self.refresh()
        self.post_message(self.CursorMoved(self, new))

    def _scroll_to_cursor(self) -> None:
        first, last = self.visible_rows()
        if self.cursor < first:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor > last:
            self.scroll_to(y=self.cursor - self.body_height + 1, animate=False,
                           immediate=True)

    def move_cursor(self, index: int) -> None:
        rows = self.source.row_count()
        self.cursor = max(0, min(index, rows - 1)) if rows else 0

    def action_cursor_up(self) -> None:
        self.move_cursor(self.cursor - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor + 1)

    def action_page_up(self) -> None:
        self.move_cursor(self.cursor - self.body_height)

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor + self.body_height)

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(self.source.row_count() - 1)

    def on_click(self, event: events.Click) -> None:
        if event.y >= 1:
            self.move_cursor(int(self.scroll_offset.y) + event.y - 1)

    def current_key(self) -> str | None:
        if self.source.row_count() == 0:
            return None
        return self.source.row_key(self.cursor)

    def toggle_mark(self) -> None:
        key = self.current_key()
        if key is None:
            return
        if key in self.marked:
            self.marked.discard(key)
        else:
            self.marked.add(key)
        self.move_cursor(self.cursor + 1)
        self.refresh()

    def refresh_rows(self) -> None:
        self.refresh()

    def refresh_region_rows(self) -> None:
        self.refresh(Region(0, 1, self.size.width, self.size.height))
