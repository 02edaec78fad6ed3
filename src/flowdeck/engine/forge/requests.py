"""Deploy requests: a deployment to an approval environment asked for without an approval.

It is an execution of the bundled flow `flowdeck.forge`/`deploy-request`, so it waits in the
same approval queue as every other approval (`flowdeck.approval.Request`, the deck's `:ap`, the
approvals API and CLI). Approving it (a comment is required: it becomes the justification)
runs `flowdeck.forge.ApproveAndDeploy`: the release is approved by the decider and deployed
for the requester. The release's creator may not approve their own request: the decision is
refused (a guard on the approval service) and the request keeps waiting for someone else;
rejecting it cancels the request.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from flowdeck.core.errors import PermissionDenied, ValidationError
from flowdeck.core.forge import DeployRequest
from flowdeck.core.models import Approval
from flowdeck.core.states import is_terminal
from flowdeck.engine.bus import EXECUTION
from flowdeck.engine.forge import validate
from flowdeck.engine.forge.settings import ForgeSettings

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine
    from flowdeck.engine.forge.releases import ReleaseService

NAMESPACE = "flowdeck.forge"
#: How long creating a request waits for it to be in the approval queue (its first task asks
#: at once; a loaded engine may take a moment to start it).
QUEUE_WAIT_S = 30.0
FLOW_ID = "deploy-request"
FLOW_SOURCE = """\
id: deploy-request
namespace: flowdeck.forge
description: >-
  A deployment that waits for someone's approval. Approve it with a comment (the
  justification) to approve the release and deploy it; the release's creator cannot approve.
inputs:
  - id: release_id
    type: STRING
  - id: environment
    type: STRING
  - id: requested_by
    type: STRING
  - id: repository
    type: STRING
  - id: project
    type: STRING
  - id: release_number
    type: STRING
  - id: commit_sha
    type: STRING
  - id: created_by
    type: STRING
tasks:
  - id: approve
    type: flowdeck.approval.Request
    title: >-
      Deploy {{ inputs.repository }}/{{ inputs.project }} release
      {{ inputs.release_number }} to {{ inputs.environment }}
    description: >-
      Requested by {{ inputs.requested_by }}. Approving approves the release for
      {{ inputs.environment }} (your comment is the justification) and deploys it.
    requireComment: true
    rows:
      - release: "{{ inputs.release_number }}"
        commit: "{{ inputs.commit_sha }}"
        environment: "{{ inputs.environment }}"
        created_by: "{{ inputs.created_by }}"
        requested_by: "{{ inputs.requested_by }}"
    displayFields: [release, commit, environment, created_by, requested_by]
    metadata:
      kind: forge.deploy-request
      release_id: "{{ inputs.release_id }}"
      environment: "{{ inputs.environment }}"
      requested_by: "{{ inputs.requested_by }}"
  - id: deploy
    type: flowdeck.forge.ApproveAndDeploy
    releaseId: "{{ inputs.release_id }}"
    environment: "{{ inputs.environment }}"
    approver: "{{ outputs.approve.decidedBy }}"
    justification: "{{ outputs.approve.comment }}"
    requestedBy: "{{ inputs.requested_by }}"
"""


def is_request(approval: Approval) -> bool:
    return approval.namespace == NAMESPACE and approval.flow_id == FLOW_ID


class DeployRequests:
    def __init__(self, engine: Engine, settings: ForgeSettings,
                 releases: ReleaseService) -> None:
        self.engine = engine
        self.settings = settings
        self.releases = releases

    async def create(self, release_id: str, environment: str, *, by: str) -> DeployRequest:
        rid = validate.uuid_field(release_id, "release_id")
        assert rid is not None
        env = validate.environment(environment, self.settings.environments)
        by = validate.person(by, "by")
        release = await self.releases.by_id(rid)
        if env not in self.settings.approval_environments:
            raise ValidationError([("environment", f"{env} needs no approval: deploy the "
                                    "release directly")])
        await self.engine.apply_flow(FLOW_SOURCE)
        execution = await self.engine.create_execution(
            NAMESPACE, FLOW_ID, source="forge",
            inputs={"release_id": release.id, "environment": env, "requested_by": by,
                    "repository": release.repository, "project": release.project,
                    "release_number": str(release.release_number),
                    "commit_sha": release.commit_sha, "created_by": release.created_by},
            labels=[("forge.release", release.id), ("forge.environment", env),
                    ("forge.requested_by", by)])
        approval = await self._queued(execution.id)
        return DeployRequest(execution_id=execution.id, release_id=release.id,
                             environment=env, requested_by=by, status="pending",
                             approval_id=approval.id if approval else None)

    async def _queued(self, execution_id: str) -> Approval | None:
        """The request's approval once it waits in the queue, so that whoever asked (the CLI
        says "waits in the approval queue") finds it there; None if the execution ended first
        or did not get there within QUEUE_WAIT_S."""
        sub = self.engine.subscribe(EXECUTION, execution_id=execution_id)
        try:
            async with asyncio.timeout(QUEUE_WAIT_S):
                while True:
                    found = await self.engine.approvals.list(None, execution_id=execution_id)
                    if found:
                        return found[0]
                    execution = await self.engine.get_execution(execution_id)
                    if is_terminal(execution.state.current):
                        return None
                    with contextlib.suppress(TimeoutError):
                        await sub.get(1.0)  # a state change, or a periodic re-check
        except TimeoutError:
            return None
        finally:
            sub.close()

    async def pending(self) -> list[DeployRequest]:
        """Requests waiting in the approval queue, oldest first."""
        out = []
        for approval in await self.engine.approvals.list("pending"):
            if is_request(approval):
                meta = approval.metadata
                out.append(DeployRequest(
                    execution_id=approval.execution_id,
                    release_id=str(meta.get("release_id") or ""),
                    environment=str(meta.get("environment") or ""),
                    requested_by=str(meta.get("requested_by") or ""), status="pending",
                    approval_id=approval.id))
        return out

    async def guard(self, approval: Approval, approve: bool, by: str) -> None:
        """Refuse the approval of a deploy request by the release's creator."""
        if not approve or not is_request(approval):
            return
        release = await self.releases.by_id(str(approval.metadata.get("release_id") or ""))
        if release.created_by == by:
            raise PermissionDenied(
                f"{by} created release {release.release_number} of {release.repository}/"
                f"{release.project} and cannot approve its deployment: someone else must")
