"""FlowCtl task types, engine tasks like any other (usable in any flow).

- `flowdeck.flowctl.Workflow` (flowable): runs its `tasks` as a DAG (`dependsOn`); among the
  tasks that are ready, a higher `priority` starts first (ties: the order they are listed);
  at most `maxConcurrency` run at once; `timeout` bounds the whole block (from when it first
  started, also across an engine restart): tasks still running then are stopped and fail, and
  the block fails. As in any DAG, once a task fails no new one starts.
- `flowdeck.flowctl.Generic`: `payload.command` with `payload.args` (each shell-quoted) and
  `payload.environment`, a real subprocess in its own process group.
- `flowdeck.flowctl.Ci`: clones `payload.repo_url` (a path or any URL git can reach) at
  `payload.branch` with dulwich into a fresh directory, then runs `payload.command` there with
  `payload.environment` (an object of variables; a string is `FLOWCTL_ENVIRONMENT`).
- `flowdeck.flowctl.Etl`: reads, transforms and writes rows (`engine/flowctl/etl.py`).
- `flowdeck.flowctl.MlTraining`: runs `[flowctl.task_types.ml_training] command` with the
  payload as JSON on stdin and in `FLOWCTL_PAYLOAD`.

Each has `name`, `uid` (the stable FlowCtl task id), `priority` and `payload`. Its outputs
are `{"result": {...}}`; a failed attempt leaves `{"result": ... or null, "error": "..."}`.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import shlex
import shutil
import sys
from datetime import timedelta
from typing import Any, ClassVar

from pydantic import Field, model_validator

from flowdeck.core.states import FAILED_STATES, TERMINAL_STATES
from flowdeck.core.timefmt import format_duration
from flowdeck.engine.flowctl.etl import (
    EtlError,
    fetch,
    parse_rows,
    read_local,
    resolve,
    source_format,
    transform,
    write_rows,
)
from flowdeck.engine.flowctl.process import (
    CLONE_SCRIPT,
    FlowctlFailure,
    TailingContext,
    as_text,
    environment,
    run_command,
)
from flowdeck.engine.flowctl.validation import payload_problems
from flowdeck.engine.tasks.base import FlowableTask, RunnableTask, TaskContext, TaskFailure
from flowdeck.engine.tasks.shell import CommandFailed, run_process

#: An environment variable's value is limited by the kernel (MAX_ARG_STRLEN, 128 KiB).
MAX_ENV_PAYLOAD = 96 * 1024
ML_SETTING = "[flowctl.task_types.ml_training] command"
STOPPED = "the task was stopped before it finished"


def _combine(states: list[str]) -> str:
    if any(s == "CANCELLED" for s in states):
        return "CANCELLED"
    if any(s in ("FAILED", "KILLED") for s in states):
        return "FAILED"
    if any(s == "WARNING" for s in states):
        return "WARNING"
    return "SUCCESS"


class Workflow(FlowableTask):
    """A DAG of tasks by priority, within a concurrency limit and a timeout."""

    tasks: list[Any] = Field(default_factory=list)
    maxConcurrency: int = Field(default=10, ge=1)
    #: The workflow's `config` as submitted (defaults filled in), for the views.
    config: dict[str, Any] = Field(default_factory=dict)
    child_fields = ("tasks",)
    required_children = ("tasks",)

    async def orchestrate(self, ctx: TaskContext, walker: Any) -> str:
        if self.timeout is None:
            return await self._run(ctx, walker)
        started = next((h.date for h in ctx.task_run.state.histories if h.state == "RUNNING"),
                       walker.now)
        remaining = (started + self.timeout - walker.now).total_seconds()
        try:
            async with asyncio.timeout(max(0.0, remaining)):
                return await self._run(ctx, walker)
        except TimeoutError:
            return self._timed_out(ctx, walker, self.timeout)

    async def _run(self, ctx: TaskContext, walker: Any) -> str:
        parent = ctx.task_run
        tasks = [t for t in self.tasks if not t.disabled]
        by_id = {t.id: t for t in tasks}
        # How many unfinished dependencies each task waits for, and who waits for each task.
        waiting = {t.id: sum(1 for d in set(t.dependsOn) if d in by_id) for t in tasks}
        dependents: dict[str, list[str]] = {}
        for task in tasks:
            for dep in set(task.dependsOn):
                dependents.setdefault(dep, []).append(task.id)
        # Ready tasks by priority (highest first), then as listed.
        ready: list[tuple[int, int, str]] = []
        position = {t.id: i for i, t in enumerate(tasks)}

        def make_ready(task_id: str) -> None:
            priority = int(getattr(by_id[task_id], "priority", 0))
            heapq.heappush(ready, (-priority, position[task_id], task_id))

        for task_id, count in waiting.items():
            if count == 0:
                make_ready(task_id)
        done: dict[str, str] = {}
        running: dict[asyncio.Task[str], str] = {}
        failed = False
        try:
            while ready or running:
                while not failed and ready and len(running) < self.maxConcurrency:
                    task = by_id[heapq.heappop(ready)[2]]
                    run = walker.run_task(task, parent, None, None)
                    running[asyncio.create_task(run)] = task.id
                if not running:
                    break
                finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for future in finished:
                    task_id = running.pop(future)
                    done[task_id] = future.result()
                    if done[task_id] in FAILED_STATES:
                        failed = True
                    for waiter in dependents.get(task_id, ()):
                        waiting[waiter] -= 1
                        if waiting[waiter] == 0:
                            make_ready(waiter)
        except BaseException:  # a kill, the timeout, or a bug: stop what still runs
            for future in running:
                future.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise
        return _combine(list(done.values()))

    def _timed_out(self, ctx: TaskContext, walker: Any, timeout: timedelta) -> str:
        spelled = self.config.get("timeout") or format_duration(timeout)
        message = f"workflow timed out after {spelled}"
        now = walker.now
        for tr in walker.execution.task_runs:
            if tr.parent_task_run_id != ctx.task_run.id or tr.state.current in TERMINAL_STATES:
                continue
            for attempt in tr.attempts:
                if attempt.state.current not in TERMINAL_STATES:
                    attempt.state.to("FAILED", now)
            tr.state.to("FAILED", now)
            tr.outputs = {"result": (tr.outputs or {}).get("result"), "error": message}
        ctx.log("ERROR", message)
        walker.save()
        return "FAILED"


class FlowctlTask(RunnableTask):
    """What every FlowCtl task type has; `work` does the task's job."""

    name: str | None = None
    uid: str | None = None
    priority: int = 1
    payload: dict[str, Any] = Field(default_factory=dict)

    spec_type: ClassVar[str] = ""
    safe_to_rerun = False

    @model_validator(mode="after")
    def _check_payload(self) -> FlowctlTask:
        problems = payload_problems(self.spec_type, self.payload, "payload",
                                    f"task '{self.name or self.id}'")
        if problems:
            raise ValueError("; ".join(f"{path}: {msg}" for path, msg in problems))
        return self

    async def work(self, ctx: TaskContext) -> dict[str, Any]:
        raise NotImplementedError

    async def execute(self, ctx: TaskContext) -> dict[str, Any] | None:
        try:
            return {"result": await self.work(ctx)}
        except asyncio.CancelledError:  # a kill, a workflow timeout or the engine stopping
            ctx.task_run.outputs = {"result": None, "error": STOPPED}
            # Staged now, so it is in the snapshot written before the engine stops.
            ctx.services.stage_execution(ctx.execution)
            raise
        except FlowctlFailure as exc:
            ctx.task_run.outputs = {"result": exc.result, "error": str(exc)}
            raise
        except (TaskFailure, EtlError) as exc:
            ctx.task_run.outputs = {"result": None, "error": str(exc)}
            raise TaskFailure(str(exc)) from None
        except Exception as exc:  # the runner reports it too; keep it for the views
            ctx.task_run.outputs = {"result": None, "error": f"{type(exc).__name__}: {exc}"}
            raise

    def variables(self) -> dict[str, str]:
        return {"FLOWCTL_TASK_ID": self.uid or "", "FLOWCTL_TASK_NAME": self.name or self.id}


