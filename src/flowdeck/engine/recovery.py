"""Start-up recovery: nothing a previous process left unfinished stays RUNNING.

Each unfinished execution continues from its last durable point: completed task runs are kept,
an attempt cut short by the crash is closed as FAILED, and the task runs again if that is safe
(`retryOnCrash`, true by default for tasks without side effects) or fails with a log line saying
why. Executions caught while KILLING end KILLED.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import aiosqlite

from flowdeck.core.errors import FlowdeckError
from flowdeck.core.models import Execution
from flowdeck.core.states import TERMINAL_STATES
from flowdeck.engine.runner import ExecutionRunner
from flowdeck.engine.tasks.base import FlowableTask

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine

ORDER = {"RUNNING": 0, "KILLING": 0, "PAUSED": 0, "RESTARTED": 1, "RETRYING": 1, "QUEUED": 2,
         "CREATED": 3}


async def recover(engine: Engine) -> list[str]:
    """Relaunch or settle every unfinished execution; returns their ids."""
    placeholders = ",".join("?" * len(TERMINAL_STATES))
    rows = await engine.store.fetchall(
        f"SELECT doc FROM executions WHERE state NOT IN ({placeholders}) ORDER BY start_date",
        sorted(TERMINAL_STATES))
    executions = [Execution.from_dict(json.loads(r[0])) for r in rows]
    await _forget_ended_secrets(engine)
    executions.sort(key=lambda e: (ORDER.get(e.state.current, 1), e.state.start_date))
    recovered = []
    for execution in executions:
        await engine.logs.prime(execution.id)
        try:
            flow = await engine.get_flow_revision(execution.namespace, execution.flow_id,
                                                  execution.flow_revision)
        except FlowdeckError as exc:
            _fail_without_flow(engine, execution, str(exc))
            continue
        runner = ExecutionRunner(engine, execution, flow)
        if execution.state.current == "KILLING":
            runner._finish_killed()
            continue
        _close_interrupted_attempts(runner)
        engine._launcher.forget(execution.id)
        engine._launcher.launch(execution, flow)
        recovered.append(execution.id)
    await engine.store.flush()
    return recovered


async def _forget_ended_secrets(engine: Engine) -> None:
    """Clear SECRET values a previous process could not delete when their execution ended."""
    placeholders = ",".join("?" * len(TERMINAL_STATES))

    async def op(conn: aiosqlite.Connection) -> None:
        await conn.execute(
            "DELETE FROM execution_secrets WHERE execution_id IN (SELECT id FROM executions "
            f"WHERE state IN ({placeholders}))", sorted(TERMINAL_STATES))

    await engine.store.run(op)


def _fail_without_flow(engine: Engine, execution: Execution, reason: str) -> None:
    now = engine.clock.now()
    engine.logs.emit(execution, None, "ERROR",
                     [f"cannot resume after restart: {reason}; execution failed"])
    for tr in execution.task_runs:
        if tr.state.current not in TERMINAL_STATES:
            tr.state.to("FAILED", now)
    execution.state.to("FAILED", now)
    engine.store.stage_execution(execution)


def _close_interrupted_attempts(runner: ExecutionRunner) -> None:
    now = runner.now
    execution = runner.execution
    for tr in execution.task_runs:
        if tr.state.current in TERMINAL_STATES or tr.state.current == "PAUSED":
            continue
        task = runner.flow.tasks_by_id.get(tr.task_id)
        if task is None or isinstance(task, FlowableTask):
            continue
        interrupted = [a for a in tr.attempts if a.state.current not in TERMINAL_STATES]
        for attempt in interrupted:
            attempt.state.to("FAILED", now)
        if not interrupted:
            continue
        if task.may_rerun_after_crash():
            runner.emit_logs(tr, "WARN", [
                f"flowdeck stopped during attempt {len(tr.attempts)} of task '{tr.task_id}'; "
                "running it again"])
        else:
            runner.emit_logs(tr, "ERROR", [
                f"flowdeck stopped during attempt {len(tr.attempts)} of task '{tr.task_id}'; "
                "it may have had side effects, so it is not run again (set retryOnCrash: true "
                "on the task to allow that)"])
            tr.state.to("FAILED", now)
    runner.save()
