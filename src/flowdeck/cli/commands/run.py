"""`flowdeck run NAMESPACE FLOW`: start a run, wait for it (or not), exit with its outcome."""

from __future__ import annotations

from datetime import UTC, datetime

from flowdeck.cli.common import EXIT_OK, Context, UsageError, parse_pairs
from flowdeck.cli.options import Commands
from flowdeck.cli.session import Access, Session, embedded, open_session
from flowdeck.cli.waiting import Follower, report_final, wait_for_run
from flowdeck.client.backend import FlowInfo
from flowdeck.core.models import Execution


def register(commands: Commands) -> None:
    run = commands.command(
        "run", "run a flow; exits 0 only if it ends in SUCCESS (3 while it waits for an "
        "approval, 1 for any other end)", run_flow, json=True)
    run.add_argument("namespace")
    run.add_argument("flow_id", metavar="FLOW")
    run.add_argument("-i", "--input", action="append", default=[], metavar="KEY=VALUE",
                     help="an input the flow declares (repeat for several)")
    run.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VALUE")
    how = run.add_mutually_exclusive_group()
    how.add_argument("--wait", action="store_true",
                     help="wait through pauses until the execution finishes")
    how.add_argument("--detach", action="store_true",
                     help="submit and print the execution id without waiting (needs a server: "
                     "--url or --profile)")
    run.add_argument("--follow", action="store_true", help="print its logs while it runs")


def unknown_inputs(flow: FlowInfo, inputs: dict[str, str]) -> None:
    """Refuse inputs the flow does not declare, naming them (a typo must not be ignored)."""
    declared = [str(d.get("id")) for d in flow.inputs if isinstance(d, dict)]
    unknown = [k for k in inputs if k not in declared]
    if unknown:
        takes = (f"its inputs: {', '.join(declared)}" if declared else "it takes no inputs")
        named = ", ".join(repr(k) for k in unknown)
        raise UsageError(f"{flow.namespace}.{flow.id} declares no input"
                         f"{'s' if len(unknown) > 1 else ''} named {named} ({takes})")


def check_inputs(flow: FlowInfo, inputs: dict[str, str]) -> None:
    """Refuse bad inputs as the engine would (`inputs.count: expected an integer, got 'abc'`),
    before an in-process engine starts: a typo must not resume what an earlier process left
    unfinished. A server checks them itself."""
    from flowdeck.engine.inputs import InputDef, resolve_inputs

    resolve_inputs([InputDef.model_validate(d) for d in flow.inputs], inputs)


async def run_flow(ctx: Context) -> int:
    args = ctx.args
    inputs = parse_pairs(args.input, "input")
    labels = list(parse_pairs(args.label, "label").items())
    if args.detach and args.follow:
        raise UsageError("--detach and --follow do not go together")
    if args.detach and embedded(ctx):
        raise UsageError(
            "--detach needs a server (--url or --profile): the embedded engine runs only "
            "while this command does, so the run would stop with it")
    async with open_session(ctx, Access.CHANGE) as session:
        flow = await session.backend.get_flow(args.namespace, args.flow_id)
        unknown_inputs(flow, inputs)
        if session.local is not None:
            check_inputs(flow, inputs)
        await session.before_change()
        execution = await session.backend.create_execution(
            args.namespace, args.flow_id, inputs=inputs, labels=labels)
        if args.detach:
            return detached(ctx, execution)
        if not ctx.json:
            ctx.out.line(f"execution {execution.id} created")
        return await wait_and_report(ctx, session, execution.id, follow=args.follow,
                                     through_pause=args.wait)


def detached(ctx: Context, execution: Execution) -> int:
    """`--detach`: the id alone (for `id=$(flowdeck run --detach ...)`), or the execution."""
    if ctx.json:
        ctx.out.json(execution.to_dict(datetime.now(UTC)))
    else:
        ctx.out.line(execution.id)
    return EXIT_OK


async def wait_and_report(ctx: Context, session: Session, execution_id: str, *,
                          follow: bool, through_pause: bool, level: str | None = None) -> int:
    """Wait for the run (printing its logs with `follow`), then report how it ended; Ctrl-C
    detaches (see `flowdeck.cli.waiting`)."""
    follower = Follower(session, execution_id, ctx.out if follow else None, level)
    outcome = await wait_for_run(ctx, follower, through_pause=through_pause)
    if isinstance(outcome, int):
        return outcome
    return await report_final(ctx, session, outcome)