def _script(command: str, args: list[Any]) -> str:
    return command + "".join(" " + shlex.quote(as_text(a)) for a in args)


class Generic(FlowctlTask):
    spec_type = "generic"

    async def work(self, ctx: TaskContext) -> dict[str, Any]:
        script = _script(str(self.payload["command"]), list(self.payload.get("args") or []))
        env = environment(ctx, self.variables(), self.payload.get("environment"))
        return await run_command(ctx, ["/bin/sh", "-c", script], env, ctx.create_workdir())


class Ci(FlowctlTask):
    spec_type = "ci"

    async def work(self, ctx: TaskContext) -> dict[str, Any]:
        repo_url = str(self.payload["repo_url"])
        branch = self.payload.get("branch")
        workdir = ctx.create_workdir()
        checkout = workdir / "repo"
        if checkout.exists():  # a retry starts from a fresh clone
            await asyncio.to_thread(shutil.rmtree, checkout, True)
        where = f"{repo_url}" + (f" at branch '{branch}'" if branch else "")
        ctx.log("INFO", f"cloning {where}")
        tailing = TailingContext(ctx)
        try:
            cloned = await run_process(
                tailing, [sys.executable, "-c", CLONE_SCRIPT, repo_url, str(checkout),
                          str(branch or "")], dict(ctx.services.task_env), workdir)
        except CommandFailed:
            reason = tailing.tail[-1] if tailing.tail else "no output"
            raise FlowctlFailure(f"cannot clone {where}: {reason}") from None
        commit = (cloned.get("vars") or {}).get("commit")
        ctx.log("INFO", f"cloned {where} at {commit}")
        target = self.payload.get("environment")
        layer = {"FLOWCTL_ENVIRONMENT": target} if isinstance(target, str) else target
        env = environment(ctx, self.variables(), layer)
        try:
            result = await run_command(ctx, ["/bin/sh", "-c", str(self.payload["command"])],
                                       env, checkout)
        except FlowctlFailure as exc:
            if exc.result is not None:
                exc.result.update(commit=commit, branch=branch)
            raise
        result.update(commit=commit, branch=branch)
        return result


