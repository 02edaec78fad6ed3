"""A small in-memory source for VirtualTable (flows, approvals): rows are fully loaded."""

from __future__ import annotations

from rich.text import Text

from flowdeck.tui.widgets.table import GONE


class ListSource:
    def __init__(self) -> None:
        self.keys: list[str] = []
        self.cells: list[list[Text]] = []
        self._index: dict[str, int] = {}

    def set_rows(self, rows: list[tuple[str, list[Text]]]) -> None:
        self.keys = [k for k, _ in rows]
        self.cells = [c for _, c in rows]
        self._index = {k: i for i, k in enumerate(self.keys)}

    def row_count(self) -> int:
        return len(self.keys)

    def row(self, index: int) -> list[Text] | None:
        return self.cells[index] if 0 <= index < len(self.cells) else None

    def row_key(self, index: int) -> str | None:
        return self.keys[index] if 0 <= index < len(self.keys) else None

    def index_of(self, key: str) -> int | None:
        return self._index.get(key, GONE)
