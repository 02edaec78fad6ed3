"""Approvals: the human gate. The store decides who came first, so exactly one decision wins.

A decision is a conditional update (`... WHERE status = 'pending'`) inside the single writer, so
two reviewers racing, or a reviewer racing the expiry timer, always resolve the same way: the
first committed decision stands and the other gets a conflict naming who decided and when.

An approval belongs to one run of its task: killing the execution (or its ending otherwise)
expires what is still pending, with the reason in `comment`; a restart of the execution asks
again with a fresh approval instead of passing on an old decision; and a status change may
not make an execution successful past a gate that was not approved.
"""

from __future__ import annotations

import builtins
import contextlib
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flowdeck.core.errors import ConflictError, NotFoundError, ValidationError
from flowdeck.core.models import Approval
from flowdeck.core.sanitize import valid_json, valid_text
from flowdeck.core.states import SUCCESSFUL_STATES
from flowdeck.core.timefmt import format_instant, parse_instant
from flowdeck.engine.bus import APPROVAL, ApprovalEvent
from flowdeck.engine.store import dumps

if TYPE_CHECKING:
    import aiosqlite

    from flowdeck.engine.engine import Engine
    from flowdeck.engine.runner import ExecutionRunner, RunContext
    from flowdeck.engine.tasks.approval import ApprovalRequest

COLUMNS = ("id, execution_id, task_run_id, namespace, flow_id, task_id, title, description, rows,"
           " display_fields, metadata, allow_bulk, require_comment, status, created_at,"
           " expires_at, decided_by, comment, decided_at")


def _from_row(r: Any) -> Approval:
    return Approval(
        id=r[0], execution_id=r[1], task_run_id=r[2], namespace=r[3], flow_id=r[4],
        task_id=r[5], title=r[6], description=r[7], rows=json.loads(r[8]),
        display_fields=json.loads(r[9]), metadata=json.loads(r[10]),
        allow_bulk_approval=bool(r[11]), require_comment=bool(r[12]), status=r[13],
        created_at=parse_instant(r[14]), expires_at=parse_instant(r[15]) if r[15] else None,
        decided_by=r[16], comment=r[17], decided_at=parse_instant(r[18]) if r[18] else None)