class Etl(FlowctlTask):
    spec_type = "etl"

    async def work(self, ctx: TaskContext) -> dict[str, Any]:
        settings = ctx.services.flowctl.settings.etl
        source_url = str(self.payload["source_url"])
        target_url = str(self.payload["target_url"])
        fmt = self.payload.get("format")
        source = resolve(source_url, settings, "source")
        target = resolve(target_url, settings, "target")
        if target.kind == "http":
            raise EtlError(f"target '{target_url}': rows are written to file:// or "
                           "sqlite:///PATH#TABLE locations, not over HTTP")
        if source.kind == "http":
            data, content_type = await fetch(source.url, settings.max_bytes)
            read_as = source_format(source, fmt, content_type)
            rows = await asyncio.to_thread(parse_rows, data, read_as, settings.max_rows)
        else:
            rows, read_as = await asyncio.to_thread(read_local, source, fmt, settings)
        rows_read = len(rows)
        ctx.log("INFO", f"read {rows_read} rows from {source.url} ({read_as})")
        how = self.payload.get("transformation") or "none"
        rows = await asyncio.to_thread(transform, rows, how)
        written, wrote_as = await asyncio.to_thread(write_rows, target, rows, fmt)
        ctx.log("INFO", f"wrote {written} rows to {target.url} ({wrote_as})")
        return {"rows_read": rows_read, "rows_written": written, "source": source.url,
                "target": target.url, "format": read_as, "transformation": how}


class MlTraining(FlowctlTask):
    spec_type = "ml_training"

    async def work(self, ctx: TaskContext) -> dict[str, Any]:
        configured = ctx.services.flowctl.settings.task_types.get("ml_training")
        if configured is None:
            raise FlowctlFailure(f"no command is configured for ml_training tasks; add "
                                 f"{ML_SETTING} = \"...\" to the configuration")
        workdir = ctx.create_workdir()
        text = json.dumps(self.payload, ensure_ascii=False)
        payload_file = workdir / "payload.json"
        await asyncio.to_thread(payload_file.write_text, text, "utf-8")
        layer = {"FLOWCTL_PAYLOAD_FILE": str(payload_file)}
        if len(text.encode("utf-8")) <= MAX_ENV_PAYLOAD:
            layer["FLOWCTL_PAYLOAD"] = text
        else:
            ctx.log("WARN", "the payload is too large for an environment variable; it is on "
                            "stdin and in FLOWCTL_PAYLOAD_FILE only")
        env = environment(ctx, configured.environment, self.variables(), layer)
        script = f"exec < {shlex.quote(str(payload_file))}\n{configured.command}"
        return await run_command(ctx, ["/bin/sh", "-c", script], env, workdir)


TASKS: dict[str, type[FlowableTask] | type[RunnableTask]] = {
    "flowdeck.flowctl.Workflow": Workflow,
    "flowdeck.flowctl.Generic": Generic,
    "flowdeck.flowctl.Ci": Ci,
    "flowdeck.flowctl.Etl": Etl,
    "flowdeck.flowctl.MlTraining": MlTraining,
}
