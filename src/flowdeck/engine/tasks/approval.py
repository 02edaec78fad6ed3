"""`flowdeck.approval.Request`: a human gate over a few rows; approve resumes, reject cancels."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from flowdeck.engine.tasks.base import Duration, FlowableTask, TaskContext


class ApprovalRequest(FlowableTask):
    title: str
    description: str | None = None
    rows: Any = Field(default_factory=list)
    displayFields: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    allowBulkApproval: bool = False
    requireComment: bool = False
    expiresIn: Duration | None = None

    async def orchestrate(self, ctx: TaskContext, walker: Any) -> str:
        state: str = await walker.run_approval(ctx, self)
        return state


TASKS: dict[str, type[FlowableTask]] = {"flowdeck.approval.Request": ApprovalRequest}
