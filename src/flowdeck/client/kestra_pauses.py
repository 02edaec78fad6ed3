"""The approval queue on a real Kestra: executions PAUSED on a Pause task.

Kestra has no approvals API; its human gate is the Pause task. On a Kestra backend an
approval is one PAUSED task run of a Pause task (id `<executionId>:<taskRunId>`), its rows
the task's `onResume` inputs (the form, with their defaults), its age the time it has waited:

- approve = resume, with the defaults of the `onResume` inputs; the comment fills the input
  named `comment`, `reason` or `justification` when the pause declares one;
- reject = kill, and the comment (and who decided) kept as labels once it is KILLED;
- the first decision wins: an execution no longer PAUSED (someone resumed or killed it, from
  the deck or Kestra's UI) is a ConflictError saying what happened and when.

Kestra keeps no record of decisions: only pending approvals are listed. What an older Kestra
cannot do is said by `lacking()` (the deck shows it) and refused with `NotAvailable`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flowdeck.client.kestra_compat import (
    NotAvailable,
    ProtocolError,
    action_path,
    parse_version,
    segment,
)
from flowdeck.core.errors import ConflictError, FlowdeckError, NotFoundError
from flowdeck.core.models import Approval, Execution, TaskRun
from flowdeck.core.states import is_terminal

if TYPE_CHECKING:
    from flowdeck.client.http import HttpBackend

PAUSE_TYPES = frozenset({"io.kestra.plugin.core.flow.Pause", "io.kestra.core.tasks.flows.Pause"})
COMMENT_INPUTS = ("comment", "reason", "justification")
#: How long a reject waits for the killed execution to be KILLED before labelling it.
KILL_WAIT_S = 10.0
KILL_POLL_S = 0.2
PAGE = 100
ROW_FIELDS = ["input", "type", "default", "required"]
#: (minimum Kestra version, what an older one cannot do)
NEEDS = (((1, 0, 0), "reject: killing a PAUSED execution needs Kestra 1.0 or later"),
         ((0, 20, 0), "reject comments: execution labels need Kestra 0.20 or later"))


def lacking(version: str) -> tuple[str, ...]:
    """What a Kestra of `version` cannot do of approve/reject (nothing for 1.0 and later)."""
    parsed = parse_version(version)
    if parsed is None:
        return ()
    return tuple(text for minimum, text in NEEDS if parsed < minimum)


def approval_id(execution_id: str, task_run_id: str) -> str:
    return f"{execution_id}:{task_run_id}"


def _tasks(tasks: Any) -> Iterator[dict[str, Any]]:
    for task in tasks if isinstance(tasks, list) else []:
        if isinstance(task, dict):
            yield task
            for key in ("tasks", "then", "else", "errors", "finally"):
                yield from _tasks(task.get(key))
            cases = task.get("cases")
            if isinstance(cases, dict):
                for branch in cases.values():
                    yield from _tasks(branch)


def pause_tasks(flow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The flow's Pause tasks by id (nested ones included)."""
    found: dict[str, dict[str, Any]] = {}
    for key in ("tasks", "errors", "finally", "afterExecution"):
        for task in _tasks(flow.get(key)):
            if task.get("type") in PAUSE_TYPES and isinstance(task.get("id"), str):
                found[task["id"]] = task
    return found


def _paused_since(task_run: TaskRun, execution: Execution) -> datetime:
    for history in reversed(task_run.state.histories):
        if history.state == "PAUSED":
            return history.date
    return execution.state.histories[-1].date


