"""Drives one execution from its first task to a terminal state.

The runner walks the flow's task tree. Every task run it meets is looked up first by
(task id, parent task run, value): a finished one is skipped, an unfinished one continues. That
one rule gives recovery after a crash, restart from the failed task and replay from a task for
free. State changes are staged with the store (group commit) and published only once durable;
the runner itself never waits for the disk except at the very end of the execution.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowdeck.core.errors import FlowdeckError, InvalidInputsError
from flowdeck.core.models import Attempt, Execution, LogEntry, StateInfo, TaskRun
from flowdeck.core.sanitize import valid_json
from flowdeck.core.states import FAILED_STATES, SUCCESSFUL_STATES, TERMINAL_STATES
from flowdeck.core.timefmt import format_duration, format_instant
from flowdeck.engine.flows import FlowDefinition
from flowdeck.engine.inputs import resolve_inputs
from flowdeck.engine.secrets import NO_MASK, Masker, secret_ids
from flowdeck.engine.tasks.base import (
    FlowableTask,
    RetryPolicy,
    RunnableTask,
    TaskDef,
    TaskFailure,
)
from flowdeck.engine.templating import has_expression

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine
    from flowdeck.engine.task_services import TaskServices
    from flowdeck.engine.tasks.approval import ApprovalRequest
    from flowdeck.engine.tasks.flowable import Subflow

#: The longest wait between two attempts (an exponential delay grows past any timedelta).
MAX_RETRY_DELAY_S = 10 * 365 * 86400.0
CONTINUABLE = frozenset({"CREATED", "RUNNING", "PAUSED", "RETRYING", "RESTARTED", "SUBMITTED",
                         "QUEUED", "RESUBMITTED", "KILLING"})


@dataclass(slots=True)
class Decision:
    """How a wait for a person ended: resume/approved/rejected, or the timer (timeout)."""

    kind: str
    inputs: dict[str, Any] = field(default_factory=dict)
    by: str | None = None
    comment: str | None = None


def combine(states: list[str]) -> str:
    """The state of a block from the states of its tasks."""
    if any(s == "CANCELLED" for s in states):
        return "CANCELLED"
    if any(s in ("FAILED", "KILLED") for s in states):
        return "FAILED"
    if any(s == "WARNING" for s in states):
        return "WARNING"
    return "SUCCESS"


def retry_delay(policy: RetryPolicy, attempt: int) -> timedelta:
    if policy.type == "constant":
        assert policy.interval is not None
        return policy.interval
    if policy.type == "exponential":
        assert policy.interval is not None
        factor = policy.delayFactor or 2.0
        try:  # in float seconds: a long run of retries overflows a timedelta
            seconds = policy.interval.total_seconds() * factor ** (attempt - 1)
        except OverflowError:
            seconds = math.inf
        if policy.maxInterval is not None:
            seconds = min(seconds, policy.maxInterval.total_seconds())
        return timedelta(seconds=min(seconds, MAX_RETRY_DELAY_S))
    assert policy.minInterval is not None and policy.maxInterval is not None
    low, high = policy.minInterval.total_seconds(), policy.maxInterval.total_seconds()
    return timedelta(seconds=random.uniform(low, high))


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return has_expression(value)
    if isinstance(value, dict):
        return any(_has_template(k) or _has_template(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_template(v) for v in value)
    return False


class RunContext:
    """What a task sees while it runs: rendering, logging, its working directory, services."""

    def __init__(self, runner: ExecutionRunner, task: TaskDef, task_run: TaskRun) -> None:
        self.runner = runner
        self.task = task
        self.task_run = task_run
        self.execution = runner.execution
        self.attempt_number = len(task_run.attempts)

    @property
    def workdir(self) -> Path:
        return self.runner.engine.work_dir / self.execution.id / self.task_run.id

    def create_workdir(self) -> Path:
        """This task run's working directory, made if it does not exist yet."""
        return self.runner.engine.workdirs.create(self.workdir)

    def prepare_next_workdir(self) -> None:
        """Make the next task run's directory ahead of need (while this task's process runs)."""
        self.runner.engine.workdirs.prepare_spare()

    @property
    def services(self) -> TaskServices:
        return self.runner.engine.task_services

    def render_context(self) -> Mapping[str, Any]:
        return self.runner.template_context(self.task, self.task_run)

    def render(self, value: Any) -> Any:
        if not _has_template(value):  # most properties are plain: skip building the context
            return value
        return self.runner.engine.renderer.render_value(value, self.render_context())

    def log(self, level: str, message: str) -> None:
        self.runner.emit_logs(self.task_run, level, [message])

    def log_lines(self, level: str, lines: list[str]) -> None:
        self.runner.emit_logs(self.task_run, level, lines)

    def log_backlogged(self) -> bool:
        return self.runner.engine.store.log_backlogged()

    async def log_room(self) -> None:
        await self.runner.engine.store.log_room()


