"""Execution search: filters, sorting and paging over indexed columns, never over JSON docs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flowdeck.core.errors import BadRequestError
from flowdeck.core.models import Execution
from flowdeck.core.timefmt import format_instant

if TYPE_CHECKING:
    from flowdeck.engine.store import Store

SORT_COLUMNS = {
    "state.startDate": "start_date", "startDate": "start_date", "start_date": "start_date",
    "state.endDate": "end_date", "endDate": "end_date",
    "state.current": "state", "state": "state",
    "namespace": "namespace", "flowId": "flow_id", "id": "id",
}
MAX_PAGE_SIZE = 10_000


@dataclass(slots=True)
class ExecutionQuery:
    namespace: str | None = None
    namespace_mode: str = "PREFIX"  # EQUALS | PREFIX | STARTS_WITH | CONTAINS
    flow_id: str | None = None
    states: list[str] | None = None
    exclude_states: list[str] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    start_after: datetime | None = None
    start_before: datetime | None = None
    q: str | None = None
    child_filter: str | None = None  # CHILD | MAIN
    parent_id: str | None = None
    page: int = 1
    size: int = 10
    sort: list[tuple[str, bool]] = field(default_factory=lambda: [("state.startDate", True)])

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.namespace:
            if self.namespace_mode == "EQUALS":
                clauses.append("namespace = ?")
                params.append(self.namespace)
            elif self.namespace_mode == "CONTAINS":
                clauses.append("instr(namespace, ?) > 0")
                params.append(self.namespace)
            else:
                clauses.append("(namespace = ? OR substr(namespace, 1, ?) = ?)")
                params.extend([self.namespace, len(self.namespace) + 1, self.namespace + "."])
        if self.flow_id:
            clauses.append("flow_id = ?")
            params.append(self.flow_id)
        if self.states:
            clauses.append(f"state IN ({','.join('?' * len(self.states))})")
            params.extend(self.states)
        if self.exclude_states:
            clauses.append(f"state NOT IN ({','.join('?' * len(self.exclude_states))})")
            params.extend(self.exclude_states)
        for key, value in self.labels.items():
            clauses.append("EXISTS (SELECT 1 FROM json_each(labels) WHERE json_each.key = ?"
                           " AND json_each.value = ?)")
            params.extend([key, value])
        if self.start_after is not None:
            clauses.append("start_date >= ?")
            params.append(format_instant(self.start_after))
        if self.start_before is not None:
            clauses.append("start_date <= ?")
            params.append(format_instant(self.start_before))
        if self.q:
            clauses.append("(instr(id, ?) > 0 OR instr(namespace, ?) > 0 OR instr(flow_id, ?) > 0)")
            params.extend([self.q, self.q, self.q])
        if self.child_filter == "CHILD":
            clauses.append("parent_id IS NOT NULL")
        elif self.child_filter == "MAIN":
            clauses.append("parent_id IS NULL")
        if self.parent_id:
            clauses.append("parent_id = ?")
            params.append(self.parent_id)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def order_by(self) -> str:
        parts = []
        for name, desc in self.sort or [("state.startDate", True)]:
            column = SORT_COLUMNS.get(name)
            if column is None:
                raise BadRequestError(f"cannot sort by '{name}'; use one of "
                                      f"{', '.join(sorted(SORT_COLUMNS))}")
            parts.append(f"{column} {'DESC' if desc else 'ASC'}")
        parts.append("id DESC")
        return " ORDER BY " + ", ".join(parts)

    def check(self) -> None:
        if self.page < 1:
            raise BadRequestError(f"page must be 1 or more, got {self.page}")
        if not 1 <= self.size <= MAX_PAGE_SIZE:
            raise BadRequestError(f"size must be between 1 and {MAX_PAGE_SIZE}, got {self.size}")


async def search_executions(store: Store, query: ExecutionQuery) -> tuple[list[Execution], int]:
    query.check()
    where, params = query.where()
    total_row = await store.fetchone(f"SELECT COUNT(*) FROM executions{where}", params)
    total = int(total_row[0]) if total_row else 0
    rows = await store.fetchall(
        f"SELECT doc FROM executions{where}{query.order_by()} LIMIT ? OFFSET ?",
        [*params, query.size, (query.page - 1) * query.size])
    return [Execution.from_dict(json.loads(r[0])) for r in rows], total


#: Kestra's `QueryFilter.Field` names whose distinct values `distinct_values` lists, and
#: their columns.
DISTINCT_COLUMNS = {"NAMESPACE": "namespace", "FLOW_ID": "flow_id", "STATE": "state"}


async def distinct_values(store: Store, query: ExecutionQuery, field_name: str,
                          size: int) -> list[str]:
    """The distinct values of one field over the executions the query matches, sorted, at
    most `size` of them; another field is a `BadRequestError`."""
    column = DISTINCT_COLUMNS.get(field_name.upper())
    if column is None:
        raise BadRequestError(f"cannot list the distinct values of '{field_name}'; use one of "
                              f"{', '.join(DISTINCT_COLUMNS)}")
    where, params = query.where()
    rows = await store.fetchall(
        f"SELECT DISTINCT {column} FROM executions{where} ORDER BY {column} LIMIT ?",
        [*params, size])
    return [str(r[0]) for r in rows if r[0] is not None]
