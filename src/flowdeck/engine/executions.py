"""Executions: created, read, searched, acted on (kill, pause, resume, restart, replay, labels,
status) and deleted. Every change is committed before the call returns.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiosqlite

from flowdeck.core.errors import ConflictError, NotFoundError, ValidationError
from flowdeck.core.models import Execution, StateInfo
from flowdeck.core.sanitize import valid_json
from flowdeck.core.states import RESTARTABLE_STATES, TERMINAL_STATES, is_terminal
from flowdeck.engine.bus import EXECUTION, ExecutionEvent
from flowdeck.engine.flows import FlowDefinition
from flowdeck.engine.input_check import InputsCheck, check_inputs
from flowdeck.engine.inputs import Enabled, InputDef, depends_on_condition, resolve_inputs_async
from flowdeck.engine.query import ExecutionQuery, distinct_values, search_executions
from flowdeck.engine.restart import TASK_RUN_STATES, copy_before, mark_as, reset_for_restart
from flowdeck.engine.secrets import check_given_again, split, without_credentials
from flowdeck.engine.store import execution_row
from flowdeck.engine.task_properties import is_truthy

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine

ALLOWED_SYSTEM_LABELS = frozenset({"system.correlationId", "system.from"})

#: Runs in the transaction that inserts a new execution, before the insert (see
#: `ExecutionService.create`): raise to refuse, or complete the execution.
Admit = Callable[[aiosqlite.Connection, Execution], Awaitable[None]]


class _Duplicate(Exception):
    """An execution with the same trigger key exists (rolls the insert's savepoint back)."""


def check_labels(labels: list[tuple[str, str]]) -> None:
    for key, _ in labels:
        if key.startswith("system.") and key not in ALLOWED_SYSTEM_LABELS:
            raise ValidationError([("labels", f"'{key}' is a reserved system label")])


class ExecutionService:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._store = engine.store
        self._clock = engine.clock

    # -- creating --------------------------------------------------------------------------

    async def create(
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
        engine = self._engine
        flow = await engine.flows.get_revision(namespace, flow_id, revision)
        if flow.disabled:
            raise ConflictError(f"flow '{namespace}.{flow_id}' is disabled")
        resolved = await resolve_inputs_async(
            flow.inputs, inputs or {}, render_default=self._default_renderer(flow, trigger),
            uploads=engine.uploads_dir, enabled=self._input_enabled(flow, trigger))
        shown, secrets = split(flow.inputs, resolved)
        execution = self._new(flow, shown, labels or [], source, parent)
        execution.trigger = valid_json(without_credentials(trigger))
        execution.schedule_date = schedule_date
        if parent is not None:
            execution.parent_id = parent.id
            variables = {"parentTaskRunId": parent_task_run_id} if parent_task_run_id else None
            execution.variables = variables
        if not await self._insert(execution, trigger_key, admit, secrets):
            raise ConflictError(f"an execution for '{trigger_key}' already exists")
        engine.logs.start_fresh(execution.id)
        engine._launcher.launch(execution, flow, secrets)
        return execution

    def _default_renderer(self, flow: FlowDefinition, trigger: dict[str, Any] | None
                          ) -> Callable[[Any], Any]:
        context = {"flow": {"id": flow.id, "namespace": flow.namespace,
                            "revision": flow.revision},
                   "envs": self._engine.envs, "vars": flow.variables,
                   "trigger": (trigger or {}).get("variables") or {}}
        return lambda value: self._engine.renderer.render_value(value, context)

    def _input_enabled(self, flow: FlowDefinition, trigger: dict[str, Any] | None) -> Enabled:
        """An input's `dependsOn` condition, rendered with the inputs resolved before it."""
        context = {"flow": {"id": flow.id, "namespace": flow.namespace,
                            "revision": flow.revision},
                   "envs": self._engine.envs, "vars": flow.variables,
                   "trigger": (trigger or {}).get("variables") or {}}

        def enabled(inp: InputDef, before: dict[str, Any]) -> bool:
            condition = depends_on_condition(inp)
            return condition is None or is_truthy(self._engine.renderer.render(
                condition, {**context, "inputs": before}))
        return enabled

    def _new(self, flow: FlowDefinition, inputs: dict[str, Any], labels: list[tuple[str, str]],
             source: str, parent: Execution | None) -> Execution:
        labels = valid_json(labels)
        check_labels(labels)
        execution_id = self._engine.new_id()
        merged: dict[str, str] = dict(flow.labels)
        merged.update(labels)
        correlation = merged.get("system.correlationId")
        if correlation is None:
            correlation = (parent.label("system.correlationId") if parent else None) or execution_id
        merged["system.correlationId"] = correlation
        merged.setdefault("system.from", source)
        now = self._clock.now()
        return Execution(id=execution_id, namespace=flow.namespace, flow_id=flow.id,
                         flow_revision=flow.revision, state=StateInfo.new("CREATED", now),
                         inputs=inputs, labels=list(merged.items()), original_created=now)

    async def _insert(self, execution: Execution, trigger_key: str | None,
                      admit: Admit | None = None,
                      secrets: dict[str, Any] | None = None) -> bool:
        row = execution_row(execution, self._clock.now()) if admit is None else None

        async def op(conn: aiosqlite.Connection) -> tuple[Any, ...]:
            nonlocal row
            if admit is not None:
                await admit(conn, execution)
                row = execution_row(execution, self._clock.now())
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
            await self._engine.secret_inputs.insert(conn, execution.id, secrets or {})
            return row

        try:
            inserted = await self._store.run(op)
        except _Duplicate:
            return False
        self._engine._publish_execution(execution.id, execution.state.current, inserted[10])
        return True

    # -- reading ---------------------------------------------------------------------------

    async def get(self, execution_id: str) -> Execution:
        row = await self._store.fetchone("SELECT doc FROM executions WHERE id = ?",
                                         (execution_id,))
        if row is None:
            raise NotFoundError(f"no execution '{execution_id}'")
        return Execution.from_dict(json.loads(row[0]))

    async def get_json(self, execution_id: str) -> str:
        """The execution as Kestra JSON text; a finished one is served as stored (no re-encode)."""
        row = await self._store.fetchone("SELECT state, doc FROM executions WHERE id = ?",
                                         (execution_id,))
        if row is None:
            raise NotFoundError(f"no execution '{execution_id}'")
        if is_terminal(row[0]):
            return str(row[1])
        text, _ = Execution.from_dict(json.loads(row[1])).to_json(self._clock.now())
        return text

    async def get_doc(self, execution_id: str) -> dict[str, Any]:
        """The execution as Kestra JSON, with a duration that is current for running ones."""
        return (await self.get(execution_id)).to_dict(self._clock.now())

    async def search(self, query: ExecutionQuery) -> tuple[list[Execution], int]:
        return await search_executions(self._store, query)

    async def distinct_values(self, query: ExecutionQuery, field_name: str,
                              size: int) -> list[str]:
        """Kestra's `distinct-field-values`: see `query.distinct_values`."""
        return await distinct_values(self._store, query, field_name, size)

    async def wait_until_terminal(self, execution_id: str,
                                  timeout: float | None = None) -> Execution:
        """Wait for a final state (PAUSED is not final) and for its runner to have let go."""
        launcher = self._engine._launcher
        sub = self._engine.subscribe(EXECUTION, execution_id=execution_id)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    execution = await self.get(execution_id)
                    if is_terminal(execution.state.current):
                        if not launcher.is_running(execution_id):
                            return execution
                        await launcher.runner_gone(execution_id)
                        continue
                    while not sub.lagged:  # cheap: events carry the state
                        try:
                            event: ExecutionEvent = await sub.get(1.0)
                        except TimeoutError:
                            break  # a periodic re-check from the store
                        if is_terminal(event.state):
                            # Let the runner go first, so one read of the store settles it.
                            await launcher.settle(execution_id)
                            break
                    sub.lagged = False
                    while not sub.queue.empty():
                        sub.queue.get_nowait()
        finally:
            sub.close()

    # -- acting on running executions ------------------------------------------------------

    async def kill(self, execution_id: str) -> Execution:
        execution = await self.get(execution_id)
        if is_terminal(execution.state.current):
            raise ConflictError(f"execution {execution_id} is already "
                                f"{execution.state.current}")
        runner = self._engine._launcher.runner(execution_id)
        if runner is None:
            raise ConflictError(f"execution {execution_id} is not running in this engine")
        live = runner.execution
        if live.state.current != "KILLING":
            live.state.to("KILLING", self._clock.now())
            runner.save()
        await self._store.flush()
        snapshot = Execution.from_dict(live.to_dict(self._clock.now()))
        if runner.task is not None:
            runner.task.cancel()
        # Before the kill is acknowledged: a decision arriving now is refused, not lost.
        await self._engine.approvals.expire_for_execution(execution_id,
                                                          f"execution {execution_id} was killed")
        return snapshot

    async def kill_and_wait(self, execution_id: str, timeout: float = 30) -> Execution:
        await self.kill(execution_id)
        return await self.wait_until_terminal(execution_id, timeout)

    async def pause(self, execution_id: str) -> Execution:
        runner = self._engine._launcher.runner(execution_id)
        execution = runner.execution if runner else await self.get(execution_id)
        if runner is None or execution.state.current != "RUNNING":
            raise ConflictError(f"execution {execution_id} is {execution.state.current}; "
                                "only a RUNNING execution can be paused")
        runner.request_pause()
        return execution

    async def resume(self, execution_id: str, inputs: dict[str, Any] | None = None,
                     by: str | None = None) -> Execution:
        runner = self._engine._launcher.runner(execution_id)
        execution = runner.execution if runner else await self.get(execution_id)
        if runner is None or execution.state.current != "PAUSED":
            raise ConflictError(f"execution {execution_id} is {execution.state.current}; "
                                "only a PAUSED execution can be resumed")
        approvals = self._engine.approvals
        pending = await approvals.list("pending", execution_id=execution_id)
        from flowdeck.engine.tasks.flowable import Pause

        pauses = {k: v for k, v in runner.paused_tasks().items() if isinstance(v, Pause)}
        if pauses or not pending:
            runner.resume(inputs or {}, by)
        for approval in pending:
            await approvals.decide(approval.id, approve=True, by=by or "api")
        await self._store.flush()
        return Execution.from_dict(runner.execution.to_dict(self._clock.now()))

    # -- acting on finished executions -----------------------------------------------------

    async def _finished(self, execution_id: str, hint: str = "") -> Execution:
        """The execution, once its runner let go; a 409 while it still runs."""
        launcher = self._engine._launcher
        await launcher.settle(execution_id)
        execution = await self.get(execution_id)
        if launcher.is_running(execution_id):
            raise ConflictError(f"execution {execution_id} is still running{hint}")
        return execution

    async def restart(self, execution_id: str, task_run_id: str | None = None) -> Execution:
        execution = await self._finished(execution_id)
        if execution.state.current not in RESTARTABLE_STATES:
            raise ConflictError(f"execution {execution_id} is {execution.state.current}; only "
                                f"{', '.join(sorted(RESTARTABLE_STATES))} executions restart")
        flow = await self._engine.flows.get_revision(execution.namespace, execution.flow_id,
                                                     execution.flow_revision)
        await self._engine.secret_inputs.require(execution_id, flow.inputs)
        now = self._clock.now()
        reset_for_restart(execution, flow, task_run_id, now)
        return await self._relaunch(execution, flow, now)

    async def set_task_run_state(self, execution_id: str, task_run_id: str,
                                 state: str) -> Execution:
        """Kestra's task-run state change: the task run ends in `state` (SUCCESS, WARNING or
        FAILED) as if it had run so, and the finished execution goes on from there (a new
        attempt, RESTARTED; what came after it, error handlers included, runs again)."""
        if state not in TASK_RUN_STATES:
            raise ValidationError([("state", f"'{state}' is not one of "
                                             f"{', '.join(sorted(TASK_RUN_STATES))}")])
        only = "; only a finished execution can change a task run's state"
        execution = await self._finished(execution_id, only)
        if not is_terminal(execution.state.current):
            raise ConflictError(f"execution {execution_id} is {execution.state.current}{only}")
        flow = await self._engine.flows.get_revision(execution.namespace, execution.flow_id,
                                                     execution.flow_revision)
        await self._engine.secret_inputs.require(execution_id, flow.inputs)
        now = self._clock.now()
        reset_for_restart(execution, flow, task_run_id, now)
        mark_as(execution, task_run_id, state, now)
        return await self._relaunch(execution, flow, now)

    async def check_inputs(self, namespace: str, flow_id: str, inputs: dict[str, Any],
                           revision: int | None = None) -> InputsCheck:
        """A new execution's inputs checked, nothing created (Kestra's validate)."""
        flow = await self._engine.flows.get_revision(namespace, flow_id, revision)
        return InputsCheck(namespace, flow_id, check_inputs(
            flow.inputs, inputs, render_default=self._default_renderer(flow, None),
            uploads=self._engine.uploads_dir, enabled=self._input_enabled(flow, None)))

    async def check_resume_inputs(self, execution_id: str,
                                  inputs: dict[str, Any]) -> InputsCheck:
        """A paused execution's `onResume` inputs checked, nothing resumed."""
        from flowdeck.engine.tasks.flowable import Pause

        runner = self._engine._launcher.runner(execution_id)
        execution = runner.execution if runner else await self.get(execution_id)
        if runner is None or execution.state.current != "PAUSED":
            raise ConflictError(f"execution {execution_id} is {execution.state.current}; "
                                "only a PAUSED execution has inputs to resume with")
        declared = [inp for task in runner.paused_tasks().values() if isinstance(task, Pause)
                    for inp in task.onResume]
        return InputsCheck(execution.namespace, execution.flow_id, check_inputs(
            declared, inputs, uploads=self._engine.uploads_dir))

    async def resume_from_breakpoint(self, execution_id: str) -> Execution:
        """Kestra's resume of an execution stopped at a breakpoint: flowdeck sets none (a
        create or replay asking for one is refused), so no execution is ever at one."""
        execution = await self.get(execution_id)
        raise ConflictError(f"execution {execution_id} is {execution.state.current}, not "
                            "stopped at a breakpoint (flowdeck sets none)")

    async def _relaunch(self, execution: Execution, flow: FlowDefinition,
                        now: datetime) -> Execution:
        """Start a reset execution again, as its next attempt."""
        execution.attempt_number += 1
        execution.outputs = None
        execution.state.to("RESTARTED", now)
        self._store.stage_execution(execution)
        await self._store.flush()
        await self._engine.logs.prime(execution.id)
        self._engine._launcher.launch(execution, flow)
        return Execution.from_dict(execution.to_dict(now))

    async def replay(self, execution_id: str, task_run_id: str | None = None,
                     revision: int | None = None,
                     inputs: dict[str, Any] | None = None) -> Execution:
        source = await self.get(execution_id)
        if not is_terminal(source.state.current):
            raise ConflictError(f"execution {execution_id} is {source.state.current}; "
                                "only a finished execution can be replayed")
        engine = self._engine
        flow = await engine.flows.get_revision(source.namespace, source.flow_id,
                                               revision or source.flow_revision)
        given = inputs if inputs is not None else source.inputs
        if inputs is None:
            check_given_again(flow.inputs, given)
        resolved, secrets = split(flow.inputs, await resolve_inputs_async(
            flow.inputs, given, uploads=engine.uploads_dir))
        labels = [(k, v) for k, v in source.labels if not k.startswith("system.")]
        replay = self._new(flow, resolved, labels, "replay", None)
        replay.original_id = source.original_id or source.id
        replay.trigger = source.trigger
        replay.set_label("system.correlationId",
                         source.label("system.correlationId") or source.id)
        if task_run_id is not None:
            target = source.find_task_run(task_run_id)
            if target is None:
                raise NotFoundError(f"no task run '{task_run_id}' in execution {execution_id}")
            replay.task_runs = copy_before(source, target, engine.new_id, replay.id)
        inserted = await self._insert(replay, None, secrets=secrets)
        assert inserted
        engine.logs.start_fresh(replay.id)
        engine._launcher.launch(replay, flow, secrets)
        return replay

    async def set_labels(self, execution_id: str, labels: list[tuple[str, str]]) -> Execution:
        execution = await self._finished(
            execution_id, "; labels can only be set on a finished execution")
        check_labels(labels)
        for key, value in valid_json(labels):
            execution.set_label(key, value)
        self._store.stage_execution(execution)
        await self._store.flush()
        return execution

    async def set_labels_many(self, execution_ids: list[str],
                              labels: list[tuple[str, str]]) -> int:
        """`set_labels` on several finished executions with one commit (bulk labels); one
        that is running again, or gone, since it was checked is skipped. Returns how many
        were labelled."""
        check_labels(labels)
        labels = valid_json(labels)
        labelled = 0
        for execution_id in execution_ids:
            try:
                execution = await self._finished(execution_id)
            except (ConflictError, NotFoundError):
                continue
            for key, value in labels:
                execution.set_label(key, value)
            self._store.stage_execution(execution)
            labelled += 1
        await self._store.flush()
        return labelled

    async def change_status(self, execution_id: str, status: str) -> Execution:
        launcher = self._engine._launcher
        await launcher.settle(execution_id)
        execution = await self.get(execution_id)
        if launcher.is_running(execution_id) or not is_terminal(execution.state.current):
            raise ConflictError(f"execution {execution_id} is {execution.state.current}; "
                                "only a finished execution can change status")
        if status not in TERMINAL_STATES:
            raise ValidationError([("status", f"'{status}' is not a terminal state")])
        await self._engine.approvals.check_status_change(execution_id, status)
        execution.state.to(status, self._clock.now())
        self._store.stage_execution(execution)
        await self._store.flush()
        return execution

    async def delete(self, execution_id: str) -> None:
        await self._finished(execution_id, "; kill it first")

        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute("DELETE FROM logs WHERE execution_id = ?", (execution_id,))
            await conn.execute("DELETE FROM executions WHERE id = ?", (execution_id,))

        await self._store.run(op)
