"""A virtual table on Textual's line API: it renders only the rows on screen and asks its
source for the ones it does not have, so 100,000 executions scroll as fast as 100.

Cells are Rich `Text` built by the screen from sanitized strings (never markup). Column
widths: fixed numbers, and one flexible column that takes what is left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from rich.console import Console
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
    #: A flexible column's least width before fixed columns go `narrow`.
    min_width: int = 0
    #: A fixed column's width when the table is too narrow for everything (0: no change),
    #: and how its text is shortened to fit it then (e.g. a timestamp without its year).
    narrow: int = 0
    compact: Callable[[str], str] | None = None


def compact_time(text: str) -> str:
    """`2026-01-31 12:34:56` -> `01-31 12:34` (a narrow table keeps the day and minute)."""
    return text[5:16] if len(text) >= 16 else text


class TableSource(Protocol):
    def row_count(self) -> int: ...

    def row(self, index: int) -> list[Text] | None:
        """The cells, or None while the row is not loaded yet."""
        ...

    def row_key(self, index: int) -> str | None: ...

    def index_of(self, key: str) -> int | None:
        """Where the item `key` is now: its row, `GONE` when it is not in the list any
        more, or None while that is not known yet (its page is not loaded)."""
        ...


#: `TableSource.index_of`: the item is not in the list.
GONE = -1


def render_cell(text: Text, console: Console) -> list[Segment]:
    """A cell's segments with the cell's own style under its spans' (Rich's `Text.render`
    leaves a text without spans unstyled: the state colours were lost that way)."""
    segments = list(text.render(console))
    style = text.style
    if not style:
        return segments
    base = console.get_style(style) if isinstance(style, str) else style
    return list(Segment.apply_style(segments, base))


class VirtualTable(ScrollView, can_focus=True):
    """Header line plus rows; a cursor that stays on its item, marks, and a placeholder for
    rows still loading.

    The cursor follows the *item* (its key), not the row number: when rows are inserted,
    removed or re-sorted under it, `reset` moves the cursor to wherever the item is now. When
    the item leaves the list (decided, filtered out), nothing is selected (`current_key()` is
    None, no row is highlighted) until the operator moves, or the item comes back; the cursor
    keeps its place for that move.
    """

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

    def __init__(self, columns: list[Column], source: TableSource, *, id: str | None = None,
                 empty: str = "") -> None:
        super().__init__(id=id)
        self.columns = columns
        self.source = source
        self.marked: set[str] = set()
        #: What an empty list says (what to do next); the screen may change it.
        self.empty = empty
        #: The item under the cursor (None: not loaded yet, the row's item is taken when
        #: it loads) and whether there is a selection at all.
        self.selected_key: str | None = None
        self.has_selection = True
        self._missing: tuple[int, int] | None = None

    # -- size and geometry ---------------------------------------------------------------

    def reset(self) -> None:
        """The row count or contents changed: find the cursor's item, resize and repaint."""
        rows = self.source.row_count()
        self.virtual_size = Size(self.size.width, rows + 1)
        index = self.cursor
        if self.selected_key is None:
            if self.has_selection:  # the operator's row, now loaded: that item is selected
                self.selected_key = self.source.row_key(min(index, max(0, rows - 1)))
        else:
            found = self.source.index_of(self.selected_key)
            if found == GONE:
                self.has_selection = False  # not in the list (now): nothing is selected
            elif found is not None:
                index = found
                self.has_selection = True  # (back) in the list, and the operator stayed
        index = max(0, min(index, rows - 1))
        if index != self.cursor:
            self.cursor = index
        self.refresh()

    def forget(self) -> None:
        """Start over (another backend): the first row is selected once there is one."""
        self.selected_key = None
        self.has_selection = True
        self.refresh()

    def select_key(self, key: str) -> None:
        """Put the cursor on `key` (wherever it is once the rows are known)."""
        self.has_selection = True
        self.selected_key = key
        self.reset()

    def on_resize(self, event: events.Resize) -> None:
        self.reset()

    @property
    def body_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _left(self, total: int, narrow: bool) -> int:
        fixed = sum((c.narrow if narrow and c.narrow else c.width) for c in self.columns)
        return total - fixed - (len(self.columns) - 1)

    def is_narrow(self, total: int) -> bool:
        """Too narrow for the flexible columns' `min_width`: the `narrow` widths apply."""
        wanted = sum(c.min_width for c in self.columns if not c.width)
        return wanted > 0 and self._left(total, False) < wanted

    def widths(self, total: int) -> list[int]:
        """Column widths for a table `total` cells wide. The flexible columns share what is
        left; when that is less than their `min_width`, columns that have a `narrow` width
        use it (a timestamp drops its year and seconds), so a name keeps its room."""
        flex = [c for c in self.columns if not c.width]
        narrow = self.is_narrow(total)
        room = max(4 * max(1, len(flex)), self._left(total, narrow))
        return [(c.narrow if narrow and c.narrow else c.width) if c.width
                else room // len(flex) for c in self.columns]

    # -- rendering --------------------------------------------------------------------

    def _cells_strip(self, cells: list[Text], width: int, base: RichStyle) -> Strip:
        segments: list[Segment] = []
        widths = self.widths(width)
        narrow = self.is_narrow(width)
        console = self.app.console
        for i, (cell, w) in enumerate(zip(cells, widths, strict=False)):
            column = self.columns[i] if i < len(self.columns) else None
            if narrow and column is not None and column.compact is not None:
                cell = Text(column.compact(cell.plain), style=cell.style)
            text = cell.copy()
            text.no_wrap = True
            text.end = ""
            text.truncate(w, overflow="ellipsis")
            if column is not None and column.justify == "right":
                text.pad_left(w - text.cell_len)
            else:
                text.pad_right(w - text.cell_len)
            segments.extend(render_cell(text, console))
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
        count = self.source.row_count()
        if index >= count:
            if count == 0 and y == 2 and self.empty:
                style = self.get_component_rich_style("virtual-table--loading")
                line = Text(" " + self.empty, no_wrap=True, end="")
                line.truncate(width, overflow="ellipsis")
                return Strip(render_cell(line, self.app.console)).extend_cell_length(
                    width).apply_style(self.rich_style + style)
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
        if index == self.cursor and self.has_selection and (
                self.selected_key is None or key == self.selected_key):
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
        """The operator moved: select the row at `index` (its item, once loaded)."""
        rows = self.source.row_count()
        index = max(0, min(index, rows - 1)) if rows else 0
        self.has_selection = True
        self.selected_key = self.source.row_key(index)
        self.cursor = index

    def _step(self, delta: int) -> None:
        # With nothing selected, the first step selects the row the cursor is on.
        self.move_cursor(self.cursor + (delta if self.has_selection else 0))

    def action_cursor_up(self) -> None:
        self._step(-1)

    def action_cursor_down(self) -> None:
        self._step(1)

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
        """The selected item's key; None when nothing is selected (or not loaded yet)."""
        if not self.has_selection or self.source.row_count() == 0:
            return None
        key = self.source.row_key(self.cursor)
        if key is None or (self.selected_key is not None and key != self.selected_key):
            return None
        return key

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
