"""A pipeline run as the API document shows it, built from its execution.

Pure functions: the execution (Kestra's model), the flow revision it runs, what external
workers reported (`forge_nodes`) and the failure lines of its attempts go in; a `PipelineRun`
comes out. Nothing here touches the store.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from flowdeck.core.forge import Phase as PhaseView
from flowdeck.core.forge import PipelineRun, PipelineTask, Step
from flowdeck.core.models import Attempt, Execution, TaskRun
from flowdeck.core.states import TERMINAL_STATES
from flowdeck.core.timefmt import format_instant
from flowdeck.engine.flows import FlowDefinition
from flowdeck.engine.forge import layout
from flowdeck.engine.forge.tasks import External
from flowdeck.engine.tasks.base import FlowableTask, TaskDef

RUN_STATUS = {"CREATED": "pending", "QUEUED": "pending", "SUCCESS": "success",
              "WARNING": "success", "FAILED": "failed", "KILLED": "cancelled",
              "CANCELLED": "cancelled"}
TASK_STATUS = {"CREATED": "pending", "QUEUED": "pending", "SUCCESS": "success",
               "WARNING": "success", "FAILED": "failed", "KILLED": "failed",
               "CANCELLED": "failed"}
EXIT_CODE = re.compile(r"failed with exit code (-?\d+)")
SIGNAL = re.compile(r"killed by signal (\d+)")
#: Labels a run carries (set when the forge creates it).
LABELS = ("repository", "branch", "commit_sha", "triggered_by", "trigger_type")


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """What a worker reported on an external task or step (a `forge_nodes` row)."""

    status: str
    error: str | None = None
    exit_code: int | None = None
    logs_s3_key: str | None = None


def run_status(state: str) -> str:
    return RUN_STATUS.get(state, "running")


def task_status(state: str | None) -> str:
    if state is None:
        return "pending"
    return TASK_STATUS.get(state, "running")


def repository_of(namespace: str, flow_id: str) -> str:
    return f"{namespace.partition('.')[2]}/{flow_id}"


def run_field(execution: Execution, name: str) -> str:
    """A run's branch, commit and so on: its `forge.*` label, else the input of that name."""
    value = execution.label(f"forge.{name}")
    if value is None:
        raw = execution.inputs.get(name)
        value = str(raw) if raw is not None else None
    if value is None and name == "trigger_type":
        return "manual"
    return value or ""


def logs_url(run_id: str, step_id: str) -> str:
    return f"/v1/runs/{run_id}/steps/{step_id}/logs"


def attempt_exit_code(attempt: Attempt, failure: str | None, outputs: Mapping[str, object] | None,
                      last: bool) -> int | None:
    state = attempt.state.current
    if state in ("SUCCESS", "WARNING"):
        code = (outputs or {}).get("exitCode") if last else None
        return code if isinstance(code, int) else 0
    if state != "FAILED":
        return None
    message = failure or ""
    if (found := EXIT_CODE.search(message)) is not None:
        return int(found.group(1))
    if (found := SIGNAL.search(message)) is not None:
        return 128 + int(found.group(1))
    if "timed out" in message:
        return 124
    return 1


def started_at(tr: TaskRun) -> str:
    for entry in tr.state.histories:
        if entry.state == "RUNNING":
            return format_instant(entry.date)
    return format_instant(tr.state.start_date)


def completed_at(tr: TaskRun | None) -> str | None:
    if tr is None or tr.state.current not in TERMINAL_STATES:
        return None
    return format_instant(tr.state.histories[-1].date)


