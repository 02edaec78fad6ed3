"""`flowdeck logs ID [-f]`: an execution's log lines, stored or live."""

from __future__ import annotations

from flowdeck.cli.common import EXIT_OK, Context, UsageError
from flowdeck.cli.options import Commands
from flowdeck.cli.session import Access, execution_id, open_session
from flowdeck.cli.views import exit_code
from flowdeck.cli.waiting import Follower, wait_for_run
from flowdeck.core.models import LEVEL_RANK


def register(commands: Commands) -> None:
    logs = commands.command(
        "logs", "print an execution's logs; with -f, follow them until it ends or waits "
        "(and exit as `run` does)", print_logs)
    logs.add_argument("execution_id", metavar="ID",
                      help="an execution id, or its first or last 8+ characters")
    logs.add_argument("-f", "--follow", action="store_true",
                      help="print new lines as they come, until the execution ends or waits")
    logs.add_argument("--level", help="minimum level (TRACE, DEBUG, INFO, WARN, ERROR)")


async def print_logs(ctx: Context) -> int:
    args = ctx.args
    level = args.level.upper() if args.level else None
    if level is not None and level not in LEVEL_RANK:
        raise UsageError(f"--level {args.level}: not one of {', '.join(LEVEL_RANK)}")
    # Following an unfinished run on the embedded engine runs it: that is a change.
    access = Access.CHANGE if args.follow else Access.READ
    async with open_session(ctx, access) as session:
        found = await execution_id(session, args.execution_id)
        await session.backend.get_execution(found)
        if not args.follow:
            for entry in await session.backend.logs(found, min_level=level):
                ctx.out.log(entry)
            return EXIT_OK
        await session.before_change()  # an unfinished run goes on while it is followed
        outcome = await wait_for_run(ctx, Follower(session, found, ctx.out, level),
                                     through_pause=False)
        return outcome if isinstance(outcome, int) else exit_code(outcome)
