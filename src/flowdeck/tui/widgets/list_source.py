"""A small in-memory source for VirtualTable (flows, approvals): rows are fully loaded."""

from __future__ import annotations

from rich.text import Text


class ListSource:
    def __init__(self) -> None:
        self.keys: list[str] = []
        self.cells: list[list[Text]] = []

    def set_rows(self, rows: list[tuple[str, list[Text]]]) -> None:
        self.keys = [k for k, _ in rows]
        self.cells = [c for _, c in rows]

    def row_count(self) -> int:
        return len(self.keys)

    def row(self, index: int) -> list[Text] | None:
        return self.cells[index] if 0 <= index < len(self.cells) else None

    def row_key(self, index: int) -> str | None:
        return self.keys[index] if 0 <= index < len(self.keys) else None
