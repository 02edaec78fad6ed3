"""The engine facade: flows, executions, logs, approvals, KV and files behind one object.

Everything above the engine (CLI, server, client, TUI) goes through these methods. They accept
and return core models, raise core errors, and never return before the change they report is
committed to disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite

from flowdeck.core.clock import Clock, SystemClock
from flowdeck.core.errors import (
    ConflictError,
    InvalidFlowError,
    NotFoundError,
    ValidationError,
)
from flowdeck.core.ids import new_id
from flowdeck.core.models import Execution, LogEntry, StateInfo, TaskRun
from flowdeck.core.sanitize import valid_json
from flowdeck.core.staging import CLONE_FLOW, DELETE_FLOW, LIST_FLOW
from flowdeck.core.staging import NAMESPACE as STAGING_NAMESPACE
from flowdeck.core.states import (
    FAILED_STATES,
    RESTARTABLE_STATES,
    SUCCESSFUL_STATES,
    TERMINAL_STATES,
    is_terminal,
)
from flowdeck.core.timefmt import format_instant
from flowdeck.engine import control, namespace_import
from flowdeck.engine.approvals import ApprovalService
from flowdeck.engine.bus import EXECUTION, FLOW, EventBus, ExecutionEvent, FlowEvent, Subscription
from flowdeck.engine.concurrency import Slots
from flowdeck.engine.events import EVENTS, EventLog, EventReader
from flowdeck.engine.files import NamespaceFiles
from flowdeck.engine.flow_search import FlowQuery, search_flows
from flowdeck.engine.flowctl.service import FlowctlService
from flowdeck.engine.flows import FlowDefinition, parse_flow, parse_flow_async
from flowdeck.engine.forge.service import ForgeService
from flowdeck.engine.inputs import resolve_inputs_async
from flowdeck.engine.isolation import TaskIsolation, TaskSettings
from flowdeck.engine.kv import KVStore
from flowdeck.engine.logs import REPLAY_PAGE, LogService
from flowdeck.engine.outbox import Outbox, OutboxSettings
from flowdeck.engine.public.service import PublicService
from flowdeck.engine.query import ExecutionQuery, search_executions
from flowdeck.engine.runner import ExecutionRunner
from flowdeck.engine.secrets import (
    SecretInputs,
    check_given_again,
    secret_ids,
    split,
    without_credentials,
)
from flowdeck.engine.store import DataDirLock, Store, execution_row
from flowdeck.engine.templating import TemplateRenderer
from flowdeck.engine.webhook_triggers import WebhookCall, WebhookStart, WebhookTriggers
from flowdeck.engine.workdirs import WorkDirs

log = logging.getLogger("flowdeck.engine")
ALLOWED_SYSTEM_LABELS = frozenset({"system.correlationId", "system.from"})
#: How long `close` waits for running executions to stop before it closes the store anyway.
CLOSE_DRIVERS_S = 2.0

#: Runs in the transaction that inserts a new execution, before the insert (see
#: `Engine.create_execution`): raise to refuse, or complete the execution.
Admit = Callable[[aiosqlite.Connection, Execution], Awaitable[None]]


class _Duplicate(Exception):
    """An execution with the same trigger key exists (rolls the insert's savepoint back)."""


#: The bundled staging flows, which share one concurrency limit.
STAGING_FLOWS = frozenset({CLONE_FLOW, LIST_FLOW, DELETE_FLOW})


def concurrency_key(flow: FlowDefinition) -> tuple[str, str]:
    """Whose slots a flow's `concurrency` limit counts: its own, except that the bundled staging
    flows (clone, list, delete) share one limit, so at most that many staging executions run at
    once whichever flows they are."""
    if flow.namespace == STAGING_NAMESPACE and flow.id in STAGING_FLOWS:
        return (STAGING_NAMESPACE, "*staging*")
    return (flow.namespace, flow.id)


@dataclass(slots=True)
class EngineSettings:
    data_dir: Path
    max_concurrent_executions: int = 5
    readers: int = 2
    scheduler: bool = True
    #: Every `ENV_*` value by its `{{ envs }}` name; None reads them from the environment.
    envs: dict[str, str] | None = None
    #: How task processes run: environment, public envs, user (`[tasks]`).
    tasks: TaskSettings = field(default_factory=TaskSettings)
    extra: dict[str, Any] = field(default_factory=dict)


def envs_from_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Kestra's convention: `ENV_FOO_BAR` is `{{ envs.foo_bar }}` in templates."""
    source = os.environ if environ is None else environ
    return {k[4:].lower(): v for k, v in source.items() if k.startswith("ENV_") and len(k) > 4}


class Engine:
    def __init__(self, settings: EngineSettings, *, clock: Clock | None = None,
                 ids: Callable[[], str] | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.new_id: Callable[[], str] = ids or new_id
        # Absolute once (a relative one would change meaning with the working directory,
        # and file:// URIs of uploads need it): '..' folded, links kept as configured.
        self.data_dir = Path(os.path.abspath(settings.data_dir.expanduser()))
        self.work_dir = self.data_dir / "work"
        #: Where uploaded FILE inputs are kept: the only local files a FILE input may name.
        self.uploads_dir = self.data_dir / "uploads"
        self.workdirs = WorkDirs(self.work_dir)
        self.lock = DataDirLock(self.data_dir)
        self.store = Store(self.data_dir / "flowdeck.db", self.clock, readers=settings.readers)
        self.bus = EventBus()
        self.logs = LogService(self.store, self.bus, self.clock)
        self.kv = KVStore(self.store, self.clock)
        self.files = NamespaceFiles(self.data_dir / "files")
        self.approvals = ApprovalService(self)
        self.secret_inputs = SecretInputs(self.store)
        #: Lifecycle events (written with the changes they describe) and their webhooks.
        self.outbox = Outbox(self.store.fetchall, self.store.run, self.clock,
                             OutboxSettings.from_extra(settings.extra.get("webhooks")))
        self.events = EventLog(self.clock, self.new_id, self._events_committed)
        self.store.hooks = self.events
        #: FlowCtl workflows (spec 003): submit, views, cancel, metrics, health.
        self.flowctl = FlowctlService(self)
        self.event_reader = EventReader(self.store.fetchall,
                                        lambda: self.bus.subscribe(EVENTS))
        #: Pipeline runs, releases, deployments and release approvals (engine/forge/).
        self.forge = ForgeService(self)
        self.webhook_triggers = WebhookTriggers(self)
        self.renderer = TemplateRenderer()
        #: The engine's own environment as it was at start: for what the engine reads by name
        #: (a delivery token's `token_env`); never handed to task processes.
        self.environ: dict[str, str] = dict(os.environ)
        self.isolation = TaskIsolation(settings.tasks, self.environ)
        every_env = settings.envs if settings.envs is not None else envs_from_environment()
        #: Every `ENV_*` value: webhook trigger keys are rendered with these; never shown.
        self.trigger_envs: dict[str, str] = dict(every_env)
        #: `{{ envs }}` as flows see it: only what `[tasks] public_envs` lists.
        self.envs = self.isolation.public(every_env)
        #: The environment shell tasks start from (not the engine's own: see isolation.py).
        self.task_env: dict[str, str] = self.isolation.base_env()
        #: The public agent API: agents, API keys, their usage and webhooks.
        self.public = PublicService(self)
        self.global_slots = Slots(settings.max_concurrent_executions)
        self.runners: dict[str, ExecutionRunner] = {}
        self._flow_slots: dict[tuple[str, str], Slots] = {}
        self._heads: dict[tuple[str, str], FlowDefinition] = {}
        self._revisions: dict[tuple[str, str, int], FlowDefinition] = {}
        self._drivers: set[asyncio.Task[None]] = set()
        self.shutting_down = False
        #: How this engine runs that an operator should know about (shown by `/health`).
        self.warnings: list[str] = []
        self.scheduler: Any = None
        self._opened = False
        #: Opened beside the engine that owns the data dir: reads only, no lock, never started.
        self.read_only = False

    # -- lifecycle --------------------------------------------------------------------------

    @classmethod
    async def open(cls, settings: EngineSettings, *, clock: Clock | None = None,
                   ids: Callable[[], str] | None = None, start: bool = True,
                   read_only: bool = False) -> Engine:
        """Open (and with `start`, start) the engine. `read_only` reads an existing database
        without taking the data dir's lock, so it works while another process's engine runs
        there; such an engine never starts and refuses every change."""
        engine = cls(settings, clock=clock, ids=ids)
        if read_only:
            await engine._open_read_only()
        else:
            await engine._open(start)
        return engine

    async def _open_read_only(self) -> None:
        await self.store.open(read_only=True)
        try:
            await self._load_flows()
        except BaseException:
            await self.store.close()
            raise
        self.read_only = True
        self._opened = True

    async def _open(self, start: bool) -> None:
        self.warnings.extend(self.isolation.open())
        self.task_env.clear()
        self.task_env.update(self.isolation.base_env())  # with the run_as user's HOME
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.lock.acquire()
        try:
            self.store.on_execution_committed = self._publish_execution
            self.store.on_execution_poisoned = self._execution_poisoned
            await self.store.open()
            await self._load_flows()
            self._opened = True
            if start:
                await self.start()
        except BaseException:
            self.lock.release()
            raise

    async def start(self) -> None:
        """Recover what a previous process left unfinished, then start the scheduler."""
        from flowdeck.engine.recovery import recover
        from flowdeck.engine.store import ReadOnlyStoreError

        if self.read_only:
            raise ReadOnlyStoreError(f"the engine on {self.data_dir} was opened read-only; "
                                     "it cannot start")
        await recover(self)
        if self.settings.scheduler:  # a service (serve, the deck): say it where it is seen
            for warning in self.warnings:
                log.warning("flowdeck: WARNING: %s", warning)
        # Start-up objects live as long as the engine: keep the collector from rescanning them.
        gc.collect()
        gc.freeze()
        if self.settings.scheduler:
            from flowdeck.engine.scheduler import ScheduleService

            self.scheduler = ScheduleService(self)
            await self.scheduler.start()
        await self.forge.start()
        self.outbox.start()

    def _events_committed(self, newest_seq: int) -> None:
        """New events are durable: wake followers and the webhook outbox."""
        self.bus.publish(EVENTS, newest_seq)
        self.outbox.wake()

    async def close(self) -> None:
        """Stop cleanly: running executions stay recoverable, nothing is marked falsely."""
        if not self._opened:
            return
        self.shutting_down = True
        if self.scheduler is not None:
            await self.scheduler.stop()
        await self.forge.stop()
        drivers = list(self._drivers)
        for task in drivers:
            task.cancel()
        if drivers:  # bounded: a store that cannot write must not hold the shutdown
            done, _ = await asyncio.wait(drivers, timeout=CLOSE_DRIVERS_S)
            for task in done:
                if not task.cancelled():
                    task.exception()  # retrieved: a failing store is reported by the store
        await self.outbox.stop()
        self.workdirs.drop_spare()
        await self.store.close()
        self.lock.release()
        self._opened = False

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _publish_execution(self, execution_id: str, state: str, doc: dict[str, Any]) -> None:
        self.bus.publish(EXECUTION, ExecutionEvent(execution_id, state, doc),
                         execution_id=execution_id)

    def _execution_poisoned(self, execution: Execution, reason: str) -> None:
        """Its state cannot be stored (the store wrote a FAILED marker): say why, stop it."""
        self.logs.emit(execution, None, "ERROR", [
            f"flowdeck could not store the state of this execution ({reason}); it is marked "
            "FAILED and stopped"])
        runner = self.runners.get(execution.id)
        if runner is not None and runner.execution is execution and runner.task is not None:
            runner.task.cancel()

    # -- flows ------------------------------------------------------------------------------

    async def _load_flows(self) -> None:
        rows = await self.store.fetchall(
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

    def validate_flow(self, source: str) -> FlowDefinition:
        return parse_flow(source)

    async def validate_flow_async(self, source: str) -> FlowDefinition:
        """`validate_flow` for routes: a big source is parsed off the event loop."""
        return await parse_flow_async(source)

    def list_flows(self, namespace: str | None = None) -> list[FlowDefinition]:
        flows = [f for (ns, _), f in self._heads.items() if namespace is None or ns == namespace]
        return sorted(flows, key=lambda f: (f.namespace, f.id))

    def namespaces(self) -> list[str]:
        return sorted({ns for ns, _ in self._heads})

    def get_flow(self, namespace: str, flow_id: str) -> FlowDefinition:
        flow = self._heads.get((namespace, flow_id))
        if flow is None:
            raise NotFoundError(f"no flow '{flow_id}' in namespace '{namespace}'")
        return flow

    async def get_flow_revision(self, namespace: str, flow_id: str,
                                revision: int | None = None) -> FlowDefinition:
        if revision is None:
            return self.get_flow(namespace, flow_id)
        cached = self._revisions.get((namespace, flow_id, revision))
        if cached is not None:
            return cached
        row = await self.store.fetchone(
            "SELECT source, updated FROM flows WHERE namespace = ? AND id = ? AND revision = ?",
            (namespace, flow_id, revision))
        if row is None:
            raise NotFoundError(f"no revision {revision} of flow '{namespace}.{flow_id}'")
        flow = parse_flow(row[0], revision)
        flow.updated = row[1]
        self._revisions[(namespace, flow_id, revision)] = flow
        return flow

    async def flow_revisions(self, namespace: str, flow_id: str) -> list[FlowDefinition]:
        rows = await self.store.fetchall(
            "SELECT revision FROM flows WHERE namespace = ? AND id = ? ORDER BY revision",
            (namespace, flow_id))
        if not rows:
            raise NotFoundError(f"no flow '{flow_id}' in namespace '{namespace}'")
        return [await self.get_flow_revision(namespace, flow_id, r[0]) for r in rows]

    async def create_flow(self, source: str) -> FlowDefinition:
        flow = await parse_flow_async(source)
        if (flow.namespace, flow.id) in self._heads:
            raise ConflictError(f"flow '{flow.namespace}.{flow.id}' already exists")
        return await self._store_flow(flow)

    async def update_flow(self, namespace: str, flow_id: str, source: str) -> FlowDefinition:
        current = self.get_flow(namespace, flow_id)
        flow = await parse_flow_async(source)
        if (flow.namespace, flow.id) != (namespace, flow_id):
            raise InvalidFlowError([("id", f"the source defines '{flow.namespace}.{flow.id}', "
                                           f"not '{namespace}.{flow_id}'")])
        if flow.source == current.source:
            return current
        return await self._store_flow(flow)

    async def apply_flow(self, source: str) -> tuple[FlowDefinition, str]:
        """Create or update; returns the flow and 'created', 'updated' or 'unchanged'."""
        flow = await parse_flow_async(source)
        current = self._heads.get((flow.namespace, flow.id))
        if current is None:
            return await self._store_flow(flow), "created"
        if current.source == flow.source:
            return current, "unchanged"
        return await self._store_flow(flow), "updated"

    async def _store_flow(self, flow: FlowDefinition) -> FlowDefinition:
        updated = format_instant(self.clock.now())

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
        flow.revision = await self.store.run(op)
        flow.updated = updated
        self._heads[(flow.namespace, flow.id)] = flow
        self._revisions[(flow.namespace, flow.id, flow.revision)] = flow
        self._flow_changed(flow, "created" if created else "updated")
        return flow

    async def delete_flow(self, namespace: str, flow_id: str) -> None:
        flow = self.get_flow(namespace, flow_id)

        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute("UPDATE flow_heads SET deleted = 1 WHERE namespace = ? AND id = ?",
                               (namespace, flow_id))

        await self.store.run(op)
        del self._heads[(namespace, flow_id)]
        self._flow_changed(flow, "deleted")

    def _flow_changed(self, flow: FlowDefinition, kind: str) -> None:
        if self.scheduler is not None:
            self.scheduler.sync_flow(flow.namespace, flow.id)
        slots = self._flow_slots.get(concurrency_key(flow))
        concurrency = self.forge.concurrency_for(flow)
        if slots is not None and concurrency is not None:
            slots.limit = concurrency.limit
        self.bus.publish(FLOW, FlowEvent(kind, flow.namespace, flow.id))

    # -- executions -------------------------------------------------------------------------

    async def create_execution(
        self, namespace: str, flow_id: str, *, inputs: dict[str, Any] | None = None,
        labels: list[tuple[str, str]] | None = None, revision: int | None = None,
        trigger: dict[str, Any] | None = None, parent: Execution | None = None,
        parent_task_run_id: str | None = None, trigger_key: str | None = None,
        schedule_date: datetime | None = None, source: str = "api",
        admit: Admit | None = None,
    ) -> Execution:
        """Create and start an execution; returns once it is durably stored (CREATED).

        `admit` runs inside the transaction that inserts the execution, just before the
        insert: it may refuse (raise, and nothing is written) or complete the execution
        (system labels, variables). A quota charged there is charged exactly once per
        execution that exists.
        """
        flow = await self.get_flow_revision(namespace, flow_id, revision)
        if flow.disabled:
            raise ConflictError(f"flow '{namespace}.{flow_id}' is disabled")
        resolved = await resolve_inputs_async(
            flow.inputs, inputs or {}, render_default=self._default_renderer(flow, trigger),
            uploads=self.uploads_dir)
        shown, secrets = split(flow.inputs, resolved)
        execution = self._new_execution(flow, shown, labels or [], source, parent)
        execution.trigger = valid_json(without_credentials(trigger))
        execution.schedule_date = schedule_date
        if parent is not None:
            execution.parent_id = parent.id
            variables = {"parentTaskRunId": parent_task_run_id} if parent_task_run_id else None
            execution.variables = variables
        inserted = await self._insert(execution, trigger_key, admit, secrets)
        if not inserted:
            raise ConflictError(f"an execution for '{trigger_key}' already exists")
        self.logs.start_fresh(execution.id)
        self._launch(execution, flow, secrets)
        return execution

    def _default_renderer(self, flow: FlowDefinition, trigger: dict[str, Any] | None
                          ) -> Callable[[Any], Any]:
        context = {"flow": {"id": flow.id, "namespace": flow.namespace,
                            "revision": flow.revision},
                   "envs": self.envs, "vars": flow.variables,
                   "trigger": (trigger or {}).get("variables") or {}}
        return lambda value: self.renderer.render_value(value, context)

    def _new_execution(self, flow: FlowDefinition, inputs: dict[str, Any],
                       labels: list[tuple[str, str]], source: str,
                       parent: Execution | None) -> Execution:
        labels = valid_json(labels)
        for key, _ in labels:
            if key.startswith("system.") and key not in ALLOWED_SYSTEM_LABELS:
                raise ValidationError([("labels", f"'{key}' is a reserved system label")])
        execution_id = self.new_id()
        merged: dict[str, str] = dict(flow.labels)
        merged.update(labels)
        correlation = merged.get("system.correlationId")
        if correlation is None:
            correlation = (parent.label("system.correlationId") if parent else None) or execution_id
        merged["system.correlationId"] = correlation
        merged.setdefault("system.from", source)
        now = self.clock.now()
        return Execution(id=execution_id, namespace=flow.namespace, flow_id=flow.id,
                         flow_revision=flow.revision, state=StateInfo.new("CREATED", now),
                         inputs=inputs, labels=list(merged.items()), original_created=now)

    async def _insert(self, execution: Execution, trigger_key: str | None,
                      admit: Admit | None = None,
                      secrets: dict[str, Any] | None = None) -> bool:
        row = execution_row(execution, self.clock.now()) if admit is None else None

        async def op(conn: aiosqlite.Connection) -> tuple[Any, ...]:
            nonlocal row
            if admit is not None:
                await admit(conn, execution)
                row = execution_row(execution, self.clock.now())
            assert row is not None
            try:
                await conn.execute(
                    "INSERT INTO executions(id, namespace, flow_id, flow_revision, state, "
                    "start_date, end_date, labels, parent_id, doc, trigger_key) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?)", (*row[:10], trigger_key))
            except sqlite3.IntegrityError:
                if trigger_key is None:
                    raise
                raise _Duplicate from None  # undoes what `admit` wrote, too
            await self.secret_inputs.insert(conn, execution.id, secrets or {})
            return row

        try:
            inserted = await self.store.run(op)
        except _Duplicate:
            return False
        self._publish_execution(execution.id, execution.state.current, inserted[10])
        return True

    def _launch(self, execution: Execution, flow: FlowDefinition,
                secrets: dict[str, Any] | None = None) -> ExecutionRunner:
        """Start driving `execution`; `secrets` are its clear SECRET inputs when just created
        (otherwise the runner reads them back)."""
        runner = ExecutionRunner(self, execution, flow)
        if secrets is not None:
            runner.use_secrets(secrets)
        self.runners[execution.id] = runner
        task = asyncio.get_running_loop().create_task(self._drive(runner),
                                                      name=f"execution-{execution.id}")
        runner.task = task
        self._drivers.add(task)
        task.add_done_callback(self._drivers.discard)
        return runner

    def _slots_for(self, flow: FlowDefinition) -> Slots | None:
        concurrency = self.forge.concurrency_for(flow)  # pipelines: a limit per repository
        if concurrency is None:
            return None
        key = concurrency_key(flow)
        slots = self._flow_slots.get(key)
        if slots is None:
            slots = self._flow_slots[key] = Slots(concurrency.limit)
        return slots

    async def _drive(self, runner: ExecutionRunner) -> None:
        ex = runner.execution
        flow_slots = self._slots_for(runner.flow)
        holds_flow_slot = False
        try:
            if flow_slots is not None:
                concurrency = self.forge.concurrency_for(runner.flow)
                assert concurrency is not None
                holds_flow_slot = flow_slots.try_acquire()
                if not holds_flow_slot:
                    behavior = concurrency.behavior
                    if behavior in ("CANCEL", "FAIL"):
                        final = "CANCELLED" if behavior == "CANCEL" else "FAILED"
                        runner.execution_log(
                            "WARN" if behavior == "CANCEL" else "ERROR",
                            f"flow concurrency limit of {flow_slots.limit} reached: "
                            f"execution {final.lower()}")
                        runner.set_state(final)
                        await self.store.flush()
                        return
                    runner.set_state("QUEUED")
                    await flow_slots.acquire()
                    holds_flow_slot = True
            await self.global_slots.acquire()
            runner._holds_global_slot = True
            await runner.run()
        except asyncio.CancelledError:
            if self.shutting_down:
                if ex.state.current in ("RUNNING", "RETRYING", "RESTARTED", "KILLING"):
                    runner.execution_log("WARN", "flowdeck stopped while this execution ran; "
                                                 "it continues when flowdeck starts again")
                await self.store.flush()
            elif ex.state.current not in TERMINAL_STATES:
                runner._finish_killed()
                await self.store.flush()
        except Exception as exc:  # the engine must survive a bug in one execution
            runner.execution_log("ERROR", f"internal error: {type(exc).__name__}: {exc}")
            if ex.state.current not in TERMINAL_STATES:
                runner.set_state("FAILED")
            with contextlib.suppress(Exception):
                await self.store.flush()
        finally:
            if runner._holds_global_slot:
                self.global_slots.release()
                runner._holds_global_slot = False
            if holds_flow_slot and flow_slots is not None:
                flow_slots.release()
            if self.runners.get(ex.id) is runner:
                del self.runners[ex.id]
            if not self.shutting_down:
                self.logs.forget(ex.id)
                if is_terminal(ex.state.current) and secret_ids(runner.flow.inputs):
                    self.secret_inputs.forget(ex.id)

    async def get_execution(self, execution_id: str) -> Execution:
        row = await self.store.fetchone("SELECT doc FROM executions WHERE id = ?",
                                        (execution_id,))
        if row is None:
            raise NotFoundError(f"no execution '{execution_id}'")
        return Execution.from_dict(json.loads(row[0]))

    async def get_execution_json(self, execution_id: str) -> str:
        """The execution as Kestra JSON text; a finished one is served as stored (no re-encode)."""
        row = await self.store.fetchone("SELECT state, doc FROM executions WHERE id = ?",
                                        (execution_id,))
        if row is None:
            raise NotFoundError(f"no execution '{execution_id}'")
        if is_terminal(row[0]):
            return str(row[1])
        text, _ = Execution.from_dict(json.loads(row[1])).to_json(self.clock.now())
        return text

    async def get_execution_doc(self, execution_id: str) -> dict[str, Any]:
        """The execution as Kestra JSON, with a duration that is current for running ones."""
        execution = await self.get_execution(execution_id)
        return execution.to_dict(self.clock.now())

    async def search_executions(self, query: ExecutionQuery) -> tuple[list[Execution], int]:
        return await search_executions(self.store, query)

    async def wait_until_terminal(self, execution_id: str,
                                  timeout: float | None = None) -> Execution:
        """Wait for a final state (PAUSED is not final) and for its runner to have let go."""
        sub = self.bus.subscribe(EXECUTION, execution_id=execution_id)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    execution = await self.get_execution(execution_id)
                    if is_terminal(execution.state.current):
                        if execution_id not in self.runners:
                            return execution
                        await self._runner_gone(execution_id)
                        continue
                    while not sub.lagged:  # cheap: events carry the state
                        try:
                            event: ExecutionEvent = await sub.get(1.0)
                        except TimeoutError:
                            break  # a periodic re-check from the store
                        if is_terminal(event.state):
                            # Let the runner go first, so one read of the store settles it.
                            await self._settled(execution_id)
                            break
                    sub.lagged = False
                    while not sub.queue.empty():
                        sub.queue.get_nowait()
        finally:
            sub.close()

    async def _settled(self, execution_id: str) -> None:
        """If the execution just reached a final state, wait for its runner to let go."""
        runner = self.runners.get(execution_id)
        if runner is not None and is_terminal(runner.execution.state.current):
            await self._runner_gone(execution_id)

    async def _runner_gone(self, execution_id: str) -> None:
        runner = self.runners.get(execution_id)
        if runner is not None and runner.task is not None:
            await asyncio.wait({runner.task})

    def watch_executions(self) -> Subscription:
        return self.bus.subscribe(EXECUTION)

    async def kill(self, execution_id: str) -> Execution:
        execution = await self.get_execution(execution_id)
        if is_terminal(execution.state.current):
            raise ConflictError(f"execution {execution_id} is already "
                                f"{execution.state.current}")
        runner = self.runners.get(execution_id)
        if runner is None:
            raise ConflictError(f"execution {execution_id} is not running in this engine")
        live = runner.execution
        if live.state.current != "KILLING":
            live.state.to("KILLING", self.clock.now())
            runner.save()
        await self.store.flush()
        snapshot = Execution.from_dict(live.to_dict(self.clock.now()))
        if runner.task is not None:
            runner.task.cancel()
        # Before the kill is acknowledged: a decision arriving now is refused, not lost.
        await self.approvals.expire_for_execution(execution_id,
                                                  f"execution {execution_id} was killed")
        return snapshot

    async def kill_and_wait(self, execution_id: str, timeout: float = 30) -> Execution:
        await self.kill(execution_id)
        return await self.wait_until_terminal(execution_id, timeout)

    async def pause(self, execution_id: str) -> Execution:
        runner = self.runners.get(execution_id)
        execution = runner.execution if runner else await self.get_execution(execution_id)
        if runner is None or execution.state.current != "RUNNING":
            raise ConflictError(f"execution {execution_id} is {execution.state.current}; "
                                "only a RUNNING execution can be paused")
        runner.request_pause()
        return execution

    async def resume(self, execution_id: str, inputs: dict[str, Any] | None = None,
                     by: str | None = None) -> Execution:
        runner = self.runners.get(execution_id)
        execution = runner.execution if runner else await self.get_execution(execution_id)
        if runner is None or execution.state.current != "PAUSED":
            raise ConflictError(f"execution {execution_id} is {execution.state.current}; "
                                "only a PAUSED execution can be resumed")
        approvals = [a for a in await self.approvals.list("pending", execution_id=execution_id)]
        from flowdeck.engine.tasks.flowable import Pause

        pauses = {k: v for k, v in runner.paused_tasks().items() if isinstance(v, Pause)}
        if pauses or not approvals:
            runner.resume(inputs or {}, by)
        for approval in approvals:
            await self.approvals.decide(approval.id, approve=True, by=by or "api")
        await self.store.flush()
        return Execution.from_dict(runner.execution.to_dict(self.clock.now()))

    async def restart(self, execution_id: str, task_run_id: str | None = None) -> Execution:
        await self._settled(execution_id)
        if execution_id in self.runners:
            raise ConflictError(f"execution {execution_id} is still running")
        execution = await self.get_execution(execution_id)
        if execution.state.current not in RESTARTABLE_STATES:
            raise ConflictError(f"execution {execution_id} is {execution.state.current}; only "
                                f"{', '.join(sorted(RESTARTABLE_STATES))} executions restart")
        flow = await self.get_flow_revision(execution.namespace, execution.flow_id,
                                            execution.flow_revision)
        await self.secret_inputs.require(execution_id, flow.inputs)
        now = self.clock.now()
        reset_for_restart(execution, flow, task_run_id, now)
        execution.attempt_number += 1
        execution.outputs = None
        execution.state.to("RESTARTED", now)
        self.store.stage_execution(execution)
        await self.store.flush()
        await self.logs.prime(execution.id)
        self._launch(execution, flow)
        return Execution.from_dict(execution.to_dict(now))

    async def replay(self, execution_id: str, task_run_id: str | None = None,
                     revision: int | None = None,
                     inputs: dict[str, Any] | None = None) -> Execution:
        source = await self.get_execution(execution_id)
        if not is_terminal(source.state.current):
            raise ConflictError(f"execution {execution_id} is {source.state.current}; "
                                "only a finished execution can be replayed")
        flow = await self.get_flow_revision(source.namespace, source.flow_id,
                                            revision or source.flow_revision)
        given = inputs if inputs is not None else source.inputs
        if inputs is None:
            check_given_again(flow.inputs, given)
        resolved, secrets = split(flow.inputs, await resolve_inputs_async(
            flow.inputs, given, uploads=self.uploads_dir))
        labels = [(k, v) for k, v in source.labels if not k.startswith("system.")]
        replay = self._new_execution(flow, resolved, labels, "replay", None)
        replay.original_id = source.original_id or source.id
        replay.trigger = source.trigger
        replay.set_label("system.correlationId",
                         source.label("system.correlationId") or source.id)
        if task_run_id is not None:
            target = source.find_task_run(task_run_id)
            if target is None:
                raise NotFoundError(f"no task run '{task_run_id}' in execution {execution_id}")
            replay.task_runs = copy_before(source, target, self.new_id, replay.id)
        inserted = await self._insert(replay, None, secrets=secrets)
        assert inserted
        self.logs.start_fresh(replay.id)
        self._launch(replay, flow, secrets)
        return replay

    async def set_labels(self, execution_id: str, labels: list[tuple[str, str]]) -> Execution:
        await self._settled(execution_id)
        execution = await self.get_execution(execution_id)
        if execution_id in self.runners:
            raise ConflictError(f"execution {execution_id} is still running; "
                                "labels can only be set on a finished execution")
        for key, _ in labels:
            if key.startswith("system.") and key not in ALLOWED_SYSTEM_LABELS:
                raise ValidationError([("labels", f"'{key}' is a reserved system label")])
        for key, value in valid_json(labels):
            execution.set_label(key, value)
        self.store.stage_execution(execution)
        await self.store.flush()
        return execution

    async def change_status(self, execution_id: str, status: str) -> Execution:
        await self._settled(execution_id)
        execution = await self.get_execution(execution_id)
        if execution_id in self.runners or not is_terminal(execution.state.current):
            raise ConflictError(f"execution {execution_id} is {execution.state.current}; "
                                "only a finished execution can change status")
        if status not in TERMINAL_STATES:
            raise ValidationError([("status", f"'{status}' is not a terminal state")])
        await self.approvals.check_status_change(execution_id, status)
        execution.state.to(status, self.clock.now())
        self.store.stage_execution(execution)
        await self.store.flush()
        return execution

    async def delete_execution(self, execution_id: str) -> None:
        await self._settled(execution_id)
        if execution_id in self.runners:
            raise ConflictError(f"execution {execution_id} is still running; kill it first")
        await self.get_execution(execution_id)

        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute("DELETE FROM logs WHERE execution_id = ?", (execution_id,))
            await conn.execute("DELETE FROM executions WHERE id = ?", (execution_id,))

        await self.store.run(op)

    async def logs_for(self, execution_id: str, **filters: Any) -> list[Any]:
        await self.get_execution(execution_id)
        return await self.logs.fetch(execution_id, **filters)

    async def log_pages(self, execution_id: str, *, after_seq: int = 0,
                        page_size: int = REPLAY_PAGE, min_level: str | None = None,
                        task_run_id: str | None = None, task_id: str | None = None,
                        attempt: int | None = None) -> AsyncIterator[list[LogEntry]]:
        """All stored lines of an execution (with the filters), a page at a time, for answers
        too big to build at once (`GET /logs/{id}`, downloads); NotFoundError first."""
        await self.get_execution(execution_id)
        async for page in self.logs.pages(execution_id, after_seq=after_seq,
                                          page_size=page_size, min_level=min_level,
                                          task_run_id=task_run_id, task_id=task_id,
                                          attempt=attempt):
            yield page

    def follow_logs(self, execution_id: str, *, after_seq: int = 0,
                    min_level: str | None = None,
                    heartbeat: float | None = None) -> AsyncIterator[Any]:
        return self.logs.follow(execution_id, after_seq=after_seq, min_level=min_level,
                                heartbeat=heartbeat)

    async def storage_health(self) -> dict[str, Any]:
        """`status` UP/DOWN, whether the store can write (a probe), what the writer last went
        through, and `warnings` about how this engine runs."""
        from flowdeck.engine.health import storage_health

        return await storage_health(self)

    # -- services the HTTP dialects call ------------------------------------------------------

    async def put_flow(self, namespace: str, flow_id: str,
                       source: str) -> tuple[FlowDefinition, str]:
        """Create or update the flow at `namespace`/`flow_id`; the source must define that
        flow. Returns the flow and 'created', 'updated' or 'unchanged'."""
        flow = await parse_flow_async(source)
        if (flow.namespace, flow.id) != (namespace, flow_id):
            raise InvalidFlowError([("id", f"the source defines '{flow.namespace}.{flow.id}', "
                                           f"not '{namespace}.{flow_id}'")])
        return await self.apply_flow(source)

    def search_flows(self, query: FlowQuery) -> tuple[list[FlowDefinition], int]:
        return search_flows(self.list_flows(), query)

    async def settled(self, execution_id: str) -> Execution:
        """The execution; a finished one once its runner has let go of it (see control.py)."""
        return await control.settled(self, execution_id)

    async def resume_and_wait(self, execution_id: str, inputs: dict[str, Any], *,
                              by: str | None = None, role: str | None = None) -> Execution:
        """Resume and answer once the execution moved on (see control.py)."""
        return await control.resume_and_wait(self, execution_id, inputs, by=by, role=role)

    async def trigger_webhook(self, namespace: str, flow_id: str, key: str, call: WebhookCall,
                              **options: Any) -> WebhookStart:
        """Start the flow whose webhook trigger holds `key` (see webhook_triggers.py)."""
        return await self.webhook_triggers.trigger(namespace, flow_id, key, call, **options)

    async def put_namespace_file(self, namespace: str, path: str, content: bytes) -> None:
        """Store a namespace file; one under `/_flows/` is imported as a flow."""
        await namespace_import.put_file(self, namespace, path, content)

    async def unpack_namespace_archive(self, namespace: str, content: bytes) -> None:
        """Unpack a zip at the namespace root (flows under `/_flows/` imported)."""
        await namespace_import.unpack_archive(self, namespace, content)


def reset_for_restart(execution: Execution, flow: FlowDefinition, task_run_id: str | None,
                      now: datetime) -> None:
    """Mark what must run again as RESTARTED and drop what must be re-created."""
    handler_ids = set()

    def collect(tasks: list[Any]) -> None:
        for t in tasks:
            handler_ids.add(t.id)
            for _, children in t.children():
                collect(children)

    collect(flow.errors)
    collect(flow.finally_)
    by_id = {tr.id: tr for tr in execution.task_runs}
    keep: list[TaskRun] = []
    to_restart: set[str] = set()
    if task_run_id is not None:
        target = by_id.get(task_run_id)
        if target is None:
            raise NotFoundError(f"no task run '{task_run_id}' in execution {execution.id}")
        position = execution.task_runs.index(target)
        ancestors = _ancestors(target, by_id)
        for i, tr in enumerate(execution.task_runs):
            if tr.task_id in handler_ids:
                continue
            if i < position or tr.id == target.id or tr.id in ancestors:
                keep.append(tr)
        to_restart = {target.id, *ancestors}
        kept_ids = {tr.id for tr in keep}
        keep = [tr for tr in keep if tr.parent_task_run_id is None
                or tr.parent_task_run_id in kept_ids]
    else:
        for tr in execution.task_runs:
            if tr.task_id in handler_ids:
                continue
            keep.append(tr)
            if tr.state.current in FAILED_STATES or tr.state.current not in TERMINAL_STATES:
                to_restart.add(tr.id)
                to_restart.update(_ancestors(tr, by_id))
    for tr in keep:
        if tr.id in to_restart and tr.state.current != "RESTARTED":
            for attempt in tr.attempts:
                if attempt.state.current not in TERMINAL_STATES:
                    attempt.state.to("KILLED", now)
            tr.state.to("RESTARTED", now)
    execution.task_runs = keep


def _ancestors(tr: TaskRun, by_id: dict[str, TaskRun]) -> set[str]:
    out: set[str] = set()
    parent_id = tr.parent_task_run_id
    while parent_id is not None and parent_id not in out:
        out.add(parent_id)
        parent = by_id.get(parent_id)
        parent_id = parent.parent_task_run_id if parent else None
    return out


def copy_before(source: Execution, target: TaskRun, new_id: Callable[[], str],
                execution_id: str) -> list[TaskRun]:
    """Task runs that precede `target`, re-identified for a replay.

    Completed ones are kept as they are (the replay skips them); the target's ancestors are
    kept as fresh CREATED task runs so their completed children stay attached to them.
    """
    position = source.task_runs.index(target)
    by_id = {tr.id: tr for tr in source.task_runs}
    ancestors = _ancestors(target, by_id)
    mapping: dict[str, str] = {}
    copied: list[TaskRun] = []
    for tr in source.task_runs:
        is_ancestor = tr.id in ancestors
        if not is_ancestor and (source.task_runs.index(tr) >= position
                                or tr.state.current not in SUCCESSFUL_STATES):
            continue
        if tr.parent_task_run_id is not None and tr.parent_task_run_id not in mapping:
            continue
        clone = TaskRun.from_dict(tr.to_dict(tr.state.histories[-1].date))
        mapping[tr.id] = clone.id = new_id()
        clone.execution_id = execution_id
        if is_ancestor:
            clone.state = StateInfo.new("CREATED", tr.state.start_date)
            clone.attempts = []
            clone.outputs = None
        if tr.parent_task_run_id is not None:
            clone.parent_task_run_id = mapping[tr.parent_task_run_id]
        copied.append(clone)
    return copied


