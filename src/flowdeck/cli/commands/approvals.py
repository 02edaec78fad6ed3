"""`flowdeck approvals list|approve|reject`: the human gate, from a script or a terminal."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from flowdeck.cli.common import EXIT_OK, Context, Printer, UsageError, closing
from flowdeck.cli.options import Commands
from flowdeck.cli.session import Access, Session, open_session
from flowdeck.client.resolve import resolve_approval_id
from flowdeck.core.models import Approval, Execution
from flowdeck.core.states import is_terminal

ID_HELP = ("an approval id or its execution's id; either whole, or its first or last 8+ "
           "characters")


def register(commands: Commands) -> None:
    actions = commands.group("approvals", "list, approve and reject approvals")
    listing = actions.add("list", "list pending approvals, oldest first", list_approvals,
                          json=True)
    listing.add_argument("--all", action="store_true", help="include decided ones")
    for name, verb in (("approve", "approve"), ("reject", "reject")):
        decide = actions.add(name, f"{verb} an approval and wait until its execution acts on "
                             "it", decide_approval)
        decide.add_argument("approval_id", metavar="ID", help=ID_HELP)
        decide.add_argument("--comment", help="why (required where the flow says so)")
        decide.add_argument("--by", default=None, metavar="NAME",
                            help="who decides (default: the login name)")


def decider(args: argparse.Namespace) -> str:
    """Who decides an approval: --by, else the login name."""
    import getpass

    if args.by is not None:
        return str(args.by)
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise UsageError("cannot tell who you are; pass --by NAME") from None


def show_approvals(items: list[Approval], as_json: bool, p: Printer) -> None:
    if as_json:
        p.json([a.to_dict() for a in items])
        return
    now = datetime.now(UTC)
    p.table(["ID", "STATUS", "FLOW", "TITLE", "WAITING"], [
        [a.id, a.status, f"{a.namespace}.{a.flow_id}", a.title,
         f"{(now - a.created_at).total_seconds() / 60:.0f}m"] for a in items])


def require_approvals(session: Session) -> None:
    if not session.capabilities.approvals:
        raise UsageError(f"approvals are not available on this server ({session.backend.name})")


async def list_approvals(ctx: Context) -> int:
    async with open_session(ctx, Access.READ) as session:
        require_approvals(session)
        items = await session.backend.list_approvals(None if ctx.args.all else "pending")
    show_approvals(items, ctx.json, ctx.out)
    return EXIT_OK


async def decide_approval(ctx: Context) -> int:
    args = ctx.args
    who = decider(args)
    approve = args.action == "approve"
    async with open_session(ctx, Access.CHANGE) as session:
        require_approvals(session)
        backend = session.backend
        current = await backend.get_approval(
            await resolve_approval_id(backend, args.approval_id))
        if current.status != "pending":
            # The backend refuses it; its answer names who decided and when.
            await backend.decide(current.id, approve=approve, by=who, comment=args.comment)
        if current.require_comment and not (args.comment or "").strip():
            raise UsageError(f"approval {current.id} requires a comment: pass --comment TEXT")
        # The waiting execution must have its runner in this process when the decision lands.
        await session.before_change()
        approval = await backend.decide(current.id, approve=approve, by=who,
                                        comment=args.comment)
        ctx.out.line(f"approval {approval.id} {approval.status} by {approval.decided_by}")
        final = await after_decision(session, approval.execution_id, approval.task_run_id)
        ctx.out.line(f"execution {final.id} is {final.state.current}")
    return EXIT_OK


async def after_decision(session: Session, execution_id: str, task_run_id: str) -> Execution:
    """Wait until the execution has acted on a decision: it ended, or it went on past the
    decided task and is waiting again (a later pause or approval)."""
    def acted(execution: Execution) -> bool:
        if is_terminal(execution.state.current):
            return True
        decided = execution.find_task_run(task_run_id)
        return execution.state.current == "PAUSED" and (
            decided is None or decided.state.current != "PAUSED")

    backend = session.backend
    ended = False
    async with closing(backend.follow_execution(execution_id)) as stream:
        async for snapshot in stream:
            if acted(snapshot):
                ended = is_terminal(snapshot.state.current)
                break
    if ended:
        await session.released(execution_id)
    return await backend.get_execution(execution_id)
