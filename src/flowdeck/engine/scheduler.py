"""Schedule triggers: APScheduler wakes us at each cron time; the database decides what fires.

The flows table is the source of truth: jobs are rebuilt from it at start and whenever a flow
changes. A fire creates an execution under a unique key (flow, trigger, fire time), so a time
never fires twice, and after downtime the missed times are coalesced into one run for the
latest of them.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from flowdeck.core.errors import FlowdeckError
from flowdeck.core.timefmt import format_instant, parse_instant
from flowdeck.engine.flows import FlowDefinition, ScheduleTrigger

if TYPE_CHECKING:
    import aiosqlite

    from flowdeck.engine.engine import Engine

log = logging.getLogger("flowdeck.scheduler")
SEARCH_LIMIT = 20_000


def cron_trigger(trigger: ScheduleTrigger) -> CronTrigger:
    fields = trigger.crontab().split()
    if trigger.withSeconds:
        second, minute, hour, day, month, dow = fields
        return CronTrigger(second=second, minute=minute, hour=hour, day=day, month=month,
                           day_of_week=dow, timezone=trigger.timezone)
    return CronTrigger.from_crontab(" ".join(fields), timezone=trigger.timezone)


def next_fire(cron: CronTrigger, after: datetime) -> datetime | None:
    """The first fire time strictly after `after`."""
    fire = cron.get_next_fire_time(None, after + timedelta(microseconds=1))
    return fire.astimezone(UTC) if fire is not None else None


def latest_fire(cron: CronTrigger, since: datetime, now: datetime) -> datetime | None:
    """The latest fire time in (since, now], or None; bounded however long the gap."""
    start = max(since, now - timedelta(days=1))
    for window_start in ((start, since) if start > since else (since,)):
        found = None
        cursor = window_start
        for _ in range(SEARCH_LIMIT):
            fire = next_fire(cron, cursor)
            if fire is None or fire > now:
                break
            found = cursor = fire
        if found is not None:
            return found
    return None


class ScheduleService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.scheduler: AsyncIOScheduler | None = None
        self._jobs: dict[tuple[str, str], list[str]] = {}

    async def start(self) -> None:
        self.scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": 300})
        self.scheduler.start()
        for flow in self.engine.list_flows():
            self.sync_flow(flow.namespace, flow.id)
        await self.tick(self.engine.clock.now())

    async def stop(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def sync_flow(self, namespace: str, flow_id: str) -> None:
        """Rebuild this flow's jobs from its current revision (or drop them)."""
        if self.scheduler is None:
            return
        for job_id in self._jobs.pop((namespace, flow_id), []):
            with contextlib.suppress(Exception):
                self.scheduler.remove_job(job_id)
        try:
            flow = self.engine.get_flow(namespace, flow_id)
        except FlowdeckError:
            return
        if flow.disabled:
            return
        ids = []
        for trigger in flow.schedules:
            if trigger.disabled:
                continue
            job_id = f"{namespace}/{flow_id}/{trigger.id}"
            self.scheduler.add_job(self._on_fire, cron_trigger(trigger), id=job_id,
                                   args=(namespace, flow_id, trigger.id), replace_existing=True)
            ids.append(job_id)
        self._jobs[(namespace, flow_id)] = ids

    async def _on_fire(self, namespace: str, flow_id: str, trigger_id: str) -> None:
        try:
            flow = self.engine.get_flow(namespace, flow_id)
        except FlowdeckError:
            return
        for trigger in flow.schedules:
            if trigger.id == trigger_id:
                await self.tick_trigger(flow, trigger, self.engine.clock.now())

    async def tick(self, now: datetime) -> int:
        """Fire every schedule that is due at `now`; returns how many executions started."""
        fired = 0
        for flow in self.engine.list_flows():
            if flow.disabled:
                continue
            for trigger in flow.schedules:
                if not trigger.disabled and await self.tick_trigger(flow, trigger, now):
                    fired += 1
        return fired

    async def _last_fire(self, flow: FlowDefinition, trigger: ScheduleTrigger) -> datetime | None:
        row = await self.engine.store.fetchone(
            "SELECT last_fire FROM schedule_state WHERE namespace = ? AND flow_id = ? "
            "AND trigger_id = ?", (flow.namespace, flow.id, trigger.id))
        return parse_instant(row[0]) if row else None

    async def _record(self, flow: FlowDefinition, trigger: ScheduleTrigger,
                      fire: datetime) -> None:
        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "INSERT INTO schedule_state(namespace, flow_id, trigger_id, last_fire) "
                "VALUES (?,?,?,?) ON CONFLICT(namespace, flow_id, trigger_id) DO UPDATE SET "
                "last_fire = MAX(last_fire, excluded.last_fire)",
                (flow.namespace, flow.id, trigger.id, format_instant(fire)))

        await self.engine.store.run(op)

    async def tick_trigger(self, flow: FlowDefinition, trigger: ScheduleTrigger,
                           now: datetime) -> bool:
        if await self.engine.triggers.paused(flow.namespace, flow.id, trigger.id):
            return False  # paused from the API (engine/triggers.py)
        cron = cron_trigger(trigger)
        last = await self._last_fire(flow, trigger)
        if last is None:
            # A new schedule starts from now; Kestra does not backfill unless asked.
            await self._record(flow, trigger, now)
            last = now - timedelta(seconds=1)
            if latest_fire(cron, last, now) is None:
                return False
        fire = latest_fire(cron, last, now)
        if fire is None:
            return False
        previous = last
        following = next_fire(cron, fire)
        variables: dict[str, Any] = {"date": format_instant(fire),
                                     "previous": format_instant(previous)}
        if following is not None:
            variables["next"] = format_instant(following)
        key = f"schedule:{flow.namespace}:{flow.id}:{trigger.id}:{format_instant(fire)}"
        try:
            await self.engine.create_execution(
                flow.namespace, flow.id, inputs=dict(trigger.inputs), trigger_key=key,
                trigger={"id": trigger.id, "type": trigger.type, "variables": variables},
                schedule_date=fire, source="trigger")
        except FlowdeckError as exc:
            log.warning("schedule %s of %s.%s did not start: %s", trigger.id, flow.namespace,
                        flow.id, exc)
            await self._record(flow, trigger, fire)
            return False
        await self._record(flow, trigger, fire)
        return True