class RunView:
    """Builds the `PipelineRun` of one execution."""

    def __init__(self, execution: Execution, flow: FlowDefinition,
                 reports: Mapping[str, WorkerReport],
                 failures: Mapping[tuple[str, int | None], str]) -> None:
        self.execution = execution
        self.flow = flow
        self.reports = reports
        self.failures = failures
        self.by_task: dict[str, TaskRun] = {}
        for tr in execution.task_runs:
            current = self.by_task.get(tr.task_id)
            if current is None or (current.value is not None and tr.value is None):
                self.by_task[tr.task_id] = tr

    def build(self) -> PipelineRun:
        ex = self.execution
        state = ex.state.current
        end = ex.state.end_date if state in TERMINAL_STATES else None
        return PipelineRun(
            id=ex.id, repository=repository_of(ex.namespace, ex.flow_id),
            branch=run_field(ex, "branch"), commit_sha=run_field(ex, "commit_sha"),
            status=run_status(state), triggered_by=run_field(ex, "triggered_by"),
            trigger_type=run_field(ex, "trigger_type"),
            started_at=format_instant(ex.state.start_date),
            completed_at=format_instant(end) if end is not None else None,
            phases=tuple(self._phase(spec) for spec in layout.phases(self.flow)),
            execution_state=state)

    def _phase(self, spec: layout.PhaseSpec) -> PhaseView:
        tr = self.by_task.get(spec.task.id)
        if tr is None:
            status = "skipped" if self.execution.state.current in TERMINAL_STATES else "pending"
        else:
            status = task_status(tr.state.current)
        return PhaseView(
            id=layout.phase_id(self.execution.id, spec.task.id), name=spec.task.id,
            group_number=spec.number, status=status,
            started_at=started_at(tr) if tr is not None else None,
            completed_at=completed_at(tr),
            tasks=tuple(self._task(task) for task in spec.tasks),
            timeout_seconds=spec.timeout.total_seconds() if spec.timeout else None)

    def _task(self, task: TaskDef) -> PipelineTask:
        tid = layout.task_uuid(self.execution.id, task.id)
        tr = self.by_task.get(task.id)
        if isinstance(task, External):
            return self._external(task, tid, tr)
        if isinstance(task, FlowableTask):
            steps = [self._child_step(tid, key, name) for key, name in layout.step_keys(task)]
        else:
            steps = self._attempt_steps(tid, tr)
        return PipelineTask(id=tid, project_name=task.id,
                            status=task_status(tr.state.current if tr else None),
                            steps=tuple(steps))

    def _attempt_steps(self, tid: str, tr: TaskRun | None) -> list[Step]:
        run_id = self.execution.id
        if tr is None or not tr.attempts:
            sid = layout.step_uuid(tid, "attempt:1")
            return [Step(sid, "attempt 1", "pending", None, logs_url(run_id, sid))]
        steps = []
        for n, attempt in enumerate(tr.attempts, 1):
            sid = layout.step_uuid(tid, f"attempt:{n}")
            failure = self.failures.get((tr.id, n - 1))
            code = attempt_exit_code(attempt, failure, tr.outputs, n == len(tr.attempts))
            steps.append(Step(sid, f"attempt {n}", task_status(attempt.state.current), code,
                              logs_url(run_id, sid)))
        return steps

    def _child_step(self, tid: str, key: str, name: str) -> Step:
        sid = layout.step_uuid(tid, key)
        tr = self.by_task.get(name)
        code = None
        if tr is not None and tr.attempts:
            last = tr.attempts[-1]
            code = attempt_exit_code(last, self.failures.get((tr.id, len(tr.attempts) - 1)),
                                     tr.outputs, True)
        return Step(sid, name, task_status(tr.state.current if tr else None), code,
                    logs_url(self.execution.id, sid))

    def _external(self, task: External, tid: str, tr: TaskRun | None) -> PipelineTask:
        report = self.reports.get(tid) or WorkerReport("pending")
        status, error = report.status, report.error
        engine_state = tr.state.current if tr is not None else None
        if (engine_state in TERMINAL_STATES and status not in ("success", "failed")) or (
                tr is None and self.execution.state.current in TERMINAL_STATES
                and status == "running"):
            status = "failed"  # timed out, killed, or the run ended around it
            if error is None and tr is not None:
                error = self.failures.get((tr.id, None))
        steps = []
        for key, name in layout.step_keys(task):
            sid = layout.step_uuid(tid, key)
            step = self.reports.get(sid) or WorkerReport("pending")
            steps.append(Step(sid, name, step.status, step.exit_code,
                              logs_url(self.execution.id, sid), step.logs_s3_key))
        return PipelineTask(id=tid, project_name=task.id, status=status, steps=tuple(steps),
                            external=True, error=error)


def duration_seconds(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds()))
