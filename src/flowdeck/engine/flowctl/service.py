"""`engine.flowctl`: what the FlowCtl dialect, the CLI and the deck call, one method each.

A workflow is a flow (namespace `flowctl`, id `wf-<workflow id>`) and one execution of it;
`flowctl_workflows` maps the workflow id onto that execution (and `flowctl_tasks` each
stable task id onto its workflow), written with the `workflow.created` event in one
transaction. Views are computed from the flow and the committed execution
(`flowdeck.core.flowctl`). Errors carry the spec's wording: "Workflow not found", "Task not
found".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiosqlite

from flowdeck.core.errors import BadRequestError, ConflictError, FlowdeckError, NotFoundError
from flowdeck.core.flowctl import (
    LABEL_BY,
    NAMESPACE,
    TASK_STATUSES,
    WORKFLOW_STATUSES,
    FlowctlMetrics,
    Health,
    TaskView,
    WorkflowPage,
    WorkflowView,
    build_workflow_view,
    count_by,
    execution_states,
    task_counts,
    workflow_status,
    wrapper_of,
)
from flowdeck.core.ids import is_uuid
from flowdeck.core.models import Execution
from flowdeck.core.states import TERMINAL_STATES
from flowdeck.core.timefmt import format_instant
from flowdeck.engine.flowctl.definition import flow_source, parse_definition
from flowdeck.engine.flowctl.events import (
    FlowctlEvents,
    FlowctlTargets,
    TaskInfo,
    task_info_of,
    workflow_event,
)
from flowdeck.engine.flowctl.settings import FlowctlSettings
from flowdeck.engine.inputs import PARSE_POOL
from flowdeck.engine.metrics import Metric, Sample, collect, render

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine
    from flowdeck.engine.flows import FlowDefinition

#: Above this many tasks a definition is read and its flow written out off the event loop
#: (1,000 tasks held the loop ~0.4 s); a small one costs well under a millisecond inline.
INLINE_TASKS = 64
MAX_LIMIT = 100
DEFAULT_LIMIT = 10
#: How long `cancel` waits for the workflow's processes to be gone.
CANCEL_WAIT_S = 30.0
#: How long the health write probe may take.
PROBE_TIMEOUT_S = 2.0
TASK_INFO_CACHE = 4096


class FlowctlService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.settings = FlowctlSettings.from_extra(engine.settings.extra.get("flowctl"))
        self._task_info: dict[str, TaskInfo] = {}
        #: Task counts of finished workflows, by (execution id, end date): they do not change.
        self._finished_counts: dict[tuple[str, str], dict[str, int]] = {}
        engine.events.sources.append(FlowctlEvents(self.task_info))
        engine.events.resolvers.append(FlowctlTargets(lambda: self.settings))

    # -- submitting -------------------------------------------------------------------------------

    async def submit(self, definition: Any, by: str) -> WorkflowView:
        """Validate a workflow (ValidationError naming the tasks) and queue it at once."""
        tasks = definition.get("tasks") if isinstance(definition, dict) else None
        inline = not isinstance(tasks, list) or len(tasks) <= INLINE_TASKS
        loop = asyncio.get_running_loop()
        spec = (parse_definition(definition, self.settings) if inline else await
                loop.run_in_executor(PARSE_POOL, parse_definition, definition, self.settings))
        engine = self.engine
        workflow_id = engine.new_id()
        uids = [engine.new_id() for _ in spec.tasks]
        source = (flow_source(spec, workflow_id, uids) if inline else await
                  loop.run_in_executor(PARSE_POOL, flow_source, spec, workflow_id, uids))
        flow = await engine.create_flow(source)
        self._remember(flow)
        labels = [(LABEL_BY, by)] if by else None
        execution = await engine.create_execution(NAMESPACE, flow.id, labels=labels,
                                                  source="flowctl")
        # What was committed: CREATED, before the runner moves it on.
        snapshot = Execution.from_dict(execution.to_dict(engine.clock.now()))
        view = self._build(snapshot, flow)
        created = workflow_event("workflow.created", view.created_at, workflow_id, spec.name,
                                 "pending", execution.id)

        async def record(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "INSERT INTO flowctl_workflows(id, execution_id, flow_id, name, created, "
                "created_by) VALUES (?,?,?,?,?,?)",
                (workflow_id, execution.id, flow.id, spec.name, view.created_at, by or ""))
            await conn.executemany(
                "INSERT INTO flowctl_tasks(id, workflow_id, task_id) VALUES (?,?,?)",
                [(t.id, workflow_id, t.engine_task_id) for t in view.tasks])
            await engine.events.append(conn, [created])

        try:
            await engine.store.run(record)
        except Exception:  # not committed: a workflow nobody can see must not run
            with contextlib.suppress(FlowdeckError):
                await engine.kill(execution.id)
            raise
        return view

    # -- reading ----------------------------------------------------------------------------------

    async def get(self, workflow_id: str) -> WorkflowView:
        execution = await self._execution(workflow_id)
        return await self._view(execution)

    async def list_workflows(self, page: int = 1, limit: int = DEFAULT_LIMIT,
                   status: str | None = None) -> WorkflowPage:
        """Newest first; `limit` above 100 is read as 100."""
        if page < 1:
            raise BadRequestError("page must be 1 or more")
        if limit < 1:
            raise BadRequestError(f"limit must be from 1 to {MAX_LIMIT}")
        limit = min(limit, MAX_LIMIT)
        where, params = "", []
        if status is not None:
            if status not in WORKFLOW_STATUSES:
                raise BadRequestError(f"invalid status '{status}' (one of "
                                      f"{', '.join(WORKFLOW_STATUSES)})")
            states = execution_states(status)
            where = f" WHERE e.state IN ({','.join('?' * len(states))})"
            params = list(states)
        joined = "FROM flowctl_workflows w JOIN executions e ON e.id = w.execution_id" + where
        row = await self.engine.store.fetchone(f"SELECT COUNT(*) {joined}", params)
        total = int(row[0]) if row else 0
        offset = (page - 1) * limit
        views: list[WorkflowView] = []
        if offset < total:
            rows = await self.engine.store.fetchall(
                f"SELECT e.doc {joined} ORDER BY w.created DESC, w.id DESC LIMIT ? OFFSET ?",
                [*params, limit, offset])
            for (doc,) in rows:
                views.append(await self._view(Execution.from_dict(json.loads(doc))))
        return WorkflowPage(views, total, page, limit)

    async def tasks(self, workflow_id: str) -> list[TaskView]:
        return (await self.get(workflow_id)).tasks

    async def task(self, task_id: str) -> TaskView:
        row = None
        if is_uuid(task_id):
            row = await self.engine.store.fetchone(
                "SELECT workflow_id FROM flowctl_tasks WHERE id = ?", (task_id,))
        if row is None:
            raise NotFoundError("Task not found")
        task = (await self.get(str(row[0]))).task(task_id)
        if task is None:
            raise NotFoundError("Task not found")
        return task

    async def wait(self, workflow_id: str, timeout: float | None = None) -> WorkflowView:
        """The workflow once it has finished (for `--wait`)."""
        execution = await self._execution(workflow_id)
        final = await self.engine.wait_until_terminal(execution.id, timeout)
        return await self._view(final)

    # -- acting -----------------------------------------------------------------------------------

    async def cancel(self, workflow_id: str, by: str) -> WorkflowView:
        """Kill the workflow's execution (every running task's whole process group); the
        workflow and its unfinished tasks end cancelled. ConflictError if it had finished."""
        execution = await self._execution(workflow_id)
        status = workflow_status(execution.state.current)
        if execution.state.current in TERMINAL_STATES:
            raise ConflictError(f"Workflow is already {status}")
        runner = self.engine._launcher.runner(execution.id)
        if runner is not None and by:
            self.engine.logs.emit(runner.execution, None, "WARN",
                                  [f"workflow cancelled by {by}"])
        try:
            await self.engine.kill(execution.id)
        except ConflictError:
            current = await self.engine.get_execution(execution.id)
            if current.state.current in TERMINAL_STATES:
                raise ConflictError("Workflow is already "
                                    f"{workflow_status(current.state.current)}") from None
            raise
        final = await self.engine.wait_until_terminal(execution.id, CANCEL_WAIT_S)
        return await self._view(final)

    # -- system -----------------------------------------------------------------------------------

    async def metrics(self) -> FlowctlMetrics:
        rows = await self.engine.store.fetchall(
            "SELECT w.execution_id, e.state, e.end_date FROM flowctl_workflows w "
            "JOIN executions e ON e.id = w.execution_id")
        tasks = dict.fromkeys(TASK_STATUSES, 0)
        unknown: list[str] = []
        states: list[str] = []
        for execution_id, state, end in rows:
            cached = self._finished_counts.get((execution_id, end or ""))
            runner = self.engine._launcher.runner(execution_id)
            if runner is not None:  # live: newer than the last commit
                state = runner.execution.state.current
            states.append(state)
            if cached is None and runner is not None and state not in TERMINAL_STATES:
                cached = task_counts(await self._view(runner.execution))
            if cached is None:
                unknown.append(execution_id)
                continue
            for key, value in cached.items():
                tasks[key] += value
        for chunk in _chunks(unknown, 500):
            docs = await self.engine.store.fetchall(
                f"SELECT doc, state, end_date FROM executions WHERE id IN "
                f"({','.join('?' * len(chunk))})", chunk)
            for doc, state, end in docs:
                execution = Execution.from_dict(json.loads(doc))
                counts = task_counts(await self._view(execution))
                if state in TERMINAL_STATES:
                    self._finished_counts[(execution.id, end or "")] = counts
                for key, value in counts.items():
                    tasks[key] += value
        slots = self.engine._launcher.global_slots
        active = min(slots.in_use, slots.limit)
        return FlowctlMetrics(
            workflows=count_by((workflow_status(s) for s in states), WORKFLOW_STATUSES),
            tasks={"total": sum(tasks.values()), **tasks},
            workers={"active": active, "idle": max(0, slots.limit - active)})

    async def health(self, timeout: float = PROBE_TIMEOUT_S) -> Health:
        """Healthy only when the store commits a write (a probe row) within `timeout` s."""
        reason = await self.engine.store.probe_write(timeout)
        return Health("healthy" if reason is None else "unhealthy",
                      format_instant(self.engine.clock.now()), reason)

    async def prometheus(self) -> str:
        """The engine's metrics (and the workflows') in Prometheus' text format."""
        families = await collect(self.engine)
        m = await self.metrics()
        families.append(Metric("flowdeck_flowctl_workflows", "gauge",
                               "FlowCtl workflows by status.",
                               [Sample({"status": s}, m.workflows[s]) for s in WORKFLOW_STATUSES]))
        families.append(Metric("flowdeck_flowctl_tasks", "gauge", "FlowCtl tasks by status.",
                               [Sample({"status": s}, m.tasks[s]) for s in TASK_STATUSES]))
        families.append(Metric("flowdeck_flowctl_workers", "gauge",
                               "Execution slots in use (active) and free (idle).",
                               [Sample({"state": k}, v) for k, v in m.workers.items()]))
        return render(families)

    # -- helpers ----------------------------------------------------------------------------------

    def task_info(self, flow_id: str) -> TaskInfo:
        """Task names and ids of a workflow's flow (called on the store's writer thread too:
        reads dictionaries only)."""
        info = self._task_info.get(flow_id)
        if info is None:
            try:
                flow = self.engine.get_flow(NAMESPACE, flow_id)
            except NotFoundError:
                return {}
            info = self._remember(flow)
        return info

    def _remember(self, flow: FlowDefinition) -> TaskInfo:
        wrapper = wrapper_of(flow.raw.get("tasks"))
        info = task_info_of(wrapper.get("tasks") if wrapper is not None else None)
        if len(self._task_info) >= TASK_INFO_CACHE:
            self._task_info.clear()
        self._task_info[flow.id] = info
        return info

    async def _execution(self, workflow_id: str) -> Execution:
        row = None
        if isinstance(workflow_id, str) and is_uuid(workflow_id):
            row = await self.engine.store.fetchone(
                "SELECT execution_id FROM flowctl_workflows WHERE id = ?", (workflow_id,))
        if row is None:
            raise NotFoundError("Workflow not found")
        try:
            return await self.engine.get_execution(str(row[0]))
        except NotFoundError:
            raise NotFoundError("Workflow not found") from None

    async def _view(self, execution: Execution) -> WorkflowView:
        try:
            flow = await self.engine.get_flow_revision(execution.namespace, execution.flow_id,
                                                       execution.flow_revision)
        except NotFoundError:
            raise NotFoundError("Workflow not found") from None
        return self._build(execution, flow)

    @staticmethod
    def _build(execution: Execution, flow: FlowDefinition) -> WorkflowView:
        wrapper = wrapper_of(flow.raw.get("tasks"))
        if wrapper is None:
            raise NotFoundError("Workflow not found")
        return build_workflow_view(execution, wrapper, description=flow.description)


def _chunks(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


__all__ = ["FlowctlService"]