def form_rows(task: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for spec in task.get("onResume") or []:
        if isinstance(spec, dict) and spec.get("id"):
            default = spec.get("defaults")
            rows.append({"input": str(spec["id"]), "type": str(spec.get("type") or "STRING"),
                         "default": "" if default is None else str(default),
                         "required": "yes" if spec.get("required", True) and default is None
                         else "no"})
    return rows


def approvals_of(execution: Execution, flow: dict[str, Any]) -> list[Approval]:
    """An approval for each task run of the execution PAUSED on a Pause task."""
    if execution.state.current != "PAUSED":
        return []
    pauses = pause_tasks(flow)
    out = []
    for task_run in execution.task_runs:
        task = pauses.get(task_run.task_id)
        if task is None or task_run.state.current != "PAUSED":
            continue
        rows = form_rows(task)
        out.append(Approval(
            id=approval_id(execution.id, task_run.id), execution_id=execution.id,
            task_run_id=task_run.id, namespace=execution.namespace,
            flow_id=execution.flow_id, task_id=task_run.task_id,
            title=str(task.get("description") or f"{task_run.task_id}: paused"),
            description=flow.get("description"), rows=rows,
            display_fields=ROW_FIELDS if rows else [],
            metadata={"kind": "kestra-pause", "onResume": task.get("onResume") or []},
            allow_bulk_approval=True, require_comment=False, status="pending",
            created_at=_paused_since(task_run, execution)))
    return out


def resume_inputs(approval: Approval, comment: str | None) -> dict[str, Any]:
    """The `onResume` values an approval resumes with: the defaults, and the comment in the
    input meant for one."""
    values: dict[str, Any] = {}
    for spec in approval.metadata.get("onResume") or []:
        if not isinstance(spec, dict) or not spec.get("id"):
            continue
        if comment and str(spec["id"]).lower() in COMMENT_INPUTS:
            values[str(spec["id"])] = comment
        elif spec.get("defaults") is not None:
            values[str(spec["id"])] = spec["defaults"]
    return values


def decided_already(execution: Execution) -> ConflictError:
    """The first decision won: what happened to the pause, and when."""
    state = execution.state.current
    how = "rejected (killed)" if state in ("KILLING", "KILLED") else (
        f"approved (resumed, now {state})")
    when = execution.state.histories[-1].date.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = "rejected" if state in ("KILLING", "KILLED") else "approved"
    return ConflictError(f"execution {execution.id} was already {how} at {when}",
                         {"approvalStatus": status, "decidedAt": when})


class KestraPauses:
    """Approvals over a Kestra backend (`HttpBackend` delegates here on Kestra)."""

    def __init__(self, backend: HttpBackend) -> None:
        self.backend = backend
        self._flows: dict[tuple[str, str, int], dict[str, Any]] = {}

    async def _flow(self, execution: Execution) -> dict[str, Any]:
        key = (execution.namespace, execution.flow_id, execution.flow_revision)
        if key not in self._flows:
            body = await self.backend._get_json(
                f"/flows/{segment(key[0])}/{segment(key[1])}",
                params={"revision": str(key[2]), "source": "false"})
            if not isinstance(body, dict):
                raise ProtocolError("a flow was not a JSON object")
            self._flows[key] = body
        return self._flows[key]

    async def pending(self) -> list[Approval]:
        info = await self.backend._ensure()
        params = [("page", "1"), ("size", str(PAGE)), ("sort", "state.startDate:asc")]
        params.append(("filters[state][IN]", "PAUSED") if info.query_filters
                      else ("state", "PAUSED"))
        body = await self.backend._get_json("/executions/search", params=params)
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise ProtocolError("execution search did not answer {results, total}")
        out: list[Approval] = []
        for item in body["results"]:
            try:
                execution = await self.backend.get_execution(str(item.get("id")))
                out.extend(approvals_of(execution, await self._flow(execution)))
            except NotFoundError:
                continue  # deleted since the search
        return sorted(out, key=lambda a: a.created_at)

    async def get(self, approval_id: str) -> Approval:
        execution_id, _, task_run_id = approval_id.partition(":")
        execution = await self.backend.get_execution(execution_id)
        for approval in approvals_of(execution, await self._flow(execution)):
            if approval.task_run_id == task_run_id or not task_run_id:
                return approval
        if execution.state.current != "PAUSED":
            raise decided_already(execution)
        raise NotFoundError(f"no paused task run '{task_run_id}' in execution {execution_id}")

    async def decide(self, approval_id: str, *, approve: bool, by: str,
                     comment: str | None = None) -> Approval:
        info = await self.backend._ensure()
        if not approve:
            for text in lacking(info.api_version):
                if text.startswith("reject:"):
                    raise NotAvailable(text)
        approval = await self.get(approval_id)  # a ConflictError if no longer PAUSED
        if approve:
            inputs = resume_inputs(approval, comment)
            try:
                await self.backend.resume(approval.execution_id, inputs)
            except ConflictError:
                raise decided_already(await self.backend.get_execution(
                    approval.execution_id)) from None
        else:
            await self._reject(approval, by, comment, info.api_version)
        approval.status = "approved" if approve else "rejected"
        approval.decided_by, approval.comment = by, comment
        approval.decided_at = datetime.now(UTC)
        return approval

    async def _reject(self, approval: Approval, by: str, comment: str | None,
                      version: str) -> None:
        execution = await self.backend.kill(approval.execution_id)
        try:
            async with asyncio.timeout(KILL_WAIT_S):  # Kestra kills asynchronously
                while not is_terminal(execution.state.current):
                    await asyncio.sleep(KILL_POLL_S)
                    execution = await self.backend.get_execution(approval.execution_id)
        except TimeoutError:
            raise FlowdeckError(f"execution {approval.execution_id} is being killed but was "
                                f"not KILLED after {KILL_WAIT_S:g} s; the comment was not "
                                "kept") from None
        if any(text.startswith("reject comments") for text in lacking(version)):
            return
        labels = [{"key": k, "value": v} for k, v in execution.labels
                  if not k.startswith("system.") and v]
        labels.append({"key": "flowdeck.rejected-by", "value": by or "unknown"})
        if comment:
            labels.append({"key": "flowdeck.comment", "value": comment})
        info = await self.backend._ensure()
        await self.backend._send(
            "POST", action_path(approval.execution_id, "labels", info.action_paths),
            json=labels)
