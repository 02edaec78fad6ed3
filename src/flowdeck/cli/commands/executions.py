"""`flowdeck executions list|show|kill|restart`: executions on any backend, by short id too."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from flowdeck.cli.commands.run import wait_and_report
from flowdeck.cli.common import EXIT_OK, Context, UsageError
from flowdeck.cli.options import Commands
from flowdeck.cli.session import Access, execution_id, open_session
from flowdeck.cli.views import EXECUTION_HEADERS, execution_row, show_execution
from flowdeck.cli.waiting import report_final, settled
from flowdeck.client.backend import ExecutionFilter
from flowdeck.core.errors import ConflictError
from flowdeck.core.states import RESTARTABLE_STATES, is_known, is_terminal

#: How long `executions kill` waits for the killed run to end.
KILL_WAIT = 60.0
ID_HELP = "an execution id, or a unique part of one: its first or last 8+ characters"


def register(commands: Commands) -> None:
    actions = commands.group("executions", "list, show, kill and restart executions")
    listing = actions.add("list", "list executions, newest first", list_executions, json=True)
    listing.add_argument("--state", action="append", help="only this state (repeatable)")
    listing.add_argument("--namespace", help="only this namespace and those below it")
    listing.add_argument("--flow", help="only this flow id")
    listing.add_argument("--limit", type=int, default=25, help="at most this many (25)")
    for name, help, handler in (
            ("show", "show an execution: its tasks, inputs, outputs and, if it failed, the "
             "failing task's last error lines", show_execution_cmd),
            ("kill", "kill a running or waiting execution and wait until it ends", kill),
            ("restart", "re-run a failed execution from its failed task and wait until it "
             "ends or waits", restart)):
        action = actions.add(name, help, handler, json=True)
        action.add_argument("execution_id", metavar="ID", help=ID_HELP)


async def list_executions(ctx: Context) -> int:
    args = ctx.args
    states = [s.upper() for s in args.state or []]
    for state in states:
        if not is_known(state):
            raise UsageError(f"--state {state}: not an execution state")
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    async with open_session(ctx, Access.READ) as session:
        page = await session.backend.search_executions(ExecutionFilter(
            namespace=args.namespace, flow_id=args.flow, states=states or None,
            size=args.limit))
    if ctx.json:
        now = datetime.now(UTC)
        ctx.out.json({"results": [e.to_dict(now) for e in page.results], "total": page.total})
        return EXIT_OK
    ctx.out.table(EXECUTION_HEADERS, [execution_row(e) for e in page.results])
    if page.total > len(page.results):
        ctx.out.line(f"({len(page.results)} of {page.total}; use --limit to see more)")
    return EXIT_OK


async def show_execution_cmd(ctx: Context) -> int:
    async with open_session(ctx, Access.READ) as session:
        found = await execution_id(session, ctx.args.execution_id)
        execution = await session.backend.get_execution(found)
        if ctx.json:
            ctx.out.json(execution.to_dict(datetime.now(UTC)))
        else:
            await show_execution(session.backend, execution, ctx.out)
    return EXIT_OK


async def kill(ctx: Context) -> int:
    async with open_session(ctx, Access.CHANGE) as session:
        found = await execution_id(session, ctx.args.execution_id)
        current = await session.backend.get_execution(found)
        if is_terminal(current.state.current):  # as the engine says it (a server may not)
            raise ConflictError(f"execution {current.id} is already {current.state.current}")
        await session.before_change()  # its runner lives in this process from now on
        await session.backend.kill(found)
        try:
            async with asyncio.timeout(KILL_WAIT):
                final = await settled(session, found, through_pause=True)
        except TimeoutError:
            raise UsageError(f"execution {found} did not end within {KILL_WAIT:g} s of the "
                             "kill") from None
        if final.state.current != "KILLED":
            return await report_final(ctx, session, final)  # it ended on its own first
        if ctx.json:
            ctx.out.json(final.to_dict(datetime.now(UTC)))
        else:
            ctx.out.line(f"execution {final.id} KILLED")
    return EXIT_OK


async def restart(ctx: Context) -> int:
    async with open_session(ctx, Access.CHANGE) as session:
        found = await execution_id(session, ctx.args.execution_id)
        if session.local is not None:
            current = await session.backend.get_execution(found)
            if current.state.current in RESTARTABLE_STATES:  # else the engine refuses it
                await session.before_change()  # first, or recovery would launch it twice
        restarted = await session.backend.restart(found)
        if not ctx.json:
            ctx.out.line(f"execution {restarted.id} restarted")
        return await wait_and_report(ctx, session, restarted.id, follow=False,
                                     through_pause=False)
