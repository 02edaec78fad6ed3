"""Deployments: a release goes to an environment as a commit in the GitOps repository.

Creating one is three steps under one lock (so commits, and which deployment supersedes which,
follow one order):

1. one transaction: the in-progress limit, the production gate (the approval is checked and
   consumed here), the deployment row (`pending`);
2. the manifest commit (`environments/<env>/<owner>/<name>/<project>.yaml`), in a thread;
3. one transaction: the commit SHA, `deployment.created`, and, without a deploy flow, the
   activation (the previous active deployment becomes `superseded`) and
   `deployment.completed`.

With `[forge] deploy_flow` the deployment stays `pending` until that flow's execution (inputs
`release`, `environment`, `manifest`, ...) ends: `active` on success, `failed` otherwise. A
commit that fails gives the approval back and fails the deployment; after a restart, pending
deployments are picked up again (`resume`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiosqlite

from flowdeck.core.errors import ConflictError, FlowdeckError, NotFoundError, PermissionDenied
from flowdeck.core.forge import Deployment, Page, Release
from flowdeck.core.ids import is_uuid
from flowdeck.core.states import SUCCESSFUL_STATES
from flowdeck.core.timefmt import format_instant
from flowdeck.engine.forge import validate
from flowdeck.engine.forge.events import deployment_completed, deployment_created
from flowdeck.engine.forge.gitops import GitOpsRepository, manifest_path, manifest_text
from flowdeck.engine.forge.settings import ForgeSettings

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine
    from flowdeck.engine.forge.approvals import ReleaseApprovals
    from flowdeck.engine.forge.releases import ReleaseService

log = logging.getLogger("flowdeck.engine.forge")
COLUMNS = ("id, release_id, repository, project, environment, release_number, status, "
           "deployed_by, deployed_at, completed_at, approval_id, gitops_commit_sha, "
           "execution_id, error")
SELECT = f"SELECT {COLUMNS} FROM forge_deployments"


def deployment_of(row: Sequence[Any]) -> Deployment:
    return Deployment(id=row[0], release_id=row[1], repository=row[2], project=row[3],
                      environment=row[4], release_number=int(row[5]), status=row[6],
                      deployed_by=row[7], deployed_at=row[8], completed_at=row[9],
                      approval_id=row[10], gitops_commit_sha=row[11], execution_id=row[12],
                      error=row[13])


def manifest(release: Release, deployment: Deployment) -> dict[str, Any]:
    return {
        "environment": deployment.environment,
        "repository": release.repository,
        "project": release.project,
        "release": {"id": release.id, "number": release.release_number,
                    "canonical_id": release.canonical_id, "commit_sha": release.commit_sha,
                    "tag": release.tag, "oci_uri": release.oci_uri,
                    "oci_digest": release.oci_digest,
                    "artifacts": [a.to_dict() for a in release.artifacts]},
        "deployment": {"id": deployment.id, "deployed_by": deployment.deployed_by,
                       "deployed_at": deployment.deployed_at,
                       "approval_id": deployment.approval_id},
    }


class DeploymentService:
    def __init__(self, engine: Engine, settings: ForgeSettings, releases: ReleaseService,
                 approvals: ReleaseApprovals) -> None:
        self.engine = engine
        self.settings = settings
        self.releases = releases
        self.approvals = approvals
        self.git = GitOpsRepository(settings.gitops_path, settings.gitops_branch)
        self._lock = asyncio.Lock()
        self._watchers: set[asyncio.Task[None]] = set()

    def _now(self) -> str:
        return format_instant(self.engine.clock.now())

    # -- creating -----------------------------------------------------------------------------

    async def create(self, release_id: str, environment: str, *, by: str,
                     approval_id: str | None = None) -> Deployment:
        rid = validate.uuid_field(release_id, "release_id")
        assert rid is not None
        env = validate.environment(environment, self.settings.environments)
        by = validate.person(by, "by")
        approval = validate.uuid_field(approval_id, "approval_id", required=False)
        release = await self.releases.by_id(rid)
        if env in self.settings.approval_environments and approval is None:
            raise PermissionDenied(
                f"a deployment to {env} needs the approval_id of an active approval of release "
                f"{release.release_number} for {env}, made by someone other than its creator "
                f"({release.created_by})")
        flow = self.settings.deploy_flow
        if flow is not None:
            try:
                self.engine.get_flow(*flow)
            except NotFoundError:
                raise ConflictError(f"the deploy flow '{flow[0]}/{flow[1]}' ([forge] "
                                    "deploy_flow) does not exist: create it first") from None
        async with self._lock:
            deployment = await self._begin(release, env, by, approval)
            deployment = await self._commit(release, deployment)
        if flow is not None and deployment.status == "pending":
            deployment = await self._start_deploy_flow(release, deployment)
        return deployment

    async def _begin(self, release: Release, env: str, by: str,
                     approval_id: str | None) -> Deployment:
        deployment = Deployment(
            id=self.engine.new_id(), release_id=release.id, repository=release.repository,
            project=release.project, environment=env, release_number=release.release_number,
            status="pending", deployed_at=self._now(), deployed_by=by, gitops_commit_sha=None,
            approval_id=approval_id)
        limit = self.settings.max_deployments_in_progress

        async def op(conn: aiosqlite.Connection) -> None:
            cursor = await conn.execute(
                "SELECT COUNT(*) FROM forge_deployments WHERE status = 'pending'")
            row = await cursor.fetchone()
            if row is not None and row[0] >= limit:
                raise ConflictError(f"{row[0]} deployments are in progress, the most allowed at "
                                    f"once ({limit}); try again when one has finished")
            if approval_id is not None or env in self.settings.approval_environments:
                await self.approvals.consume(conn, approval_id, release, env, deployment.id,
                                             deployment.deployed_at)
            await conn.execute(
                f"INSERT INTO forge_deployments({COLUMNS}) VALUES ({','.join('?' * 14)})",
                (deployment.id, release.id, release.repository, release.project, env,
                 release.release_number, "pending", by, deployment.deployed_at, None,
                 approval_id, None, None, None))

        await self.engine.store.run(op)
        return deployment

    async def _commit(self, release: Release, deployment: Deployment) -> Deployment:
        path = manifest_path(deployment.environment, release.repository, release.project)
        message = (f"Deploy {release.repository}/{release.project} release "
                   f"{release.release_number} to {deployment.environment}\n\n"
                   f"Deployment-Id: {deployment.id}\nRelease-Id: {release.id}\n"
                   f"Deployed-By: {deployment.deployed_by}\n")
        try:
            sha = await asyncio.to_thread(
                self.git.commit, {path: manifest_text(manifest(release, deployment))}, message,
                self.engine.clock.now())
        except Exception as exc:
            await self._fail(deployment, f"the GitOps commit failed: {exc}", give_back=True)
            raise FlowdeckError(f"deployment {deployment.id} failed: the GitOps commit failed: "
                                f"{exc}") from None
        return await self._committed(deployment, sha)

    async def _committed(self, deployment: Deployment, sha: str) -> Deployment:
        activate = self.settings.deploy_flow is None
        now = self._now()

        async def op(conn: aiosqlite.Connection) -> Deployment:
            await conn.execute("UPDATE forge_deployments SET gitops_commit_sha = ? WHERE id = ?",
                               (sha, deployment.id))
            current = await self._read(conn, deployment.id)
            await self.engine.events.append(conn, [deployment_created(current)])
            if activate:
                current = await self._settle(conn, current, True, now, None)
            return current

        result: Deployment = await self.engine.store.run(op)
        return result

    async def _settle(self, conn: aiosqlite.Connection, deployment: Deployment, ok: bool,
                      now: str, error: str | None) -> Deployment:
        """Inside a transaction: a pending deployment ends active (superseding the one before;
        or superseded at once if a newer one is active already) or failed."""
        status = "failed"
        if ok:
            cursor = await conn.execute(
                "SELECT COUNT(*) FROM forge_deployments WHERE repository = ? AND project = ? "
                "AND environment = ? AND status = 'active' AND seq > (SELECT seq FROM "
                "forge_deployments WHERE id = ?)", (deployment.repository, deployment.project,
                                                    deployment.environment, deployment.id))
            row = await cursor.fetchone()
            status = "superseded" if row and row[0] else "active"
            if status == "active":
                await conn.execute(
                    "UPDATE forge_deployments SET status = 'superseded' WHERE repository = ? "
                    "AND project = ? AND environment = ? AND status = 'active'",
                    (deployment.repository, deployment.project, deployment.environment))
        await conn.execute(
            "UPDATE forge_deployments SET status = ?, completed_at = ?, error = ? WHERE id = ? "
            "AND status = 'pending'", (status, now, error, deployment.id))
        settled = await self._read(conn, deployment.id)
        await self.engine.events.append(conn, [deployment_completed(settled, now)])
        return settled

    async def _fail(self, deployment: Deployment, error: str, *, give_back: bool) -> None:
        now = self._now()

        async def op(conn: aiosqlite.Connection) -> None:
            if give_back:
                await self.approvals.release_use(conn, deployment.id)
            current = await self._read(conn, deployment.id)
            if current.status == "pending":
                await self._settle(conn, current, False, now, error)

        await self.engine.store.run(op)

    @staticmethod
    async def _read(conn: aiosqlite.Connection, deployment_id: str) -> Deployment:
        cursor = await conn.execute(f"{SELECT} WHERE id = ?", (deployment_id,))
        row = await cursor.fetchone()
        assert row is not None
        return deployment_of(row)

    # -- the deploy flow ----------------------------------------------------------------------

    async def _start_deploy_flow(self, release: Release, deployment: Deployment) -> Deployment:
        assert self.settings.deploy_flow is not None
        namespace, flow_id = self.settings.deploy_flow
        inputs = {"release": release.id, "environment": deployment.environment,
                  "manifest": manifest_text(manifest(release, deployment)),
                  "deployment_id": deployment.id, "release_number": release.release_number,
                  "repository": release.repository, "project": release.project,
                  "commit_sha": release.commit_sha,
                  "gitops_commit_sha": deployment.gitops_commit_sha}
        try:
            execution = await self.engine.create_execution(
                namespace, flow_id, inputs=inputs, source="forge",
                labels=[("forge.deployment", deployment.id),
                        ("forge.environment", deployment.environment)])
        except FlowdeckError as exc:
            await self._fail(deployment, f"the deploy flow did not start: {exc}",
                             give_back=False)
            return await self.get(deployment.id)

        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute("UPDATE forge_deployments SET execution_id = ? WHERE id = ?",
                               (execution.id, deployment.id))

        await self.engine.store.run(op)
        self._watch(deployment.id, execution.id)
        return await self.get(deployment.id)

    def _watch(self, deployment_id: str, execution_id: str) -> None:
        task = asyncio.get_running_loop().create_task(
            self._await_deploy_flow(deployment_id, execution_id),
            name=f"forge-deployment-{deployment_id}")
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _await_deploy_flow(self, deployment_id: str, execution_id: str) -> None:
        try:
            execution = await self.engine.wait_until_terminal(execution_id)
        except NotFoundError:
            await self._finish(deployment_id, False, f"execution {execution_id} is gone")
            return
        state = execution.state.current
        ok = state in SUCCESSFUL_STATES
        await self._finish(deployment_id, ok,
                           None if ok else f"the deploy flow's execution ended {state}")

    async def _finish(self, deployment_id: str, ok: bool, error: str | None) -> None:
        now = self._now()

        async def op(conn: aiosqlite.Connection) -> None:
            current = await self._read(conn, deployment_id)
            if current.status == "pending":
                await self._settle(conn, current, ok, now, error)

        try:
            await self.engine.store.run(op)
        except (FlowdeckError, RuntimeError) as exc:  # the store is closing
            log.warning("deployment %s: %s", deployment_id, exc)

    async def resume(self) -> None:
        """After a restart: finish what pending deployments were doing."""
        rows = await self.engine.store.fetchall(f"{SELECT} WHERE status = 'pending' "
                                                "ORDER BY seq")
        pending = [deployment_of(r) for r in rows]
        if not pending:
            return
        history = await asyncio.to_thread(self.git.history, 200)
        for deployment in pending:
            if deployment.gitops_commit_sha is None:
                sha = next((c[0] for c in history
                            if f"Deployment-Id: {deployment.id}\n" in c[1]), None)
                if sha is None:
                    await self._fail(deployment, "flowdeck stopped before the GitOps commit",
                                     give_back=True)
                    continue
                deployment = await self._committed(deployment, sha)
                if deployment.status != "pending":
                    continue
            if deployment.execution_id is not None:
                self._watch(deployment.id, deployment.execution_id)
            elif self.settings.deploy_flow is not None:
                release = await self.releases.by_id(deployment.release_id)
                await self._start_deploy_flow(release, deployment)
            else:
                await self._finish(deployment.id, True, None)

    async def stop(self) -> None:
        watchers = list(self._watchers)
        for task in watchers:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*watchers, return_exceptions=True)

    # -- reading ------------------------------------------------------------------------------

    async def get(self, deployment_id: str) -> Deployment:
        row = None
        if isinstance(deployment_id, str) and is_uuid(deployment_id):
            row = await self.engine.store.fetchone(f"{SELECT} WHERE id = ?",
                                                   (deployment_id.lower(),))
        if row is None:
            raise NotFoundError(f"no deployment '{deployment_id}'")
        return deployment_of(row)

    async def current(self, environment: str, repository: str, project: str) -> Deployment:
        env = validate.environment(environment, self.settings.environments)
        repository = validate.repository(repository)
        project = validate.project(project)
        row = await self.engine.store.fetchone(
            f"{SELECT} WHERE repository = ? AND project = ? AND environment = ? AND "
            "status = 'active' ORDER BY seq DESC LIMIT 1", (repository, project, env))
        if row is None:
            raise NotFoundError(f"nothing of {repository}/{project} is deployed to {env}")
        return deployment_of(row)

    async def history(self, environment: str, repository: str, project: str, limit: int = 20,
                      offset: int = 0) -> Page[Deployment]:
        env = validate.environment(environment, self.settings.environments)
        repository = validate.repository(repository)
        project = validate.project(project)
        limit, offset = validate.page(limit, offset)
        where = "repository = ? AND project = ? AND environment = ?"
        key = (repository, project, env)
        rows = await self.engine.store.fetchall(
            f"{SELECT} WHERE {where} ORDER BY seq DESC LIMIT ? OFFSET ?", (*key, limit, offset))
        total = await self.engine.store.fetchone(
            f"SELECT COUNT(*) FROM forge_deployments WHERE {where}", key)
        return Page(tuple(deployment_of(r) for r in rows), int(total[0]) if total else 0,
                    limit, offset)

    async def active(self) -> list[Deployment]:
        """Every active deployment (what runs where)."""
        rows = await self.engine.store.fetchall(
            f"{SELECT} WHERE status = 'active' ORDER BY repository, project, environment")
        return [deployment_of(r) for r in rows]