class ExecutionRunner:
    def __init__(self, engine: Engine, execution: Execution, flow: FlowDefinition) -> None:
        self.engine = engine
        self.execution = execution
        self.flow = flow
        self.task: asyncio.Task[None] | None = None
        self._decisions: dict[str, asyncio.Future[Decision]] = {}
        self._paused: dict[str, TaskDef] = {}
        self._pause_requested: asyncio.Event | None = None
        self._outputs: dict[str, Any] = {}
        self._index: dict[tuple[str, str | None, str | None], TaskRun] = {}
        self._children: dict[str, str] = {}
        self._vars: dict[str, Any] | None = None
        self._holds_global_slot = False
        #: The clear SECRET inputs (None until known) and what masks them in what is stored.
        self.secrets: dict[str, Any] | None = None
        self.masker: Masker = NO_MASK
        for tr in execution.task_runs:
            self._index[(tr.task_id, tr.parent_task_run_id, tr.value)] = tr
            if tr.outputs is not None and tr.state.current in SUCCESSFUL_STATES:
                self._record_outputs(tr)

    # -- persistence and logs ---------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return self.engine.clock.now()

    def save(self) -> None:
        self.engine.store.stage_execution(self.execution)

    def use_secrets(self, secrets: dict[str, Any]) -> None:
        """The clear SECRET inputs: tasks see them, logs and outputs never do."""
        self.secrets = secrets
        self.masker = Masker(secrets.values())
        self.engine.logs.mask(self.execution.id, self.masker)

    async def _read_secrets(self) -> None:
        if self.secrets is None:
            stored = None
            if secret_ids(self.flow.inputs):
                stored = await self.engine.secret_inputs.load(self.execution.id)
            self.use_secrets(stored or {})

    def clean(self, value: Any) -> Any:
        """A value about to be stored: valid text, secrets masked."""
        return self.masker.value(valid_json(value))

    def emit_logs(self, task_run: TaskRun | None, level: str, lines: list[str]) -> None:
        self.engine.logs.emit(self.execution, task_run, level, lines)

    def execution_log(self, level: str, message: str) -> None:
        self.emit_logs(None, level, [message])

    def set_state(self, state: str) -> None:
        if self.execution.state.current != state:
            self.execution.state.to(state, self.now)
            self.save()

    # -- templates --------------------------------------------------------------------------

    def _record_outputs(self, tr: TaskRun) -> None:
        if tr.outputs is None:
            return
        if tr.value is None:
            self._outputs[tr.task_id] = tr.outputs
        else:
            slot = self._outputs.setdefault(tr.task_id, {})
            if isinstance(slot, dict):
                slot[tr.value] = tr.outputs

    def base_context(self) -> dict[str, Any]:
        ex = self.execution
        ctx: dict[str, Any] = {
            "inputs": {**ex.inputs, **self.secrets} if self.secrets else ex.inputs,
            "outputs": self._outputs,
            "execution": {"id": ex.id, "startDate": format_instant(ex.state.start_date),
                          "originalId": ex.original_id or ex.id, "state": ex.state.current},
            "flow": {"id": ex.flow_id, "namespace": ex.namespace, "revision": ex.flow_revision},
            "labels": dict(ex.labels),
            "envs": self.engine.envs,
        }
        if ex.trigger is not None:
            ctx["trigger"] = ex.trigger.get("variables") or {}
        ctx["vars"] = self.variables(ctx)
        return ctx

    def variables(self, ctx: dict[str, Any]) -> dict[str, Any]:
        if self._vars is None:
            try:
                self._vars = self.engine.renderer.render_value(self.flow.variables, ctx)
            except FlowdeckError:
                self._vars = dict(self.flow.variables)
        return self._vars

    def template_context(self, task: TaskDef, tr: TaskRun) -> dict[str, Any]:
        ctx = self.base_context()
        ctx["task"] = {"id": task.id, "type": task.type}
        ctx["taskrun"] = {"id": tr.id, "startDate": format_instant(tr.state.start_date),
                          "attemptsCount": len(tr.attempts), "value": tr.value,
                          "parentId": tr.parent_task_run_id, "iteration": tr.iteration}
        parent = self.execution.find_task_run(tr.parent_task_run_id) \
            if tr.parent_task_run_id else None
        if parent is not None:
            ctx["parent"] = {"taskrun": {"value": parent.value, "id": parent.id},
                             "outputs": parent.outputs}
        return ctx

    # -- the walk ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Run (or continue) the execution to a terminal state; cancellation means kill."""
        ex = self.execution
        await self._read_secrets()
        try:
            if ex.state.current != "PAUSED" or not self._has_paused_task_runs():
                self.set_state("RUNNING")
            state = await self.run_block(self.flow.tasks, None)
            final = state
            if state == "FAILED" and self.flow.errors:
                await self.run_block(self.flow.errors, None, block="errors")
            if self.flow.finally_:
                final_state = await self.run_block(self.flow.finally_, None, block="finally")
                if final_state == "FAILED" and final in ("SUCCESS", "WARNING"):
                    final = "FAILED"
            if final in ("SUCCESS", "WARNING"):
                self._render_flow_outputs()
                if ex.outputs is None and self.flow.outputs:
                    final = "FAILED"
            self.set_state(final)
        except asyncio.CancelledError:
            if not self.engine.shutting_down:  # a kill; a shutdown leaves it recoverable
                self._finish_killed()
                await self.engine.store.flush()
                await self._expire_approvals()
            raise
        await self.engine.store.flush()
        await self._expire_approvals()

    async def _expire_approvals(self) -> None:
        """A gate still pending when the run ends (another branch failed) is expired, so a
        later decision is refused instead of answering with no effect."""
        if any(t.type == "flowdeck.approval.Request" for t in self.flow.tasks_by_id.values()):
            state = self.execution.state.current
            with contextlib.suppress(FlowdeckError):
                await self.engine.approvals.expire_for_execution(
                    self.execution.id, f"execution {self.execution.id} ended {state}")

    def _finish_killed(self) -> None:
        now = self.now
        for tr in self.execution.task_runs:
            if tr.state.current not in TERMINAL_STATES:
                for attempt in tr.attempts:
                    if attempt.state.current not in TERMINAL_STATES:
                        attempt.state.to("KILLED", now)
                tr.state.to("KILLED", now)
        if self.execution.state.current != "KILLING":
            self.execution.state.to("KILLING", now)
        self.execution.state.to("KILLED", now)
        self.save()

    def _has_paused_task_runs(self) -> bool:
        return any(tr.state.current == "PAUSED" for tr in self.execution.task_runs)

    def _render_flow_outputs(self) -> None:
        if not self.flow.outputs:
            return
        ctx = self.base_context()
        out: dict[str, Any] = {}
        for spec in self.flow.outputs:
            try:
                out[spec.id] = self.engine.renderer.render_value(spec.value, ctx)
            except FlowdeckError as exc:
                self.execution_log("ERROR", f"flow output '{spec.id}': {exc}")
                return
        self.execution.outputs = self.clean(out)

    async def run_block(self, tasks: list[TaskDef], parent: TaskRun | None,
                        value: str | None = None, iteration: int | None = None,
                        block: str = "tasks") -> str:
        if any(t.dependsOn for t in tasks):
            return await self._run_dag(tasks, parent, value, iteration)
        states: list[str] = []
        for task in tasks:
            if task.disabled:
                continue
            await self._honour_pause_request()
            state = await self.run_task(task, parent, value, iteration)
            states.append(state)
            if state in FAILED_STATES:
                break
        return combine(states)

    async def _run_dag(self, tasks: list[TaskDef], parent: TaskRun | None,
                       value: str | None, iteration: int | None) -> str:
        done: dict[str, str] = {}
        running: dict[asyncio.Task[str], str] = {}
        pending = [t for t in tasks if not t.disabled]
        disabled = {t.id for t in tasks if t.disabled}
        failed = False
        try:
            while pending or running:
                if not failed:
                    ready = [t for t in pending
                             if all(d in done or d in disabled for d in t.dependsOn)]
                    for task in ready:
                        pending.remove(task)
                        coro = self.run_task(task, parent, value, iteration)
                        running[asyncio.create_task(coro)] = task.id
                if not running:
                    break
                finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for fut in finished:
                    task_id = running.pop(fut)
                    done[task_id] = fut.result()
                    if done[task_id] in FAILED_STATES:
                        failed = True
        except asyncio.CancelledError:
            for fut in running:
                fut.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise
        return combine(list(done.values()))

    async def run_concurrently(self, branches: list[tuple[list[TaskDef], str | None, int | None]],
                               parent: TaskRun, limit: int) -> str:
        gate = asyncio.Semaphore(limit if limit > 0 else max(1, len(branches)))

        async def branch(tasks: list[TaskDef], value: str | None, iteration: int | None) -> str:
            async with gate:
                return await self.run_block(tasks, parent, value if value is not None
                                            else parent.value, iteration)

        results = await asyncio.gather(*(branch(*b) for b in branches))
        return combine(list(results))

    def _task_run_for(self, task: TaskDef, parent: TaskRun | None, value: str | None,
                      iteration: int | None) -> tuple[TaskRun, bool]:
        key = (task.id, parent.id if parent else None, value)
        existing = self._index.get(key)
        if existing is not None:
            return existing, False
        tr = TaskRun(
            id=self.engine.new_id(), execution_id=self.execution.id,
            namespace=self.execution.namespace, flow_id=self.execution.flow_id, task_id=task.id,
            state=StateInfo.new("CREATED", self.now), parent_task_run_id=key[1], value=value,
            iteration=iteration)
        self.execution.task_runs.append(tr)
        self._index[key] = tr
        return tr, True

    async def run_task(self, task: TaskDef, parent: TaskRun | None, value: str | None,
                       iteration: int | None) -> str:
        tr, _ = self._task_run_for(task, parent, value, iteration)
        current = tr.state.current
        if current in TERMINAL_STATES:
            return current
        ctx = RunContext(self, task, tr)
        # A domain's policy may bound a task its flow gives no timeout (a pipeline phase).
        limit = self.engine.flow_policies.task_timeout(self.flow, task, parent is None)
        if isinstance(task, FlowableTask):
            state = await self._run_flowable(task, tr, ctx, limit)
        else:
            assert isinstance(task, RunnableTask)
            state = await self._run_attempts(task, tr, ctx, limit or task.timeout)
        if tr.outputs is not None and state in SUCCESSFUL_STATES:
            self._record_outputs(tr)
        return state

    async def _run_flowable(self, task: FlowableTask, tr: TaskRun, ctx: RunContext,
                            limit: timedelta | None = None) -> str:
        if tr.state.current not in ("RUNNING", "PAUSED"):
            tr.state.to("RUNNING", self.now)
            self.save()
        try:
            if limit is None:
                state = await task.orchestrate(ctx, self)
            else:
                state = await self._orchestrate_within(task, tr, ctx, limit)
        except asyncio.CancelledError:
            raise
        except FlowdeckError as exc:
            self.emit_logs(tr, "ERROR", [f"task '{task.id}': {exc}"])
            state = "FAILED"
        except Exception as exc:  # a bug in a task must not take the engine down
            self.emit_logs(tr, "ERROR", [f"task '{task.id}': {type(exc).__name__}: {exc}"])
            state = "FAILED"
        tr.outputs = self.clean(tr.outputs)
        if state == "FAILED" and task.allowFailure:
            state = "WARNING"
        tr.state.to(state, self.now)
        self.save()
        return state

    async def _orchestrate_within(self, task: FlowableTask, tr: TaskRun, ctx: RunContext,
                                  limit: timedelta) -> str:
        """Run a block for at most `limit`; what still runs inside it then is stopped and
        fails (a block bounded as a whole, e.g. by a policy's timeout)."""
        try:
            async with asyncio.timeout(limit.total_seconds()):
                return await task.orchestrate(ctx, self)
        except TimeoutError:
            pass
        now = self.now
        inside = {tr.id}
        for child in self.execution.task_runs:  # parents come before their children
            if child.parent_task_run_id in inside:
                inside.add(child.id)
                if child.state.current not in TERMINAL_STATES:
                    for attempt in child.attempts:
                        if attempt.state.current not in TERMINAL_STATES:
                            attempt.state.to("FAILED", now)
                    child.state.to("FAILED", now)
        self.emit_logs(tr, "ERROR", [f"task '{task.id}' failed: timed out after "
                                     f"{format_duration(limit)}"])
        if not self._holds_global_slot:  # it was waiting without one when time ran out
            await self.engine._launcher.global_slots.acquire()
            self._holds_global_slot = True
        self.save()
        return "FAILED"

    async def _run_attempts(self, task: RunnableTask, tr: TaskRun, ctx: RunContext,
                            timeout: timedelta | None = None) -> str:
        policy = task.retry
        first_start = now = self.now
        base = len(tr.attempts)  # attempts from before a restart do not count
        if tr.state.current != "RUNNING":
            tr.state.to("RUNNING", now)
        while True:
            attempt = Attempt(StateInfo.new("RUNNING", self.now))
            tr.attempts.append(attempt)
            ctx.attempt_number = len(tr.attempts)
            self.save()
            failure: str | None = None
            outputs: dict[str, Any] | None = None
            try:
                if timeout is not None:
                    try:
                        async with asyncio.timeout(timeout.total_seconds()):
                            outputs = await task.execute(ctx)
                    except TimeoutError:
                        failure = f"timed out after {format_duration(timeout)}"
                else:
                    outputs = await task.execute(ctx)
            except asyncio.CancelledError:
                raise
            except TaskFailure as exc:
                failure = str(exc)
            except FlowdeckError as exc:
                failure = str(exc)
            except Exception as exc:  # a bug in a task must not take the engine down
                failure = f"{type(exc).__name__}: {exc}"
            now = self.now
            if failure is None:
                warning = bool(outputs and outputs.pop("_warning", False))
                attempt.state.to("SUCCESS", now)
                if outputs is not None:
                    tr.outputs = self.clean(outputs)
                final = "WARNING" if warning else "SUCCESS"
                if len(tr.attempts) > 1 and policy is not None and policy.warningOnRetry:
                    final = "WARNING"
                tr.state.to(final, now)
                self.save()
                return final
            self.emit_logs(tr, "ERROR", [f"task '{task.id}' failed: {failure}"])
            tr.outputs = self.clean(tr.outputs)  # what a failing task left (an HTTP answer)
            attempt.state.to("FAILED", now)
            delay = self._next_retry(policy, len(tr.attempts) - base, now - first_start)
            if delay is None:
                final = "WARNING" if task.allowFailure else "FAILED"
                tr.state.to(final, now)
                self.save()
                return final
            tr.state.to("RETRYING", now)
            self.save()
            self.emit_logs(tr, "INFO", [f"retrying in {format_duration(delay)} "
                                        f"(attempt {len(tr.attempts) + 1})"])
            await asyncio.sleep(delay.total_seconds())
            tr.state.to("RUNNING", self.now)

    @staticmethod
    def _next_retry(policy: RetryPolicy | None, attempts: int, elapsed: timedelta
                    ) -> timedelta | None:
        if policy is None:
            return None
        if policy.maxAttempts is not None and attempts >= policy.maxAttempts:
            return None
        delay = retry_delay(policy, attempts)
        if policy.maxDuration is not None and elapsed + delay > policy.maxDuration:
            return None
        return delay

    # -- waiting for people -----------------------------------------------------------------

    async def _honour_pause_request(self) -> None:
        event = self._pause_requested
        if event is None:
            return
        await self._without_slot(event.wait())
        self._pause_requested = None

    def request_pause(self) -> None:
        """Pause now (as Kestra shows it); tasks already running finish, no new one starts."""
        if self._pause_requested is None:
            self._pause_requested = asyncio.Event()
            self.execution_log("INFO", "execution paused on request; running tasks finish")
            self.set_state("PAUSED")

    async def without_slot(self, awaitable: Any) -> Any:
        """Await something another party finishes (a person, a worker) without holding a
        global execution slot meanwhile."""
        return await self._without_slot(awaitable)

    async def _without_slot(self, awaitable: Any) -> Any:
        """Wait without holding a global execution slot, so waiting runs never block others.

        A kill (cancellation) while waiting does not take the slot back: the execution ends.
        """
        slots = self.engine._launcher.global_slots
        if self._holds_global_slot:
            slots.release()
            self._holds_global_slot = False
        result = await awaitable
        await slots.acquire()
        self._holds_global_slot = True
        return result

    async def wait_for_decision(self, ctx: RunContext, timeout: timedelta | None) -> Decision:
        tr = ctx.task_run
        now = self.now
        if tr.state.current != "PAUSED":
            tr.state.to("PAUSED", now)
        self._paused[tr.id] = ctx.task
        self.set_state("PAUSED")
        self.save()
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._decisions[tr.id] = future
        timer: asyncio.TimerHandle | None = None
        if timeout is not None:
            paused_at = tr.state.histories[-1].date
            remaining = (paused_at + timeout - now).total_seconds()
            timer = asyncio.get_running_loop().call_later(
                max(0.0, remaining), self._on_timer, tr.id)
        try:
            decision: Decision = await self._without_slot(future)
        finally:
            if timer is not None:
                timer.cancel()
            self._decisions.pop(tr.id, None)
            self._paused.pop(tr.id, None)
        if tr.state.current != "RUNNING":
            tr.state.to("RUNNING", self.now)
        if not self._decisions and self._pause_requested is None:
            self.set_state("RUNNING")
        self.save()
        return decision

    def _on_timer(self, task_run_id: str) -> None:
        task = self._paused.get(task_run_id)
        if task is None:
            return
        if task.type == "flowdeck.approval.Request":
            # The store decides whether the timer or a person came first.
            asyncio.get_running_loop().create_task(self._expire_approval(task_run_id))
        else:
            self.decide(task_run_id, Decision("timeout"))

    def decide(self, task_run_id: str, decision: Decision) -> bool:
        """Settle a wait; the first decision wins and later ones return False."""
        future = self._decisions.get(task_run_id)
        if future is None or future.done():
            return False
        future.set_result(decision)
        # Show the outcome at once, even if the runner must wait for a free slot to go on.
        task_run = self.execution.find_task_run(task_run_id)
        if task_run is not None and task_run.state.current == "PAUSED":
            task_run.state.to("RUNNING", self.now)
        if self._pause_requested is None and not any(
                not f.done() for f in self._decisions.values()):
            self.set_state("RUNNING")
        self.save()
        return True

    def paused_tasks(self) -> dict[str, TaskDef]:
        return dict(self._paused)

    def resume(self, inputs: dict[str, Any], by: str | None) -> None:
        """Resume every paused Pause task (validating `onResume` inputs) or a manual pause."""
        if self._pause_requested is not None and not self._paused:
            self._pause_requested.set()
            self.set_state("RUNNING")
            return
        from flowdeck.engine.tasks.flowable import Pause

        resolved: dict[str, dict[str, Any]] = {}
        for tr_id, task in self._paused.items():
            if isinstance(task, Pause):
                resolved[tr_id] = resolve_inputs(task.onResume, inputs, prefix="onResume",
                                                 uploads=self.engine.uploads_dir)
        if not resolved and not self._paused:
            raise InvalidInputsError("nothing in this execution is waiting to be resumed")
        for tr_id, values in resolved.items():
            self.decide(tr_id, Decision("resume", values, by=by))

    # -- approvals and subflows -------------------------------------------------------------

    async def run_approval(self, ctx: RunContext, task: ApprovalRequest) -> str:
        approvals = self.engine.approvals
        approval = await approvals.ensure(self, ctx, task)
        if approval.status == "pending":
            timeout = None
            if approval.expires_at is not None:
                paused_at = (ctx.task_run.state.histories[-1].date
                             if ctx.task_run.state.current == "PAUSED" else self.now)
                timeout = approval.expires_at - paused_at
            await self.wait_for_decision(ctx, timeout)
            approval = await approvals.get(approval.id)
        ctx.task_run.outputs = {
            "approvalId": approval.id, "status": approval.status,
            "decidedBy": approval.decided_by, "comment": approval.comment,
            "decidedAt": format_instant(approval.decided_at) if approval.decided_at else None,
        }
        if approval.status == "approved":
            ctx.log("INFO", f"approved by {approval.decided_by}")
            return "SUCCESS"
        if approval.status == "rejected":
            ctx.log("WARN", f"rejected by {approval.decided_by}: {approval.comment or ''}".rstrip())
            return "CANCELLED"
        ctx.log("ERROR", "approval expired before anyone decided")
        return "FAILED"

    async def _expire_approval(self, task_run_id: str) -> None:
        await self.engine.approvals.expire_for_task_run(task_run_id)
        self.decide(task_run_id, Decision("timeout"))

    async def run_subflow(self, ctx: RunContext, task: Subflow) -> str:
        tr = ctx.task_run
        child_id = (tr.outputs or {}).get("executionId")
        engine = self.engine
        if not child_id:
            labels = task.labels
            if isinstance(labels, dict):
                label_pairs = [(str(k), str(ctx.render(v))) for k, v in labels.items()]
            else:
                label_pairs = [(str(x["key"]), str(ctx.render(x["value"]))) for x in labels]
            if task.inheritLabels:
                label_pairs = [(k, v) for k, v in self.execution.labels
                               if not k.startswith("system.")] + label_pairs
            child = await engine.create_execution(
                str(ctx.render(task.namespace)), str(ctx.render(task.flowId)),
                inputs=ctx.render(task.inputs), labels=label_pairs, revision=task.revision,
                parent=self.execution, parent_task_run_id=tr.id,
                trigger={"id": task.id, "type": task.type, "variables": {
                    "executionId": self.execution.id, "namespace": self.execution.namespace,
                    "flowId": self.execution.flow_id,
                    "flowRevision": self.execution.flow_revision}})
            child_id = child.id
            tr.outputs = {"executionId": child_id}
            self.save()
            ctx.log("INFO", f"started subflow execution {child_id}")
        if not task.wait:
            return "SUCCESS"
        try:
            final = await self._without_slot(engine.wait_until_terminal(child_id))
        except asyncio.CancelledError:
            with contextlib.suppress(FlowdeckError):
                await engine.kill(child_id)
            raise
        state: str = final.state.current
        tr.outputs = {"executionId": child_id, "state": state, "outputs": final.outputs or {}}
        if state in ("SUCCESS", "WARNING"):
            return state
        if task.transmitFailed:
            ctx.log("ERROR", f"subflow execution {child_id} ended {state}")
            return "FAILED"
        return "WARNING"


def fresh_log_entry(execution: Execution, seq: int, task_run: TaskRun | None, level: str,
                    message: str, timestamp: str) -> LogEntry:
    return LogEntry(
        execution_id=execution.id, seq=seq, namespace=execution.namespace,
        flow_id=execution.flow_id, task_id=task_run.task_id if task_run else None,
        task_run_id=task_run.id if task_run else None,
        attempt_number=(len(task_run.attempts) - 1) if task_run and task_run.attempts else None,
        timestamp=timestamp, level=level, message=message)
