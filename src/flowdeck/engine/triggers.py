"""Triggers as things to list and operate: every flow's Schedule and Webhook triggers with
their state, paused and resumed from the API without a new flow revision.

A trigger's state is what the engine knows of it: whether it is disabled (by its flow, by
its own `disabled`, or paused from the API, which `trigger_states` keeps), when a schedule
last fired and when it fires next. Pausing a schedule stops its fires; resuming it starts
again from now (the times missed while paused are not caught up, unless asked). flowdeck's
triggers never hold a lock on a running execution, so there is nothing to unlock; restarting
(or deleting) a trigger's state forgets when it last fired: the schedule starts from now.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flowdeck.core.errors import ConflictError, NotFoundError
from flowdeck.core.timefmt import format_instant, parse_instant
from flowdeck.engine.flows import FlowDefinition, ScheduleTrigger
from flowdeck.engine.scheduler import cron_trigger, next_fire

if TYPE_CHECKING:
    import aiosqlite

    from flowdeck.engine.engine import Engine

TriggerKey = tuple[str, str, str]  # namespace, flow id, trigger id
SORTS = {"namespace": 0, "flowId": 1, "triggerId": 2}


@dataclass(slots=True)
class TriggerState:
    """One trigger of a flow and what the engine knows of it."""

    namespace: str
    flow_id: str
    trigger_id: str
    kind: str  # "SCHEDULE" | "WEBHOOK"
    definition: dict[str, Any]
    disabled: bool
    paused: bool  # disabled from the API (as opposed to by the flow)
    last_fire: datetime | None
    next_fire: datetime | None
    updated: datetime

    @property
    def key(self) -> TriggerKey:
        return self.namespace, self.flow_id, self.trigger_id


@dataclass(slots=True)
class TriggerQuery:
    namespace: str | None = None
    namespace_exact: bool = False
    flow_id: str | None = None
    q: str | None = None
    page: int = 1
    size: int = 10
    sort: tuple[tuple[str, bool], ...] = ()


class TriggerService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def _rows(self, table: str, column: str) -> dict[TriggerKey, Any]:
        rows = await self.engine.store.fetchall(
            f"SELECT namespace, flow_id, trigger_id, {column} FROM {table}")
        return {(r[0], r[1], r[2]): r[3] for r in rows}

    async def paused(self, namespace: str, flow_id: str, trigger_id: str) -> bool:
        row = await self.engine.store.fetchone(
            "SELECT disabled FROM trigger_states WHERE namespace = ? AND flow_id = ? "
            "AND trigger_id = ?", (namespace, flow_id, trigger_id))
        return bool(row and row[0])

    async def states(self, flows: list[FlowDefinition] | None = None) -> list[TriggerState]:
        """Every trigger of the current flows (or of `flows`), in flow order."""
        paused = await self._rows("trigger_states", "disabled")
        fired = await self._rows("schedule_state", "last_fire")
        now = self.engine.clock.now()
        out = []
        for flow in self.engine.list_flows() if flows is None else flows:
            for raw in flow.raw.get("triggers") or []:
                state = _state(flow, raw, paused, fired, now)
                if state is not None:
                    out.append(state)
        return out

    async def search(self, query: TriggerQuery) -> tuple[list[TriggerState], int]:
        found = [s for s in await self.states() if _matches(s, query)]
        for name, descending in reversed(query.sort or (("namespace", False),
                                                        ("flowId", False))):
            index = SORTS.get(name)
            if index is not None:
                found.sort(key=_sort_key(index), reverse=descending)
        start = (query.page - 1) * query.size
        return found[start:start + query.size], len(found)

    async def get(self, namespace: str, flow_id: str, trigger_id: str) -> TriggerState:
        flow = self.engine.get_flow(namespace, flow_id)  # NotFoundError for an unknown flow
        for state in await self.states([flow]):
            if state.trigger_id == trigger_id:
                return state
        raise NotFoundError(f"no trigger '{trigger_id}' in flow '{namespace}.{flow_id}'")

    async def set_disabled(self, keys: list[TriggerKey], disabled: bool, *,
                           recover_missed: bool = False) -> list[TriggerState]:
        """Pause (or resume) each trigger; every key must name a trigger (checked first)."""
        for key in keys:
            await self.get(*key)
        now = self.engine.clock.now()
        stamp = format_instant(now)

        async def op(conn: aiosqlite.Connection) -> None:
            for namespace, flow_id, trigger_id in keys:
                await conn.execute(
                    "INSERT INTO trigger_states(namespace, flow_id, trigger_id, disabled, "
                    "updated) VALUES (?,?,?,?,?) ON CONFLICT(namespace, flow_id, trigger_id) "
                    "DO UPDATE SET disabled = excluded.disabled, updated = excluded.updated",
                    (namespace, flow_id, trigger_id, int(disabled), stamp))
                if not disabled and not recover_missed:  # start again from now
                    await conn.execute(
                        "UPDATE schedule_state SET last_fire = MAX(last_fire, ?) WHERE "
                        "namespace = ? AND flow_id = ? AND trigger_id = ?",
                        (stamp, namespace, flow_id, trigger_id))

        await self.engine.store.run(op)
        return [await self.get(*key) for key in keys]

    async def unlock(self, namespace: str, flow_id: str, trigger_id: str) -> TriggerState:
        """Kestra frees a trigger stuck on a running execution; flowdeck's never are."""
        await self.get(namespace, flow_id, trigger_id)
        raise ConflictError(f"trigger '{trigger_id}' of '{namespace}.{flow_id}' is not "
                            "locked (flowdeck triggers never wait on an execution)")

    async def reset(self, namespace: str, flow_id: str, trigger_id: str) -> TriggerState:
        """Forget when the trigger last fired (and any pause): it starts again from now."""
        await self.reset_many([(namespace, flow_id, trigger_id)])
        return await self.get(namespace, flow_id, trigger_id)

    async def reset_many(self, keys: list[TriggerKey]) -> int:
        """`reset` each trigger (Kestra's delete of a trigger's state); every key must name
        a trigger (checked first). Returns how many were reset."""
        for key in keys:
            await self.get(*key)

        async def op(conn: aiosqlite.Connection) -> None:
            for key in keys:
                for table in ("schedule_state", "trigger_states"):
                    await conn.execute(
                        f"DELETE FROM {table} WHERE namespace = ? AND flow_id = ? "
                        "AND trigger_id = ?", key)

        await self.engine.store.run(op)
        return len(keys)


