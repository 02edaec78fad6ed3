"""`ForgeService`: the forge domain behind one object, `engine.forge`.

Its parts are reachable directly (`runs`, `releases`, `deployments`, `approvals`, `requests`,
`retention`); the methods here are what a route, a CLI command or a deck screen calls: each
validates its input (ValidationError naming the field), decides, and returns a `core.forge`
object. Refusals of the production gate are PermissionDenied with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from flowdeck.core.forge import (
    Deployment,
    DeployRequest,
    Page,
    PipelineRun,
    PipelineTask,
    ProjectSummary,
    Release,
    ReleaseApproval,
    Step,
)
from flowdeck.engine.forge.approvals import ReleaseApprovals
from flowdeck.engine.forge.deployments import DeploymentService
from flowdeck.engine.forge.events import PipelineEvents, WebhookTargets
from flowdeck.engine.forge.releases import ReleaseService
from flowdeck.engine.forge.requests import DeployRequests
from flowdeck.engine.forge.retention import RunRetention
from flowdeck.engine.forge.runs import RunService
from flowdeck.engine.forge.settings import ForgeSettings
from flowdeck.engine.forge.timeouts import PipelinePolicy

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine


class ForgeService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.settings = ForgeSettings.from_extra(engine.settings.extra.get("forge"),
                                                 engine.data_dir)
        self.runs = RunService(engine)
        self.releases = ReleaseService(engine, self.settings, self.runs)
        self.approvals = ReleaseApprovals(engine, self.settings, self.releases)
        self.deployments = DeploymentService(engine, self.settings, self.releases,
                                             self.approvals)
        self.requests = DeployRequests(engine, self.settings, self.releases)
        self.retention = RunRetention(engine, self.settings)
        self._background: asyncio.Task[None] | None = None
        engine.events.sources.append(PipelineEvents())
        if self.settings.webhooks:
            engine.events.resolvers.append(WebhookTargets(self.settings.webhooks))
        engine.approvals.guards.append(self.requests.guard)
        engine.flow_policies.add(PipelinePolicy(self.settings.max_runs_per_repository))

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """After the engine's recovery: finish pending deployments, start the retention."""
        await self.deployments.resume()
        self._background = asyncio.get_running_loop().create_task(
            self.retention.run_forever(), name="forge-retention")

    async def stop(self) -> None:
        task, self._background = self._background, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.deployments.stop()

    @property
    def environments(self) -> tuple[str, ...]:
        return self.settings.environments

    # -- pipeline runs ------------------------------------------------------------------------

    async def create_run(self, repository: str, branch: str, commit_sha: str,
                         triggered_by: str, trigger_type: str, *, by: str) -> PipelineRun:
        return await self.runs.create(repository, branch, commit_sha, triggered_by,
                                      trigger_type, by=by)

    async def get_run(self, run_id: str) -> PipelineRun:
        return await self.runs.get(run_id)

    async def list_runs(self, repository: str, branch: str | None = None, limit: int = 20,
                        offset: int = 0) -> Page[PipelineRun]:
        return await self.runs.list(repository, branch, limit, offset)

    async def cancel_run(self, run_id: str) -> PipelineRun:
        return await self.runs.cancel(run_id)

    async def step_logs(self, run_id: str, step_id: str) -> str:
        return await self.runs.step_logs(run_id, step_id)

    async def update_task_status(self, task_id: str, status: str,
                                 error: str | None = None) -> PipelineTask:
        return await self.runs.update_task_status(task_id, status, error)

    async def update_step_status(self, step_id: str, status: str, exit_code: int | None = None,
                                 logs_s3_key: str | None = None) -> Step:
        return await self.runs.update_step_status(step_id, status, exit_code, logs_s3_key)

    # -- releases -----------------------------------------------------------------------------

    async def create_release(self, repository: str, project: str, commit_sha: str,
                             artifacts: Any = None, *, by: str,
                             pipeline_run_id: str | None = None, tag: str | None = None,
                             oci_digest: str | None = None) -> Release:
        return await self.releases.create(repository, project, commit_sha, artifacts, by=by,
                                          pipeline_run_id=pipeline_run_id, tag=tag,
                                          oci_digest=oci_digest)

    async def get_release(self, repository: str, project: str, ref: str) -> Release:
        return await self.releases.get(repository, project, ref)

    async def release_by_id(self, release_id: str) -> Release:
        return await self.releases.by_id(release_id)

    async def list_releases(self, repository: str, project: str, limit: int = 20,
                            offset: int = 0) -> Page[Release]:
        return await self.releases.list(repository, project, limit, offset)

    async def list_projects(self) -> list[ProjectSummary]:
        """Every project with releases: the newest one and what runs in each environment."""
        active: dict[tuple[str, str], dict[str, Deployment]] = {}
        for deployment in await self.deployments.active():
            key = (deployment.repository, deployment.project)
            active.setdefault(key, {})[deployment.environment] = deployment
        return [ProjectSummary(repository, project, latest, count,
                               active.get((repository, project), {}))
                for repository, project, count, latest in await self.releases.projects()]

    # -- deployments and approvals ------------------------------------------------------------

    async def create_deployment(self, release_id: str, environment: str, *, by: str,
                                approval_id: str | None = None) -> Deployment:
        return await self.deployments.create(release_id, environment, by=by,
                                             approval_id=approval_id)

    async def get_deployment(self, deployment_id: str) -> Deployment:
        return await self.deployments.get(deployment_id)

    async def current_deployment(self, environment: str, repository: str,
                                 project: str) -> Deployment:
        return await self.deployments.current(environment, repository, project)

    async def deployment_history(self, environment: str, repository: str, project: str,
                                 limit: int = 20, offset: int = 0) -> Page[Deployment]:
        return await self.deployments.history(environment, repository, project, limit, offset)

    async def create_approval(self, release_id: str, environment: str, justification: str, *,
                              by: str) -> ReleaseApproval:
        return await self.approvals.create(release_id, environment, justification, by=by)

    async def approval_status(self, release_id: str, environment: str) -> ReleaseApproval:
        return await self.approvals.status(release_id, environment)

    async def get_approval(self, approval_id: str) -> ReleaseApproval:
        return await self.approvals.get(approval_id)

    async def list_approvals(self, release_id: str) -> list[ReleaseApproval]:
        return await self.approvals.list(release_id)

    async def revoke_approval(self, approval_id: str, *, by: str) -> ReleaseApproval:
        return await self.approvals.revoke(approval_id, by=by)

    async def request_deployment(self, release_id: str, environment: str, *,
                                 by: str) -> DeployRequest:
        return await self.requests.create(release_id, environment, by=by)

    async def deploy_requests(self) -> list[DeployRequest]:
        return await self.requests.pending()

    async def approve_and_deploy(self, release_id: str, environment: str, *, approver: str,
                                 justification: str,
                                 requested_by: str) -> tuple[ReleaseApproval, Deployment]:
        """What an approved deploy request does: approve as `approver`, deploy with it."""
        approval = await self.approvals.create(release_id, environment, justification,
                                               by=approver)
        deployment = await self.deployments.create(release_id, environment, by=requested_by,
                                                   approval_id=approval.id)
        return approval, deployment

    async def purge_runs(self) -> int:
        return await self.retention.purge()
