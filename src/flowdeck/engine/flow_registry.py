"""Flows: every revision stored, the current ones held in memory.

Each create or update stores a new revision (an unchanged source stores none); a delete marks
the flow deleted and keeps its revisions, so executions keep the revision they started with and
a re-created flow continues the numbering. Current flows are answered from memory; older
revisions are read once and cached; a big source is parsed off the event loop.
`on_change(flow, kind)` hears of every change ('created', 'updated', 'deleted') once it is
committed.
"""

from __future__ import annotations

from collections.abc import Callable

import aiosqlite

from flowdeck.core.clock import Clock
from flowdeck.core.errors import ConflictError, InvalidFlowError, NotFoundError, ValidationError
from flowdeck.core.states import TERMINAL_STATES
from flowdeck.core.timefmt import format_instant
from flowdeck.engine.flow_search import FlowQuery, search_flows
from flowdeck.engine.flows import FlowDefinition, parse_flow, parse_flow_async
from flowdeck.engine.source_search import SourceHit, SourceQuery, off_loop, search_sources
from flowdeck.engine.store import Store

FlowChanged = Callable[[FlowDefinition, str], None]


class FlowRegistry:
    def __init__(self, store: Store, clock: Clock, on_change: FlowChanged) -> None:
        self._store = store
        self._clock = clock
        self._on_change = on_change
        self._heads: dict[tuple[str, str], FlowDefinition] = {}
        self._revisions: dict[tuple[str, str, int], FlowDefinition] = {}

    async def load(self) -> None:
        rows = await self._store.fetchall(
            "SELECT f.namespace, f.id, f.revision, f.source, f.updated FROM flow_heads h "
            "JOIN flows f ON f.namespace = h.namespace AND f.id = h.id AND "
            "f.revision = h.revision WHERE h.deleted = 0")
        for ns, fid, rev, source, updated in rows:
            try:
                flow = parse_flow(source, rev)
            except InvalidFlowError:
                continue  # a flow stored by an older version that no longer validates
            flow.updated = updated
            self._heads[(ns, fid)] = flow
            self._revisions[(ns, fid, rev)] = flow

    def validate(self, source: str) -> FlowDefinition:
        return parse_flow(source)

    def current(self, namespace: str | None = None) -> list[FlowDefinition]:
        flows = [f for (ns, _), f in self._heads.items() if namespace is None or ns == namespace]
        return sorted(flows, key=lambda f: (f.namespace, f.id))

    def namespaces(self) -> list[str]:
        return sorted({ns for ns, _ in self._heads})

    def search(self, query: FlowQuery) -> tuple[list[FlowDefinition], int]:
        return search_flows(self.current(), query)

    async def search_sources(self, query: SourceQuery) -> tuple[list[SourceHit], int]:
        """The current flows whose YAML matches (`engine/source_search.py`), off the loop."""
        return await off_loop(search_sources, self.current(), query)

    def get(self, namespace: str, flow_id: str) -> FlowDefinition:
        flow = self._heads.get((namespace, flow_id))
        if flow is None:
            raise NotFoundError(f"no flow '{flow_id}' in namespace '{namespace}'")
        return flow

    async def get_revision(self, namespace: str, flow_id: str,
                           revision: int | None = None) -> FlowDefinition:
        if revision is None:
            return self.get(namespace, flow_id)
        cached = self._revisions.get((namespace, flow_id, revision))
        if cached is not None:
            return cached
        row = await self._store.fetchone(
            "SELECT source, updated FROM flows WHERE namespace = ? AND id = ? AND revision = ?",
            (namespace, flow_id, revision))
        if row is None:
            raise NotFoundError(f"no revision {revision} of flow '{namespace}.{flow_id}'")
        flow = parse_flow(row[0], revision)
        flow.updated = row[1]
        self._revisions[(namespace, flow_id, revision)] = flow
        return flow

    async def revisions(self, namespace: str, flow_id: str) -> list[FlowDefinition]:
        rows = await self._store.fetchall(
            "SELECT revision FROM flows WHERE namespace = ? AND id = ? ORDER BY revision",
            (namespace, flow_id))
        if not rows:
            raise NotFoundError(f"no flow '{flow_id}' in namespace '{namespace}'")
        return [await self.get_revision(namespace, flow_id, r[0]) for r in rows]

    async def delete_revisions(self, namespace: str, flow_id: str,
                               revisions: list[int]) -> int:
        """Forget older revisions of a current flow; never its current one (a 422). A
        revision it never had is skipped. Returns how many were deleted."""
        flow = self.get(namespace, flow_id)
        if flow.revision in revisions:
            raise ValidationError([("revisions", f"cannot delete revision {flow.revision}, the "
                                                 "flow's current revision")])
        wanted = sorted(set(revisions))
        await self._refuse_in_use(namespace, flow_id, wanted)

        async def op(conn: aiosqlite.Connection) -> int:
            marks = ",".join("?" * len(wanted))
            cursor = await conn.execute(
                f"DELETE FROM flows WHERE namespace = ? AND id = ? AND revision IN ({marks})",
                (namespace, flow_id, *wanted))
            return int(cursor.rowcount or 0)

        deleted = await self._store.run(op) if wanted else 0
        for revision in wanted:
            self._revisions.pop((namespace, flow_id, revision), None)
        return deleted

    async def _refuse_in_use(self, namespace: str, flow_id: str, revisions: list[int]) -> None:
        """An unfinished execution still needs its revision (to resume, or to recover after a
        restart of the server): deleting it is a 409."""
        if not revisions:
            return
        marks, done = ",".join("?" * len(revisions)), ",".join("?" * len(TERMINAL_STATES))
        row = await self._store.fetchone(
            f"SELECT id, flow_revision FROM executions WHERE namespace = ? AND flow_id = ? AND "
            f"flow_revision IN ({marks}) AND state NOT IN ({done}) LIMIT 1",
            (namespace, flow_id, *revisions, *sorted(TERMINAL_STATES)))
        if row is not None:
            raise ConflictError(f"revision {row[1]} is still used by execution {row[0]}, which "
                                "has not finished")

    async def create(self, source: str) -> FlowDefinition:
        flow = await parse_flow_async(source)
        if (flow.namespace, flow.id) in self._heads:
            raise ConflictError(f"flow '{flow.namespace}.{flow.id}' already exists")
        return await self._store_flow(flow)

    async def update(self, namespace: str, flow_id: str, source: str) -> FlowDefinition:
        self.get(namespace, flow_id)
        flow, _ = await self.put(namespace, flow_id, source)
        return flow

    async def put(self, namespace: str, flow_id: str,
                  source: str) -> tuple[FlowDefinition, str]:
        """Create or update the flow at `namespace`/`flow_id`; the source must define that
        flow. Returns the flow and 'created', 'updated' or 'unchanged'."""
        flow = await parse_flow_async(source)
        if (flow.namespace, flow.id) != (namespace, flow_id):
            raise InvalidFlowError([("id", f"the source defines '{flow.namespace}.{flow.id}', "
                                           f"not '{namespace}.{flow_id}'")])
        return await self._apply(flow)

    async def apply(self, source: str) -> tuple[FlowDefinition, str]:
        """Create or update; returns the flow and 'created', 'updated' or 'unchanged'."""
        return await self._apply(await parse_flow_async(source))

    async def _apply(self, flow: FlowDefinition) -> tuple[FlowDefinition, str]:
        current = self._heads.get((flow.namespace, flow.id))
        if current is None:
            return await self._store_flow(flow), "created"
        if current.source == flow.source:
            return current, "unchanged"
        return await self._store_flow(flow), "updated"

    async def _store_flow(self, flow: FlowDefinition) -> FlowDefinition:
        updated = format_instant(self._clock.now())

        async def op(conn: aiosqlite.Connection) -> int:
            cursor = await conn.execute(
                "SELECT COALESCE(MAX(revision), 0) FROM flows WHERE namespace = ? AND id = ?",
                (flow.namespace, flow.id))
            row = await cursor.fetchone()
            revision = int(row[0] if row else 0) + 1
            await conn.execute(
                "INSERT INTO flows(namespace, id, revision, source, updated) VALUES (?,?,?,?,?)",
                (flow.namespace, flow.id, revision, flow.source, updated))
            await conn.execute(
                "INSERT INTO flow_heads(namespace, id, revision, deleted) VALUES (?,?,?,0) "
                "ON CONFLICT(namespace, id) DO UPDATE SET revision = excluded.revision, "
                "deleted = 0", (flow.namespace, flow.id, revision))
            return revision

        created = (flow.namespace, flow.id) not in self._heads
        flow.revision = await self._store.run(op)
        flow.updated = updated
        self._heads[(flow.namespace, flow.id)] = flow
        self._revisions[(flow.namespace, flow.id, flow.revision)] = flow
        self._on_change(flow, "created" if created else "updated")
        return flow

    async def delete(self, namespace: str, flow_id: str) -> None:
        flow = self.get(namespace, flow_id)

        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute("UPDATE flow_heads SET deleted = 1 WHERE namespace = ? AND id = ?",
                               (namespace, flow_id))

        await self._store.run(op)
        del self._heads[(namespace, flow_id)]
        self._on_change(flow, "deleted")
