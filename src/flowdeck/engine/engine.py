"""The engine facade: flows, executions, logs, approvals, KV and files behind one object.

Everything above the engine (CLI, server, client, TUI) goes through these methods. They accept
and return core models, raise core errors, and never return before the change they report is
committed to disk. The services it wires together do the work: `FlowRegistry`,
`ExecutionService`, the launcher (running executions within the concurrency limits), logs,
approvals, KV, files, events and the outbox, webhook triggers, forge, FlowCtl and the public
API. Its internals (`_bus`, `_launcher`) are its own modules'; tasks see `TaskServices`.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from flowdeck.core.clock import Clock, SystemClock
from flowdeck.core.ids import new_id
from flowdeck.core.models import Execution, LogEntry
from flowdeck.engine import control
from flowdeck.engine.approvals import ApprovalService
from flowdeck.engine.bus import EXECUTION, FLOW, EventBus, ExecutionEvent, FlowEvent, Subscription
from flowdeck.engine.events import EVENTS, EventLog, EventReader
from flowdeck.engine.executions import Admit, ExecutionService
from flowdeck.engine.files import NamespaceFiles
from flowdeck.engine.flow_policy import FlowPolicies
from flowdeck.engine.flow_registry import FlowRegistry
from flowdeck.engine.flowctl.service import FlowctlService
from flowdeck.engine.flows import FlowDefinition, parse_flow_async
from flowdeck.engine.forge.service import ForgeService
from flowdeck.engine.isolation import TaskIsolation, TaskSettings
from flowdeck.engine.kv import KVStore
from flowdeck.engine.launcher import Launcher
from flowdeck.engine.logs import REPLAY_PAGE, LogService
from flowdeck.engine.namespace_import import NamespaceImport
from flowdeck.engine.outbox import Outbox, OutboxSettings
from flowdeck.engine.public.service import PublicService
from flowdeck.engine.query import ExecutionQuery
from flowdeck.engine.secrets import SecretInputs
from flowdeck.engine.store import DataDirLock, Store
from flowdeck.engine.task_services import TaskServices
from flowdeck.engine.templating import TemplateRenderer
from flowdeck.engine.webhook_triggers import WebhookTriggers
from flowdeck.engine.workdirs import WorkDirs

__all__ = ["Admit", "Engine", "EngineSettings", "envs_from_environment"]

log = logging.getLogger("flowdeck.engine")


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
        self._bus = EventBus()
        self.logs = LogService(self.store, self._bus, self.clock)
        self.kv = KVStore(self.store, self.clock)
        self.files = NamespaceFiles(self.data_dir / "files")
        self.flows = FlowRegistry(self.store, self.clock, self._flow_changed)
        self.executions = ExecutionService(self)
        self.flow_policies = FlowPolicies()  # limits and timeouts domains add to flows
        self._launcher = Launcher(self, settings.max_concurrent_executions)
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
                                        lambda: self._bus.subscribe(EVENTS))
        #: Pipeline runs, releases, deployments and release approvals (engine/forge/).
        self.forge = ForgeService(self)
        #: Services the HTTP dialects call: webhook triggers, namespace-file import.
        self.webhook_triggers = WebhookTriggers(self)
        self.namespace_import = NamespaceImport(self)
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
        self.task_services = TaskServices.of(self)
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
            await self.flows.load()
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
            self.store.on_execution_poisoned = self._launcher.poisoned
            await self.store.open()
            await self.flows.load()
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

    async def close(self) -> None:
        """Stop cleanly: running executions stay recoverable, nothing is marked falsely."""
        if not self._opened:
            return
        self.shutting_down = True
        if self.scheduler is not None:
            await self.scheduler.stop()
        await self.forge.stop()
        await self._launcher.stop()
        await self.outbox.stop()
        self.workdirs.drop_spare()
        await self.store.close()
        self.lock.release()
        self._opened = False

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- notifications ----------------------------------------------------------------------

    def _events_committed(self, newest_seq: int) -> None:
        """New events are durable: wake followers and the webhook outbox."""
        self._bus.publish(EVENTS, newest_seq)
        self.outbox.wake()

    def _publish_execution(self, execution_id: str, state: str, doc: dict[str, Any]) -> None:
        self._bus.publish(EXECUTION, ExecutionEvent(execution_id, state, doc),
                          execution_id=execution_id)

    def _flow_changed(self, flow: FlowDefinition, kind: str) -> None:
        if self.scheduler is not None:
            self.scheduler.sync_flow(flow.namespace, flow.id)
        self._launcher.flow_changed(flow)
        self._bus.publish(FLOW, FlowEvent(kind, flow.namespace, flow.id))

    def subscribe(self, topic: str, *, execution_id: str | None = None) -> Subscription:
        """Committed changes as they happen: `execution` (every execution, or one), `approval`,
        `flow`, `logs`, `events` (see `engine/bus.py`); close the subscription when done."""
        return self._bus.subscribe(topic, execution_id=execution_id)

    def watch_executions(self) -> Subscription:
        return self._bus.subscribe(EXECUTION)

    def is_running(self, execution_id: str) -> bool:
        """Whether this engine is running the execution (a finished one may still be letting
        go of it for a moment)."""
        return self._launcher.is_running(execution_id)

    def running_ids(self) -> list[str]:
        return self._launcher.running_ids()

    # -- flows (FlowRegistry) ---------------------------------------------------------------

    def validate_flow(self, source: str) -> FlowDefinition:
        return self.flows.validate(source)

    async def validate_flow_async(self, source: str) -> FlowDefinition:
        """`validate_flow` for routes: a big source is parsed off the event loop."""
        return await parse_flow_async(source)

    def list_flows(self, namespace: str | None = None) -> list[FlowDefinition]:
        return self.flows.current(namespace)

    def namespaces(self) -> list[str]:
        return self.flows.namespaces()

    def get_flow(self, namespace: str, flow_id: str) -> FlowDefinition:
        return self.flows.get(namespace, flow_id)

    async def get_flow_revision(self, namespace: str, flow_id: str,
                                revision: int | None = None) -> FlowDefinition:
        return await self.flows.get_revision(namespace, flow_id, revision)

    async def flow_revisions(self, namespace: str, flow_id: str) -> list[FlowDefinition]:
        return await self.flows.revisions(namespace, flow_id)

    async def create_flow(self, source: str) -> FlowDefinition:
        return await self.flows.create(source)

    async def update_flow(self, namespace: str, flow_id: str, source: str) -> FlowDefinition:
        return await self.flows.update(namespace, flow_id, source)

    async def apply_flow(self, source: str) -> tuple[FlowDefinition, str]:
        """Create or update; returns the flow and 'created', 'updated' or 'unchanged'."""
        return await self.flows.apply(source)

    async def delete_flow(self, namespace: str, flow_id: str) -> None:
        await self.flows.delete(namespace, flow_id)

    # -- executions (ExecutionService) ------------------------------------------------------

    async def create_execution(
        self, namespace: str, flow_id: str, *, inputs: dict[str, Any] | None = None,
        labels: list[tuple[str, str]] | None = None, revision: int | None = None,
        trigger: dict[str, Any] | None = None, parent: Execution | None = None,
        parent_task_run_id: str | None = None, trigger_key: str | None = None,
        schedule_date: datetime | None = None, source: str = "api",
        admit: Admit | None = None,
    ) -> Execution:
        """Create and start an execution; returns once it is durably stored (CREATED)."""
        return await self.executions.create(
            namespace, flow_id, inputs=inputs, labels=labels, revision=revision,
            trigger=trigger, parent=parent, parent_task_run_id=parent_task_run_id,
            trigger_key=trigger_key, schedule_date=schedule_date, source=source, admit=admit)

    async def get_execution(self, execution_id: str) -> Execution:
        return await self.executions.get(execution_id)

    async def get_execution_json(self, execution_id: str) -> str:
        return await self.executions.get_json(execution_id)

    async def get_execution_doc(self, execution_id: str) -> dict[str, Any]:
        return await self.executions.get_doc(execution_id)

    async def search_executions(self, query: ExecutionQuery) -> tuple[list[Execution], int]:
        return await self.executions.search(query)

    async def wait_until_terminal(self, execution_id: str,
                                  timeout: float | None = None) -> Execution:
        return await self.executions.wait_until_terminal(execution_id, timeout)

    async def settled(self, execution_id: str) -> Execution:
        """The execution; a finished one once its runner has let go of it (see control.py)."""
        return await control.settled(self, execution_id)

    async def kill(self, execution_id: str) -> Execution:
        return await self.executions.kill(execution_id)

    async def kill_and_wait(self, execution_id: str, timeout: float = 30) -> Execution:
        return await self.executions.kill_and_wait(execution_id, timeout)

    async def pause(self, execution_id: str) -> Execution:
        return await self.executions.pause(execution_id)

    async def resume(self, execution_id: str, inputs: dict[str, Any] | None = None,
                     by: str | None = None) -> Execution:
        return await self.executions.resume(execution_id, inputs, by)

    async def resume_and_wait(self, execution_id: str, inputs: dict[str, Any], *,
                              by: str | None = None, role: str | None = None) -> Execution:
        """Resume and answer once the execution moved on (see control.py)."""
        return await control.resume_and_wait(self, execution_id, inputs, by=by, role=role)

    async def restart(self, execution_id: str, task_run_id: str | None = None) -> Execution:
        return await self.executions.restart(execution_id, task_run_id)

    async def replay(self, execution_id: str, task_run_id: str | None = None,
                     revision: int | None = None,
                     inputs: dict[str, Any] | None = None) -> Execution:
        return await self.executions.replay(execution_id, task_run_id, revision, inputs)

    async def set_labels(self, execution_id: str, labels: list[tuple[str, str]]) -> Execution:
        return await self.executions.set_labels(execution_id, labels)

    async def change_status(self, execution_id: str, status: str) -> Execution:
        return await self.executions.change_status(execution_id, status)

    async def delete_execution(self, execution_id: str) -> None:
        await self.executions.delete(execution_id)

    # -- logs, health -----------------------------------------------------------------------

    async def logs_for(self, execution_id: str, **filters: Any) -> list[Any]:
        await self.executions.get(execution_id)
        return await self.logs.fetch(execution_id, **filters)

    async def log_pages(self, execution_id: str, *, after_seq: int = 0,
                        page_size: int = REPLAY_PAGE, min_level: str | None = None,
                        task_run_id: str | None = None, task_id: str | None = None,
                        attempt: int | None = None) -> AsyncIterator[list[LogEntry]]:
        """All stored lines of an execution (with the filters), a page at a time, for answers
        too big to build at once (`GET /logs/{id}`, downloads); NotFoundError first."""
        await self.executions.get(execution_id)
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
