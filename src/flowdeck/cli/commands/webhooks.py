"""`flowdeck webhooks list|redeliver`: the webhook outbox, every event sent to a webhook.

`list` shows each delivery's event, target, status, attempts, last answer or error and next
retry, newest first. `redeliver` sends one again now, with a fresh round of retries, and waits
(boundedly) for the first attempt's outcome: exit 0 when it was delivered, 1 when it was not
(it is then retried later, or dead). On the embedded engine the engine starts to send it, as a
server would; over `--url` the server sends it (the admin role is needed for both actions).
"""

from __future__ import annotations

import asyncio

from flowdeck.cli.common import EXIT_FAILED, EXIT_OK, Context, UsageError
from flowdeck.cli.options import Commands
from flowdeck.cli.session import Access, open_session
from flowdeck.client.public import MAX_PAGE, DeliveryInfo, PublicAdmin, public_admin
from flowdeck.client.resolve import Candidate, is_fragment, matches, pick
from flowdeck.core.timefmt import format_instant

STATUSES = ("pending", "delivered", "dead")
HEADERS = ["ID", "EVENT", "TARGET", "STATUS", "TRIES", "LAST", "NEXT RETRY", "EXECUTION"]
#: How long `redeliver` waits for the first attempt (the outbox's timeout is 10 s).
ATTEMPT_WAIT_S = 20.0
POLL_S = 0.1


def register(commands: Commands) -> None:
    actions = commands.group("webhooks", "list and redeliver outgoing webhook deliveries")
    listing = actions.add("list", "list deliveries, newest first", list_deliveries, json=True)
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--target", metavar="NAME",
                         help="one target's deliveries (e.g. api-key:<id>)")
    listing.add_argument("--limit", type=int, default=100, metavar="N",
                         help=f"at most N (default 100, at most {MAX_PAGE})")
    redeliver = actions.add("redeliver", "send a delivery again now and wait for the answer",
                            redeliver_one, json=True)
    redeliver.add_argument("delivery_id", metavar="ID",
                           help="a delivery id, or its first or last 8+ characters")


def last_answer(d: DeliveryInfo) -> str:
    if d.last_error:
        return d.last_error
    return f"HTTP {d.last_status}" if d.last_status is not None else "-"


def delivery_row(d: DeliveryInfo) -> list[str]:
    return [d.id, d.event, f"{d.target} {d.url}", d.status, str(d.attempts), last_answer(d),
            format_instant(d.next_at) if d.next_at and d.status == "pending" else "-",
            d.execution_id or "-"]


async def list_deliveries(ctx: Context) -> int:
    args = ctx.args
    if not 1 <= args.limit <= MAX_PAGE:
        raise UsageError(f"--limit must be between 1 and {MAX_PAGE}")
    async with open_session(ctx, Access.READ) as session:
        admin = public_admin(session.backend, session.capabilities)
        found, total = await admin.deliveries(status=args.status, target=args.target,
                                              size=args.limit)
    if ctx.json:
        ctx.out.json([d.raw for d in found])
        return EXIT_OK
    ctx.out.table(HEADERS, [delivery_row(d) for d in found])
    if total > len(found):
        ctx.out.line(f"({len(found)} of {total}; --limit shows more)")
    return EXIT_OK


async def resolve(admin: PublicAdmin, text: str) -> str:
    if not is_fragment(text):
        return text
    found, _ = await admin.deliveries(size=MAX_PAGE)
    return pick("delivery", text, (Candidate(d.id, f"{d.status}  {d.event}  {d.target}")
                                   for d in found if matches(d.id, text)))


async def first_attempt(admin: PublicAdmin, sent: DeliveryInfo) -> DeliveryInfo:
    """The delivery once the redelivery's first attempt is recorded (or as it is after
    ATTEMPT_WAIT_S)."""
    current = sent
    try:
        async with asyncio.timeout(ATTEMPT_WAIT_S):
            while current.status == "pending" and current.attempts == 0:
                await asyncio.sleep(POLL_S)
                current = await admin.get_delivery(sent.id)
    except TimeoutError:
        pass
    return current


async def redeliver_one(ctx: Context) -> int:
    async with open_session(ctx, Access.CHANGE) as session:
        admin = public_admin(session.backend, session.capabilities)
        delivery_id = await resolve(admin, ctx.args.delivery_id)
        await admin.get_delivery(delivery_id)  # an unknown id fails before anything starts
        await session.before_change()  # an engine here starts its outbox, which sends it
        sent = await admin.redeliver(delivery_id)
        outcome = await first_attempt(admin, sent)
    if ctx.json:
        ctx.out.json(outcome.raw)
    elif outcome.status == "delivered":
        ctx.out.line(f"delivery {outcome.id} ({outcome.event}) delivered to {outcome.url}: "
                     f"{last_answer(outcome)}")
    elif outcome.attempts == 0:
        ctx.out.line(f"delivery {outcome.id} is pending again; no answer yet from "
                     f"{outcome.url}")
    else:
        retry = (f"next retry at {format_instant(outcome.next_at)}"
                 if outcome.status == "pending" and outcome.next_at else "no more retries")
        ctx.out.line(f"delivery {outcome.id} ({outcome.event}) to {outcome.url} failed: "
                     f"{last_answer(outcome)}; {retry}")
    return EXIT_OK if outcome.status == "delivered" else EXIT_FAILED
