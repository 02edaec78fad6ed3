"""Task types of the forge domain.

- `flowdeck.pipeline.External`: a task done by an external worker. It waits (without holding
  an execution slot) until the worker reports it `success` or `failed` through the forge's
  task and step status updates; its `steps` are what the worker reports on. Its own `timeout`
  bounds the wait. After an engine restart it waits again, reading what was reported so far.
- `flowdeck.forge.ApproveAndDeploy`: the second task of a production deploy request: the
  person who approved the request approves the release (their comment is the justification)
  and the release is deployed with that approval.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from flowdeck.engine.tasks.base import FlowableTask, RunnableTask, TaskContext, TaskFailure

STEP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._:/-]{0,99}", re.ASCII)


class External(FlowableTask):
    """Waits for an external worker to run this task and report on it."""

    steps: list[str] = Field(default_factory=lambda: ["run"])
    #: What kind of worker should pick the task up (shown in the log; informative only).
    worker: str | None = None

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one step")
        if len(value) > 100:
            raise ValueError("at most 100 steps")
        for name in value:
            if STEP_NAME.fullmatch(name) is None:
                raise ValueError(f"step name {name!r}: letters, digits, space, '.', '_', ':', "
                                 "'/' or '-', at most 100")
        if len(set(value)) != len(value):
            raise ValueError("step names must be unique")
        return value

    async def orchestrate(self, ctx: TaskContext, walker: Any) -> str:
        state: str = await ctx.services.forge.runs.wait_for_worker(ctx, walker, self)
        return state


class ApproveAndDeploy(RunnableTask):
    """Approves a release for an environment as `approver`, then deploys it."""

    releaseId: str
    environment: str
    approver: str
    justification: str
    requestedBy: str

    safe_to_rerun = False

    async def execute(self, ctx: TaskContext) -> dict[str, Any] | None:
        from flowdeck.core.errors import FlowdeckError

        values = {name: str(ctx.render(getattr(self, name)) or "")
                  for name in ("releaseId", "environment", "approver", "justification",
                               "requestedBy")}
        try:
            approval, deployment = await ctx.services.forge.approve_and_deploy(
                values["releaseId"], values["environment"], approver=values["approver"],
                justification=values["justification"], requested_by=values["requestedBy"])
        except FlowdeckError as exc:
            raise TaskFailure(str(exc)) from None
        ctx.log("INFO", f"release approved by {approval.approver} (approval {approval.id}); "
                        f"deployment {deployment.id} is {deployment.status} at commit "
                        f"{deployment.gitops_commit_sha}")
        return {"approvalId": approval.id, "deploymentId": deployment.id,
                "status": deployment.status, "gitopsCommitSha": deployment.gitops_commit_sha}


TASKS: dict[str, type[FlowableTask] | type[RunnableTask]] = {
    "flowdeck.pipeline.External": External,
    "flowdeck.forge.ApproveAndDeploy": ApproveAndDeploy,
}
