"""Pipeline runs: executions of a repository's pipeline flow, shown as phases, tasks and steps.

Repository `owner/name` runs the flow `name` of namespace `pipelines.owner`; the run's branch,
commit and trigger become inputs (those the flow declares), labels (`forge.branch`, ...) and
trigger variables (`{{ trigger.commit_sha }}`). A run *is* the execution: the same id, seen
by the Kestra API and the deck as well. Cancelling kills it.

External workers report on `flowdeck.pipeline.External` tasks by task and step id; what they
report is kept in `forge_nodes` (status, error, exit code, log location) and wakes the waiting
task. Tasks the engine runs itself cannot be reported on (ConflictError).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
from typing import TYPE_CHECKING, Any

import aiosqlite

from flowdeck.core.errors import ConflictError, FlowdeckError, NotFoundError
from flowdeck.core.forge import (
    PIPELINE_NAMESPACE_PREFIX,
    WORKER_STATUSES,
    Page,
    PipelineRun,
    PipelineTask,
    Step,
    pipeline_flow,
)
from flowdeck.core.ids import is_uuid
from flowdeck.core.models import Execution
from flowdeck.core.states import TERMINAL_STATES
from flowdeck.core.timefmt import format_duration, format_instant
from flowdeck.engine.flows import FlowDefinition
from flowdeck.engine.forge import layout, validate
from flowdeck.engine.forge.tasks import External
from flowdeck.engine.forge.view import LABELS, RunView, WorkerReport, run_status
from flowdeck.engine.tasks.base import FlowableTask

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine
    from flowdeck.engine.tasks.base import TaskContext

#: A step's log lines served at most (a chatty step keeps its newest lines).
MAX_STEP_LOG_LINES = 100_000
FAILURE_LINES = ("SELECT task_run_id, attempt, message FROM logs WHERE execution_id = ? AND "
                 "level = 'ERROR' AND message LIKE 'task ''%'' failed: %' ORDER BY seq")


class RunService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._wakers: dict[str, asyncio.Event] = {}

    # -- runs ---------------------------------------------------------------------------------

    async def create(self, repository: str, branch: str, commit_sha: str, triggered_by: str,
                     trigger_type: str, *, by: str) -> PipelineRun:
        """Start a run of the repository's pipeline; returns it `pending`, once durable."""
        values = {"repository": validate.repository(repository),
                  "branch": validate.branch(branch), "commit_sha": validate.commit_sha(commit_sha),
                  "triggered_by": validate.person(triggered_by, "triggered_by"),
                  "trigger_type": validate.trigger_type(trigger_type)}
        by = validate.person(by, "by")
        flow = self.pipeline(values["repository"])
        layout.check_external_placement(flow)
        labels = [(f"forge.{key}", value) for key, value in values.items()]
        labels.append(("forge.created_by", by))

        async def record_ids(conn: aiosqlite.Connection, execution: Execution) -> None:
            await self._insert_nodes(conn, layout.node_rows(execution.id, flow))

        # The ids are written in the transaction that inserts the execution (no commit of
        # their own); an external task records them again, idempotently, before it waits.
        execution = await self.engine.create_execution(
            flow.namespace, flow.id, inputs=dict(values), labels=labels, source="forge",
            trigger={"id": "forge", "type": "flowdeck.forge.PipelineRun", "variables": values},
            admit=record_ids)
        return RunView(execution, flow, {}, {}).build()  # before the runner moves it on

    def pipeline(self, repository: str) -> FlowDefinition:
        namespace, flow_id = pipeline_flow(repository)
        try:
            return self.engine.get_flow(namespace, flow_id)
        except NotFoundError:
            raise NotFoundError(
                f"no pipeline for repository '{repository}': create the flow '{flow_id}' in "
                f"namespace '{namespace}'") from None

    async def get(self, run_id: str) -> PipelineRun:
        execution, flow = await self._run(run_id)
        return await self._view(execution, flow)

    async def list(self, repository: str, branch: str | None = None, limit: int = 20,
                   offset: int = 0) -> Page[PipelineRun]:
        """A repository's runs, newest first (entries carry no phases)."""
        repository = validate.repository(repository)
        limit, offset = validate.page(limit, offset)
        namespace, flow_id = pipeline_flow(repository)
        where = "namespace = ? AND flow_id = ?"
        params: list[Any] = [namespace, flow_id]
        if branch is not None:
            where += " AND json_extract(labels, '$.\"forge.branch\"') = ?"
            params.append(validate.branch(branch))
        store = self.engine.store
        rows = await store.fetchall(
            f"SELECT id, state, start_date, end_date, labels FROM executions WHERE {where} "
            "ORDER BY start_date DESC, id DESC LIMIT ? OFFSET ?", [*params, limit, offset])
        total = await store.fetchone(f"SELECT COUNT(*) FROM executions WHERE {where}", params)
        runs = []
        for row in rows:
            labels = json.loads(row[4])
            fields = {name: str(labels.get(f"forge.{name}") or "") for name in LABELS}
            runs.append(PipelineRun(
                id=row[0], repository=repository, branch=fields["branch"],
                commit_sha=fields["commit_sha"], status=run_status(row[1]),
                triggered_by=fields["triggered_by"],
                trigger_type=fields["trigger_type"] or "manual", started_at=row[2],
                completed_at=row[3] if row[1] in TERMINAL_STATES else None,
                execution_state=row[1]))
        return Page(tuple(runs), int(total[0]) if total else 0, limit, offset)

    async def cancel(self, run_id: str, timeout: float = 30) -> PipelineRun:
        """Kill the run's execution; returns the run once it is `cancelled`."""
        execution, flow = await self._run(run_id)
        if execution.state.current in TERMINAL_STATES:
            raise ConflictError(f"pipeline run {run_id} is already "
                                f"{run_status(execution.state.current)}")
        with contextlib.suppress(ConflictError):  # it ended on its own meanwhile
            await self.engine.kill(run_id)
        execution = await self.engine.wait_until_terminal(run_id, timeout)
        return await self._view(execution, flow)

    async def step_logs(self, run_id: str, step_id: str) -> str:
        """A step's log lines as text (`<timestamp> <LEVEL> <message>` per line)."""
        execution, flow = await self._run(run_id)
        found = self._locate_step(execution, flow, step_id)
        if found is None:
            raise NotFoundError(f"no step '{step_id}' in pipeline run {run_id}")
        task_id, key = found
        kind, _, rest = key.partition(":")
        view = RunView(execution, flow, {}, {})
        if kind == "task":
            tr = view.by_task.get(rest)
            attempt = None
        else:
            tr = view.by_task.get(task_id)
            attempt = int(rest) - 1 if kind == "attempt" else None
        if tr is None:
            return ""
        await self.engine.store.flush()
        entries = await self.engine.logs.fetch(execution.id, task_run_id=tr.id, attempt=attempt)
        if kind == "step":
            prefix = f"[{rest}] "
            entries = [e for e in entries if e.message.startswith(prefix)]
        entries = entries[-MAX_STEP_LOG_LINES:]
        return "".join(f"{e.timestamp} {e.level} {e.message}\n" for e in entries)

    # -- external workers ---------------------------------------------------------------------

    async def update_task_status(self, task_id: str, status: str,
                                 error: str | None = None) -> PipelineTask:
        """A worker's report on an external task: running, success or failed."""
        node = await self._node(task_id, "task")
        status = self._worker_status(status)
        error = validate.text("error", error, max_len=10_000, required=False, multiline=True)
        run_id = await self._check_reportable(node)
        now = format_instant(self.engine.clock.now())

        async def op(conn: aiosqlite.Connection) -> int:
            cursor = await conn.execute(
                "UPDATE forge_nodes SET status = ?, error = COALESCE(?, error), updated_at = ? "
                "WHERE id = ? AND status NOT IN ('success', 'failed')",
                (status, error, now, node["id"]))
            return cursor.rowcount

        await self._apply(op, node)
        self._wake(node["id"])
        run = await self.get(run_id)
        found = run.find_task(node["id"])
        assert found is not None
        return found

    async def update_step_status(self, step_id: str, status: str, exit_code: int | None = None,
                                 logs_s3_key: str | None = None) -> Step:
        """A worker's report on a step of an external task (a pending task becomes running)."""
        node = await self._node(step_id, "step")
        status = self._worker_status(status)
        code = validate.exit_code(exit_code)
        key = validate.text("logs_s3_key", logs_s3_key, max_len=1024, required=False)
        run_id = await self._check_reportable(node)
        parent = layout.task_uuid(run_id, node["task_id"])
        now = format_instant(self.engine.clock.now())

        async def op(conn: aiosqlite.Connection) -> int:
            cursor = await conn.execute(
                "SELECT status FROM forge_nodes WHERE id = ?", (parent,))
            row = await cursor.fetchone()
            if row is not None and row[0] in ("success", "failed"):
                return 0
            cursor = await conn.execute(
                "UPDATE forge_nodes SET status = ?, exit_code = COALESCE(?, exit_code), "
                "logs_s3_key = COALESCE(?, logs_s3_key), updated_at = ? WHERE id = ? AND "
                "status NOT IN ('success', 'failed')", (status, code, key, now, node["id"]))
            if cursor.rowcount:
                await conn.execute("UPDATE forge_nodes SET status = 'running', updated_at = ? "
                                   "WHERE id = ? AND status = 'pending'", (now, parent))
            return cursor.rowcount

        await self._apply(op, node)
        self._wake(parent)
        run = await self.get(run_id)
        found = run.find_step(node["id"])
        assert found is not None
        return found[1]

    @staticmethod
    def _worker_status(status: Any) -> str:
        if status not in WORKER_STATUSES:
            raise validate.fail("status", f"must be one of {', '.join(WORKER_STATUSES)}")
        return str(status)

    async def _node(self, node_id: str, kind: str) -> dict[str, Any]:
        row = None
        if isinstance(node_id, str) and is_uuid(node_id):
            row = await self.engine.store.fetchone(
                "SELECT id, run_id, kind, task_id, step, external, status FROM forge_nodes "
                "WHERE id = ?", (node_id.lower(),))
        if row is None or row[2] != kind:
            raise NotFoundError(f"no pipeline {kind} '{node_id}'")
        node = dict(zip(("id", "run_id", "kind", "task_id", "step", "external", "status"), row,
                        strict=True))
        if not node["external"]:
            raise ConflictError(
                f"{kind} '{node_id}' ('{node['task_id']}' of run {node['run_id']}) is run by "
                "the engine, not by an external worker: its status cannot be set",
                {"task": node["task_id"], "run_id": node["run_id"]})
        return node

    async def _check_reportable(self, node: dict[str, Any]) -> str:
        run_id = str(node["run_id"])
        try:
            execution = await self.engine.get_execution(run_id)
        except NotFoundError:
            raise NotFoundError(f"pipeline run {run_id} no longer exists") from None
        if execution.state.current in TERMINAL_STATES:
            raise ConflictError(f"pipeline run {run_id} is already "
                                f"{run_status(execution.state.current)}")
        for tr in execution.task_runs:
            if tr.task_id == node["task_id"] and tr.state.current in TERMINAL_STATES:
                raise ConflictError(f"task '{node['task_id']}' of run {run_id} already ended "
                                    f"({tr.state.current})")
        return run_id

    async def _apply(self, op: Any, node: dict[str, Any]) -> None:
        if not await self.engine.store.run(op):
            row = await self.engine.store.fetchone(
                "SELECT status FROM forge_nodes WHERE id = ?",
                (layout.task_uuid(node["run_id"], node["task_id"]) if node["kind"] == "step"
                 else node["id"],))
            raise ConflictError(f"task '{node['task_id']}' of run {node['run_id']} is already "
                                f"{row[0] if row else 'gone'}")

    def _wake(self, task_node: str) -> None:
        waker = self._wakers.pop(task_node, None)
        if waker is not None:
            waker.set()

    async def wait_for_worker(self, ctx: TaskContext, walker: Any, task: External) -> str:
        """Run an External task: wait (without an execution slot) for its worker's reports."""
        run_id = ctx.execution.id
        tid = layout.task_uuid(run_id, task.id)
        await self._record_nodes(run_id, walker.flow)
        worker = f" ({task.worker})" if task.worker else ""
        ctx.log("INFO", f"waiting for a worker{worker} to report on task {tid}")
        try:
            if task.timeout is None:
                return await self._follow_reports(ctx, walker, task, tid)
            async with asyncio.timeout(task.timeout.total_seconds()):
                return await self._follow_reports(ctx, walker, task, tid)
        except TimeoutError:
            assert task.timeout is not None
            message = f"no worker finished the task within {format_duration(task.timeout)}"
            await self._give_up(tid, message)
            ctx.log("ERROR", message)
            ctx.task_run.outputs = {"status": "failed", "error": message}
            return "FAILED"
        finally:
            self._wakers.pop(tid, None)

    async def _follow_reports(self, ctx: TaskContext, walker: Any, task: External,
                              tid: str) -> str:
        names = {layout.step_uuid(tid, key): name for key, name in layout.step_keys(task)}
        seen: dict[str, WorkerReport] = {}
        while True:
            waker = self._wakers.setdefault(tid, asyncio.Event())
            reports = await self._reports(ctx.execution.id, [tid, *names])
            for step_id, name in names.items():
                report = reports.get(step_id)
                if report is not None and report != seen.get(step_id):
                    seen[step_id] = report
                    ctx.log("ERROR" if report.status == "failed" else "INFO",
                            f"[{name}] {report.status}" + _details(report))
            report = reports.get(tid) or WorkerReport("pending")
            if report != seen.get(tid):
                seen[tid] = report
                if report.status in ("running", "success"):
                    ctx.log("INFO", f"worker reports the task {report.status}")
            if report.status in ("success", "failed"):
                ctx.task_run.outputs = {
                    "status": report.status, "error": report.error,
                    "steps": {name: {"status": r.status, "exit_code": r.exit_code,
                                     "logs_s3_key": r.logs_s3_key}
                              for sid, name in names.items() if (r := reports.get(sid))}}
                if report.status == "failed":
                    ctx.log("ERROR", f"worker reports the task failed: {report.error or ''}"
                            .rstrip(": "))
                    return "FAILED"
                return "SUCCESS"
            await walker.without_slot(waker.wait())

    async def _give_up(self, tid: str, message: str) -> None:
        now = format_instant(self.engine.clock.now())

        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "UPDATE forge_nodes SET status = 'failed', error = ?, updated_at = ? "
                "WHERE id = ? AND status NOT IN ('success', 'failed')", (message, now, tid))

        with contextlib.suppress(FlowdeckError, RuntimeError):
            await self.engine.store.run(op)

    async def _reports(self, run_id: str, ids: builtins.list[str]) -> dict[str, WorkerReport]:
        rows = await self.engine.store.fetchall(
            f"SELECT id, status, error, exit_code, logs_s3_key FROM forge_nodes WHERE id IN "
            f"({','.join('?' * len(ids))})", ids)
        return {r[0]: WorkerReport(r[1], r[2], r[3], r[4]) for r in rows}

    async def _record_nodes(self, run_id: str, flow: FlowDefinition) -> None:
        rows = layout.node_rows(run_id, flow)

        async def op(conn: aiosqlite.Connection) -> None:
            await self._insert_nodes(conn, rows)

        if rows:
            await self.engine.store.run(op)

    @staticmethod
    async def _insert_nodes(conn: aiosqlite.Connection, rows: builtins.list[layout.NodeRow]
                            ) -> None:
        await conn.executemany(
            "INSERT OR IGNORE INTO forge_nodes(id, run_id, kind, task_id, step, external) "
            "VALUES (?,?,?,?,?,?)", rows)

    # -- reading ------------------------------------------------------------------------------

    async def _run(self, run_id: str) -> tuple[Execution, FlowDefinition]:
        if not isinstance(run_id, str) or not is_uuid(run_id):
            raise NotFoundError(f"no pipeline run '{run_id}'")
        try:
            execution = await self.engine.get_execution(run_id)
        except NotFoundError:
            raise NotFoundError(f"no pipeline run '{run_id}'") from None
        owner = execution.namespace[len(PIPELINE_NAMESPACE_PREFIX):]
        if (not execution.namespace.startswith(PIPELINE_NAMESPACE_PREFIX)
                or validate.OWNER.fullmatch(owner) is None):
            raise NotFoundError(f"no pipeline run '{run_id}' (execution {run_id} is not a run "
                                "of a pipeline flow)")
        flow = await self.engine.get_flow_revision(execution.namespace, execution.flow_id,
                                                   execution.flow_revision)
        return execution, flow

    async def _view(self, execution: Execution, flow: FlowDefinition) -> PipelineRun:
        store = self.engine.store
        rows = await store.fetchall(
            "SELECT id, status, error, exit_code, logs_s3_key FROM forge_nodes WHERE run_id = ? "
            "AND external = 1", (execution.id,))
        reports = {r[0]: WorkerReport(r[1], r[2], r[3], r[4]) for r in rows}
        failures: dict[tuple[str, int | None], str] = {}
        for task_run_id, attempt, message in await store.fetchall(FAILURE_LINES,
                                                                  (execution.id,)):
            failures[(task_run_id, attempt)] = message
        return RunView(execution, flow, reports, failures).build()

    @staticmethod
    def _locate_step(execution: Execution, flow: FlowDefinition,
                     step_id: str) -> tuple[str, str] | None:
        """(task id, step key) of a step id of this run."""
        attempts = {tr.task_id: len(tr.attempts) for tr in execution.task_runs}
        for spec in layout.phases(flow):
            for task in spec.tasks:
                tid = layout.task_uuid(execution.id, task.id)
                keys = [key for key, _ in layout.step_keys(task)]
                if not isinstance(task, FlowableTask):
                    keys += [f"attempt:{n}" for n in range(1, attempts.get(task.id, 0) + 1)]
                for key in keys:
                    if layout.step_uuid(tid, key) == step_id:
                        return task.id, key
        return None


def _details(report: WorkerReport) -> str:
    parts = []
    if report.exit_code is not None:
        parts.append(f"exit code {report.exit_code}")
    if report.logs_s3_key:
        parts.append(f"logs at {report.logs_s3_key}")
    return f" ({', '.join(parts)})" if parts else ""