def _rows(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValidationError([("rows", "must be a list of objects or a JSON array")]) from None
    if not isinstance(value, list):
        raise ValidationError([("rows", "must be a list of objects")])
    return [r if isinstance(r, dict) else {"value": r} for r in value]


class ApprovalService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.store
        #: Checks a decision must pass before it is recorded, (approval, approve, by); each
        #: raises (e.g. PermissionDenied) to refuse it. A domain that creates approvals adds
        #: its own (the forge refuses a release's creator approving its deployment).
        self.guards: builtins.list[Callable[[Approval, bool, str], Awaitable[None]]] = []

    def _publish(self, kind: str, approval: Approval) -> None:
        event = ApprovalEvent(kind, approval.to_dict())
        self.store.after_commit(lambda: self.engine._bus.publish(APPROVAL, event))

    async def ensure(self, runner: ExecutionRunner, ctx: RunContext,
                     task: ApprovalRequest) -> Approval:
        """The approval of this task run, created on first call (idempotent across recovery);
        a new one when the task run was restarted since the last one was made."""
        current = await self._current(ctx.task_run.id)
        if current is not None:
            if not _restarted_since(ctx.task_run.state.histories, current.created_at):
                return current
            if current.status == "pending":  # a person must not pass this run on it
                with contextlib.suppress(ConflictError):
                    await self._settle(current, "expired", None,
                                       "superseded: the execution was restarted")
        now = self.engine.clock.now()
        ex = runner.execution
        clean = runner.clean  # valid text, SECRET inputs masked: approvers see this
        approval = Approval(
            id=self.engine.new_id(), execution_id=ex.id, task_run_id=ctx.task_run.id,
            namespace=ex.namespace, flow_id=ex.flow_id, task_id=task.id,
            title=clean(str(ctx.render(task.title))),
            description=clean(str(ctx.render(task.description)))
            if task.description else None,
            rows=clean(_rows(ctx.render(task.rows))),
            display_fields=valid_json(list(task.displayFields)),
            metadata=clean(ctx.render(task.metadata)),
            allow_bulk_approval=task.allowBulkApproval,
            require_comment=task.requireComment, status="pending", created_at=now,
            expires_at=now + task.expiresIn if task.expiresIn else None)
        runner.save()  # the execution row must exist in the same commit as its approval

        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                f"INSERT INTO approvals({COLUMNS}) VALUES ({','.join('?' * 19)})",
                (approval.id, approval.execution_id, approval.task_run_id, approval.namespace,
                 approval.flow_id, approval.task_id, approval.title, approval.description,
                 dumps(approval.rows), dumps(approval.display_fields), dumps(approval.metadata),
                 int(approval.allow_bulk_approval), int(approval.require_comment), "pending",
                 format_instant(now),
                 format_instant(approval.expires_at) if approval.expires_at else None,
                 None, None, None))

        self._publish("created", approval)
        await self.store.run(op)
        ctx.log("INFO", f"waiting for approval {approval.id}: {approval.title}")
        return approval

    async def _current(self, task_run_id: str) -> Approval | None:
        """The newest approval of a task run (a restart may have made several)."""
        row = await self.store.fetchone(
            f"SELECT {COLUMNS} FROM approvals WHERE task_run_id = ? "
            "ORDER BY created_at DESC, rowid DESC LIMIT 1", (task_run_id,))
        return None if row is None else _from_row(row)

    async def get(self, approval_id: str) -> Approval:
        row = await self.store.fetchone(f"SELECT {COLUMNS} FROM approvals WHERE id = ?",
                                        (approval_id,))
        if row is None:
            raise NotFoundError(f"no approval '{approval_id}'")
        return _from_row(row)

    async def list(self, status: str | None = "pending", execution_id: str | None = None,
                   limit: int = 1000) -> list[Approval]:
        sql = f"SELECT {COLUMNS} FROM approvals WHERE 1=1"
        params: list[Any] = []
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        if execution_id is not None:
            sql += " AND execution_id = ?"
            params.append(execution_id)
        sql += " ORDER BY created_at LIMIT ?"
        params.append(limit)
        return [_from_row(r) for r in await self.store.fetchall(sql, params)]

    async def decide(self, approval_id: str, *, approve: bool, by: str,
                     comment: str | None = None) -> Approval:
        """Record a decision; raises ConflictError if someone (or the timer) already decided."""
        current = await self.get(approval_id)
        by = valid_text(by)
        comment = valid_text(comment).strip() if comment else None
        if current.require_comment and not comment and current.status == "pending":
            raise ValidationError([("comment", "this approval requires a comment")])
        if not by.strip():
            raise ValidationError([("decidedBy", "must name who decides")])
        if current.status == "pending":
            for guard in self.guards:
                await guard(current, approve, by)
        status = "approved" if approve else "rejected"
        return await self._settle(current, status, by, comment)

    async def _settle(self, current: Approval, status: str, by: str | None,
                      comment: str | None) -> Approval:
        now = self.engine.clock.now()

        async def op(conn: aiosqlite.Connection) -> int:
            cursor = await conn.execute(
                "UPDATE approvals SET status = ?, decided_by = ?, comment = ?, decided_at = ?"
                " WHERE id = ? AND status = 'pending'",
                (status, by, comment, format_instant(now), current.id))
            return cursor.rowcount

        changed = await self.store.run(op)
        decided = await self.get(current.id)
        if not changed:
            when = format_instant(decided.decided_at) if decided.decided_at else "earlier"
            if decided.decided_by:
                how = f"{decided.status} by {decided.decided_by}"
            elif decided.comment:  # ended with its run: the comment says why
                how = f"{decided.status} ({decided.comment})"
            else:
                how = f"{decided.status} by the expiry timer"
            raise ConflictError(
                f"approval {current.id} was already {how} at {when}",
                {"approvalStatus": decided.status, "decidedBy": decided.decided_by,
                 "decidedAt": when, "reason": decided.comment})
        self.engine._bus.publish(APPROVAL, ApprovalEvent("decided" if by else "expired",
                                                        decided.to_dict()))
        from flowdeck.engine.runner import Decision

        runner = self.engine._launcher.runner(decided.execution_id)
        if runner is not None:
            runner.decide(decided.task_run_id, Decision(status, by=by, comment=comment))
        return decided

    async def decide_many(self, approval_ids: builtins.list[str], *, by: str,
                          comment: str | None = None) -> builtins.list[Approval]:
        """Bulk approve: every approval must allow it; each is settled on its own."""
        items = [await self.get(i) for i in approval_ids]
        refused = [a.id for a in items if not a.allow_bulk_approval]
        if refused:
            raise ValidationError([("ids", "bulk approval is not allowed for "
                                           + ", ".join(refused))])
        return [await self.decide(a.id, approve=True, by=by, comment=comment) for a in items]

    async def expire_for_task_run(self, task_run_id: str) -> None:
        current = await self._current(task_run_id)
        if current is None or current.status != "pending":
            return
        with contextlib.suppress(ConflictError):  # a person decided first: theirs stands
            await self._settle(current, "expired", None, None)

    async def expire_for_execution(self, execution_id: str,
                                   reason: str) -> builtins.list[Approval]:
        """Expire every pending approval of an execution (it was killed, or it ended): nobody
        decided; `reason` is kept as the comment. Returns what was expired."""
        now = format_instant(self.engine.clock.now())

        async def op(conn: aiosqlite.Connection) -> builtins.list[str]:
            cursor = await conn.execute(
                "SELECT id FROM approvals WHERE execution_id = ? AND status = 'pending'",
                (execution_id,))
            ids = [str(r[0]) for r in await cursor.fetchall()]
            await cursor.close()
            if ids:
                await conn.execute(
                    "UPDATE approvals SET status = 'expired', decided_by = NULL, comment = ?,"
                    " decided_at = ? WHERE execution_id = ? AND status = 'pending'",
                    (reason, now, execution_id))
            return ids

        expired = [await self.get(i) for i in await self.store.run(op)]
        for approval in expired:
            self.engine._bus.publish(APPROVAL, ApprovalEvent("expired", approval.to_dict()))
        return expired

    async def check_status_change(self, execution_id: str, status: str) -> None:
        """Refuse to make an execution successful past a gate that was not approved."""
        if status not in SUCCESSFUL_STATES:
            return
        rows = await self.store.fetchall(
            f"SELECT {COLUMNS} FROM approvals WHERE execution_id = ? "
            "ORDER BY created_at, rowid", (execution_id,))
        newest: dict[str, Approval] = {}
        for row in rows:  # a restart may have asked again: the newest answer counts
            approval = _from_row(row)
            newest[approval.task_run_id] = approval
        for approval in newest.values():
            if approval.status == "approved":
                continue
            if approval.decided_by:
                how = f"{approval.status} by {approval.decided_by}"
            else:
                how = approval.status + (f" ({approval.comment})" if approval.comment else "")
            when = (f" at {format_instant(approval.decided_at)}" if approval.decided_at
                    else "")
            raise ConflictError(
                f"execution {execution_id} cannot become {status}: its approval "
                f"'{approval.title}' ({approval.id}) was {how}{when}",
                {"approvalId": approval.id, "approvalStatus": approval.status,
                 "decidedBy": approval.decided_by})

    @staticmethod
    def waiting_seconds(approval: Approval, now: datetime) -> float:
        return (now - approval.created_at).total_seconds()


def _restarted_since(histories: builtins.list[Any], created: datetime) -> bool:
    """Whether the task run was restarted after `created` (its approval is then stale)."""
    return any(h.state == "RESTARTED" and h.date > created for h in histories)
