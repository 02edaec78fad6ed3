"""`flowdeck agents messages`: what agents delivered, newest first.

By default an agent's messages go to the local outbox (the data dir's `agent_messages`); with
`[public.delivery] url` they are sent to that endpoint and recorded there too. Either way this
lists them: customer, recipient, status, the gateway's message id and the text.
"""

from __future__ import annotations

from flowdeck.cli.common import EXIT_OK, Context, UsageError
from flowdeck.cli.options import Commands
from flowdeck.cli.session import Access, execution_id, open_session
from flowdeck.client.public import MAX_PAGE, MessageInfo, public_admin

HEADERS = ["SENT", "EXECUTION", "AGENT", "CUSTOMER", "TO", "STATUS", "MESSAGE ID", "CONTENT"]


def register(commands: Commands) -> None:
    actions = commands.group("agents", "what the public API's agents did")
    messages = actions.add("messages", "list the messages agents delivered, newest first",
                           list_messages, json=True)
    messages.add_argument("--execution", metavar="ID",
                          help="one execution's messages (its id, or 8+ characters of it)")
    messages.add_argument("--limit", type=int, default=100, metavar="N",
                          help=f"at most N (default 100, at most {MAX_PAGE})")


def message_row(m: MessageInfo) -> list[str]:
    sent = m.created_at.strftime("%Y-%m-%d %H:%M:%S") if m.created_at else "-"
    status = m.status if not m.error else f"{m.status}: {m.error}"
    return [sent, m.execution_id, m.workflow_id, m.customer_id or "-", m.recipient or "-",
            status, m.message_id, m.content]


async def list_messages(ctx: Context) -> int:
    args = ctx.args
    if not 1 <= args.limit <= MAX_PAGE:
        raise UsageError(f"--limit must be between 1 and {MAX_PAGE}")
    async with open_session(ctx, Access.READ) as session:
        wanted = await execution_id(session, args.execution) if args.execution else None
        admin = public_admin(session.backend, session.capabilities)
        found, total = await admin.messages(execution_id=wanted, size=args.limit)
    if ctx.json:
        ctx.out.json([m.raw for m in found])
        return EXIT_OK
    ctx.out.table(HEADERS, [message_row(m) for m in found])
    if total > len(found):
        ctx.out.line(f"({len(found)} of {total}; --limit shows more)")
    return EXIT_OK
