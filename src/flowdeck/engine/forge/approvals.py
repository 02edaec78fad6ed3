"""Release approvals: a person vouches for a release in an environment, with a justification.

An approval is `active` until it expires (`[forge] approval_ttl`, default 24 h) or is revoked;
nobody may approve a release they created. A deployment consumes an approval (single use):
`consume` checks every condition and marks it used inside the deployment's own transaction, so
a revocation or a second deployment racing it sees either the approval untouched or already
used, never both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiosqlite

from flowdeck.core.errors import ConflictError, NotFoundError, PermissionDenied
from flowdeck.core.forge import Release, ReleaseApproval
from flowdeck.core.ids import is_uuid
from flowdeck.core.timefmt import format_instant
from flowdeck.engine.forge import validate
from flowdeck.engine.forge.settings import ForgeSettings

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine
    from flowdeck.engine.forge.releases import ReleaseService

COLUMNS = ("id, release_id, environment, approver, justification, approved_at, expires_at, "
           "revoked_at, revoked_by, used_by, used_at")
SELECT = f"SELECT {COLUMNS} FROM forge_approvals"


def approval_of(row: Sequence[Any], now: str) -> ReleaseApproval:
    if row[7] is not None:
        status = "revoked"
    elif row[6] <= now:
        status = "expired"
    else:
        status = "active"
    return ReleaseApproval(id=row[0], release_id=row[1], environment=row[2], approver=row[3],
                           justification=row[4], approved_at=row[5], expires_at=row[6],
                           status=status, revoked_at=row[7], revoked_by=row[8],
                           used_by_deployment=row[9], used_at=row[10])


class ReleaseApprovals:
    def __init__(self, engine: Engine, settings: ForgeSettings,
                 releases: ReleaseService) -> None:
        self.engine = engine
        self.settings = settings
        self.releases = releases

    def _now(self) -> str:
        return format_instant(self.engine.clock.now())

    async def create(self, release_id: str, environment: str, justification: str, *,
                     by: str) -> ReleaseApproval:
        rid = validate.uuid_field(release_id, "release_id")
        assert rid is not None
        env = validate.environment(environment, self.settings.environments)
        text = validate.required_text("justification", justification, max_len=2000,
                                      multiline=True)
        by = validate.person(by, "approver")
        release = await self.releases.by_id(rid)
        if release.created_by == by:
            raise PermissionDenied(
                f"{by} created release {release.release_number} of {release.repository}/"
                f"{release.project} and cannot approve it: someone else must")
        now = self.engine.clock.now()
        row = (self.engine.new_id(), rid, env, by, text, format_instant(now),
               format_instant(now + self.settings.approval_ttl), None, None, None, None)

        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute(f"INSERT INTO forge_approvals({COLUMNS}) "
                               f"VALUES ({','.join('?' * 11)})", row)

        await self.engine.store.run(op)
        return approval_of(row, self._now())

    async def get(self, approval_id: str) -> ReleaseApproval:
        row = None
        if isinstance(approval_id, str) and is_uuid(approval_id):
            row = await self.engine.store.fetchone(f"{SELECT} WHERE id = ?",
                                                   (approval_id.lower(),))
        if row is None:
            raise NotFoundError(f"no approval '{approval_id}'")
        return approval_of(row, self._now())

    async def status(self, release_id: str, environment: str) -> ReleaseApproval:
        """The newest approval of a release for an environment."""
        env = validate.required_text("environment", environment, max_len=63)
        if not isinstance(release_id, str) or not is_uuid(release_id):
            raise NotFoundError(f"no approval of release '{release_id}' for {env}")
        rid = release_id.lower()
        row = await self.engine.store.fetchone(
            f"{SELECT} WHERE release_id = ? AND environment = ? ORDER BY approved_at DESC, "
            "id DESC LIMIT 1", (rid, env))
        if row is None:
            raise NotFoundError(f"no approval of release '{release_id}' for {env}")
        return approval_of(row, self._now())

    async def list(self, release_id: str) -> list[ReleaseApproval]:
        if not isinstance(release_id, str) or not is_uuid(release_id):
            raise NotFoundError(f"no release '{release_id}'")
        rows = await self.engine.store.fetchall(
            f"{SELECT} WHERE release_id = ? ORDER BY approved_at DESC, id DESC",
            (str(release_id).lower(),))
        now = self._now()
        return [approval_of(r, now) for r in rows]

    async def revoke(self, approval_id: str, *, by: str) -> ReleaseApproval:
        """Revoke an approval nobody has used yet."""
        current = await self.get(approval_id)
        by = validate.person(by, "by")
        now = self._now()

        async def op(conn: aiosqlite.Connection) -> int:
            cursor = await conn.execute(
                "UPDATE forge_approvals SET revoked_at = ?, revoked_by = ? WHERE id = ? AND "
                "revoked_at IS NULL AND used_by IS NULL", (now, by, current.id))
            return cursor.rowcount

        if not await self.engine.store.run(op):
            latest = await self.get(current.id)
            if latest.used_by_deployment:
                raise ConflictError(f"approval {current.id} was already used by deployment "
                                    f"{latest.used_by_deployment}",
                                    {"deployment_id": latest.used_by_deployment})
            raise ConflictError(f"approval {current.id} was already revoked by "
                                f"{latest.revoked_by} at {latest.revoked_at}")
        return await self.get(current.id)

    async def consume(self, conn: aiosqlite.Connection, approval_id: str | None,
                      release: Release, environment: str, deployment_id: str,
                      now: str) -> None:
        """Inside a deployment's transaction: use the approval or refuse (PermissionDenied)."""
        if approval_id is None:
            raise PermissionDenied(
                f"a deployment to {environment} needs the approval_id of an active approval of "
                f"release {release.release_number} for {environment}, made by someone other "
                f"than its creator ({release.created_by})")
        cursor = await conn.execute(f"{SELECT} WHERE id = ?", (approval_id,))
        row = await cursor.fetchone()
        if row is None:
            raise PermissionDenied(f"approval {approval_id} does not exist")
        approval = approval_of(row, now)
        refusal = None
        if approval.release_id != release.id:
            refusal = f"is for release {approval.release_id}, not {release.id}"
        elif approval.environment != environment:
            refusal = f"is for {approval.environment}, not {environment}"
        elif approval.status == "revoked":
            refusal = f"was revoked by {approval.revoked_by} at {approval.revoked_at}"
        elif approval.used_by_deployment is not None:
            refusal = f"was already used by deployment {approval.used_by_deployment}"
        elif approval.status == "expired":
            refusal = f"expired at {approval.expires_at}"
        elif approval.approver == release.created_by:
            refusal = (f"was made by {approval.approver}, who created the release: someone "
                       "else must approve it")
        if refusal is not None:
            raise PermissionDenied(f"approval {approval_id} {refusal}")
        cursor = await conn.execute(
            "UPDATE forge_approvals SET used_by = ?, used_at = ? WHERE id = ? AND "
            "used_by IS NULL AND revoked_at IS NULL AND expires_at > ?",
            (deployment_id, now, approval_id, now))
        if cursor.rowcount != 1:  # cannot happen inside one transaction; refuse all the same
            raise PermissionDenied(f"approval {approval_id} is no longer usable")

    async def release_use(self, conn: aiosqlite.Connection, deployment_id: str) -> None:
        """A deployment that never happened gives its approval back."""
        await conn.execute("UPDATE forge_approvals SET used_by = NULL, used_at = NULL "
                           "WHERE used_by = ?", (deployment_id,))