def _sort_key(index: int) -> Callable[[TriggerState], str]:
    return lambda state: state.key[index]


def _state(flow: FlowDefinition, raw: Any, paused: dict[TriggerKey, Any],
           fired: dict[TriggerKey, Any], now: datetime) -> TriggerState | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        return None
    key = (flow.namespace, flow.id, raw["id"])
    schedule = next((s for s in flow.schedules if s.id == raw["id"]), None)
    last = parse_instant(fired[key]) if fired.get(key) else None
    is_paused = bool(paused.get(key))
    disabled = flow.disabled or bool(raw.get("disabled")) or is_paused
    return TriggerState(
        namespace=flow.namespace, flow_id=flow.id, trigger_id=raw["id"],
        kind="SCHEDULE" if schedule is not None else "WEBHOOK", definition=raw,
        disabled=disabled, paused=is_paused, last_fire=last,
        next_fire=None if schedule is None or disabled else _next(schedule, last or now),
        updated=last or now)


def _next(schedule: ScheduleTrigger, after: datetime) -> datetime | None:
    return next_fire(cron_trigger(schedule), after)


def _matches(state: TriggerState, query: TriggerQuery) -> bool:
    if query.namespace:
        exact = state.namespace == query.namespace
        child = state.namespace.startswith(query.namespace.rstrip(".") + ".")
        if not (exact or (child and not query.namespace_exact)):
            return False
    if query.flow_id and state.flow_id != query.flow_id:
        return False
    if query.q:
        needle = query.q.lower()
        if not any(needle in part.lower() for part in state.key):
            return False
    return True
