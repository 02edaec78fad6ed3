"""The `flowdeck` command line: scripts and CI drive the same engine the deck shows.

Exit codes: 0 success; 1 the run (or action) ended in a non-successful state; 2 bad input or
configuration (a one-line message on stderr says what is wrong).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from flowdeck.config import ConfigError, Settings, load_settings
from flowdeck.core.errors import FlowdeckError
from flowdeck.core.models import Execution, LogEntry
from flowdeck.core.sanitize import sanitize, sanitize_line
from flowdeck.core.states import is_terminal
from flowdeck.engine.engine import Engine, EngineSettings
from flowdeck.engine.query import ExecutionQuery

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(FlowdeckError):
    """Bad command-line input."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowdeck", description="A terminal control deck for workflow runs.")
    parser.add_argument("--data-dir", help="engine data directory "
                        "(env FLOWDECK_DATA_DIR; default: the user data dir)")
    parser.add_argument("--config", help="config file (env FLOWDECK_CONFIG)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("demo", help="apply the bundled example flows, run one and follow it live")

    flow = sub.add_parser("flow", help="manage flows").add_subparsers(dest="action",
                                                                     metavar="ACTION")
    flow.required = True
    apply = flow.add_parser("apply", help="create or update flows from YAML files")
    apply.add_argument("files", nargs="+")
    listing = flow.add_parser("list", help="list flows")
    listing.add_argument("--namespace")
    listing.add_argument("--json", action="store_true")
    show = flow.add_parser("show", help="show one flow")
    show.add_argument("namespace")
    show.add_argument("flow_id")
    show.add_argument("--json", action="store_true")
    delete = flow.add_parser("delete", help="delete a flow (its executions are kept)")
    delete.add_argument("namespace")
    delete.add_argument("flow_id")

    run = sub.add_parser("run", help="run a flow; exits 0 only if it ends in SUCCESS")
    run.add_argument("namespace")
    run.add_argument("flow_id")
    run.add_argument("-i", "--input", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--wait", action="store_true",
                     help="wait through pauses until the execution finishes")
    run.add_argument("--follow", action="store_true", help="print its logs while it runs")
    run.add_argument("--json", action="store_true")

    ex = sub.add_parser("executions", help="list and act on executions").add_subparsers(
        dest="action", metavar="ACTION")
    ex.required = True
    ex_list = ex.add_parser("list")
    ex_list.add_argument("--state", action="append")
    ex_list.add_argument("--namespace")
    ex_list.add_argument("--flow")
    ex_list.add_argument("--limit", type=int, default=25)
    ex_list.add_argument("--json", action="store_true")
    for name in ("show", "kill", "restart"):
        p = ex.add_parser(name)
        p.add_argument("execution_id")
        p.add_argument("--json", action="store_true")

    logs = sub.add_parser("logs", help="print an execution's logs")
    logs.add_argument("execution_id")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--level", help="minimum level (TRACE, DEBUG, INFO, WARN, ERROR)")

    ap = sub.add_parser("approvals", help="list and decide approvals").add_subparsers(
        dest="action", metavar="ACTION")
    ap.required = True
    ap_list = ap.add_parser("list")
    ap_list.add_argument("--all", action="store_true", help="include decided ones")
    ap_list.add_argument("--json", action="store_true")
    for name in ("approve", "reject"):
        p = ap.add_parser(name)
        p.add_argument("approval_id")
        p.add_argument("--comment")
        p.add_argument("--by", default=None, help="who decides (default: $USER)")
    return parser


def parse_pairs(pairs: Sequence[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} '{pair}' must look like KEY=VALUE")
        out[key] = value
    return out


def engine_settings(settings: Settings, *, scheduler: bool) -> EngineSettings:
    return EngineSettings(
        data_dir=settings.resolved_data_dir(),
        max_concurrent_executions=settings.engine.max_concurrent_executions,
        readers=settings.engine.reader_connections,
        scheduler=scheduler and settings.engine.scheduler)


@asynccontextmanager
async def open_engine(settings: Settings, *, start: bool, scheduler: bool = False) -> Any:
    engine = await Engine.open(engine_settings(settings, scheduler=scheduler), start=start)
    try:
        yield engine
    finally:
        await engine.close()


class Printer:
    """Human output, sanitised: flow, log and user text never reaches the terminal raw."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out

    def line(self, text: str = "") -> None:
        print(sanitize(text), file=self.out, flush=True)

    def json(self, value: Any) -> None:
        print(json.dumps(value, indent=2, ensure_ascii=False), file=self.out, flush=True)

    def table(self, headers: list[str], rows: list[list[str]]) -> None:
        cells = [[sanitize_line(c, 80) for c in row] for row in rows]
        widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
        self.out.write("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
                       .rstrip() + "\n")
        for row in cells:
            self.out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
                           .rstrip() + "\n")
        self.out.flush()

    def log(self, entry: LogEntry) -> None:
        task = entry.task_id or "-"
        self.out.write(f"{entry.timestamp[11:23]} {entry.level:<5} {sanitize_line(task, 40)}  "
                       f"{sanitize_line(entry.message)}\n")
        self.out.flush()


def short_duration(ex: Execution) -> str:
    seconds = ex.state.duration_seconds(datetime.now(UTC))
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def execution_row(ex: Execution) -> list[str]:
    done = sum(1 for t in ex.task_runs if is_terminal(t.state.current))
    return [ex.id, ex.state.current, f"{ex.namespace}.{ex.flow_id}",
            ex.state.start_date.strftime("%Y-%m-%d %H:%M:%S"), short_duration(ex),
            f"{done}/{len(ex.task_runs)}"]


EXECUTION_HEADERS = ["ID", "STATE", "FLOW", "STARTED", "DURATION", "TASKS"]


async def follow_until_settled(engine: Engine, execution_id: str, printer: Printer | None,
                               *, through_pause: bool, level: str | None = None) -> Execution:
    """Optionally print logs live; return when the execution ends (or pauses)."""
    async def settled() -> Execution:
        while True:
            if through_pause:
                return await engine.wait_until_terminal(execution_id)
            execution = await engine.get_execution(execution_id)
            if is_terminal(execution.state.current) and execution_id not in engine.runners:
                return execution
            if execution.state.current == "PAUSED":
                return execution
            sub = engine.bus.subscribe("execution", execution_id=execution_id)
            try:
                await sub.get(0.5)
            except TimeoutError:
                pass
            finally:
                sub.close()

    if printer is None:
        return await settled()
    waiter = asyncio.ensure_future(settled())
    follower = engine.follow_logs(execution_id, min_level=level, heartbeat=0.2)
    last = 0
    try:
        async for entry in follower:
            if entry is not None:
                printer.log(entry)
                last = entry.seq
            elif waiter.done():
                # Settled: print whatever committed after the last line shown, then stop.
                for rest in await engine.logs.fetch(execution_id, after_seq=last,
                                                    min_level=level):
                    printer.log(rest)
                break
    finally:
        await follower.aclose()  # type: ignore[attr-defined]
    return await waiter


async def cmd_flow(args: argparse.Namespace, settings: Settings, p: Printer) -> int:
    async with open_engine(settings, start=False) as engine:
        if args.action == "apply":
            for name in args.files:
                path = Path(name)
                try:
                    source = path.read_text()
                except OSError as exc:
                    raise UsageError(f"{name}: cannot be read: {exc.strerror}") from None
                try:
                    flow, what = await engine.apply_flow(source)
                except FlowdeckError as exc:
                    raise UsageError(f"{name}: {exc}") from None
                p.line(f"{what:<9} {flow.namespace}.{flow.id} (revision {flow.revision})")
            return EXIT_OK
        if args.action == "list":
            flows = engine.list_flows(args.namespace)
            if args.json:
                p.json([f.to_dict(with_source=False) for f in flows])
            else:
                p.table(["NAMESPACE", "ID", "REVISION", "TRIGGERS", "DESCRIPTION"], [
                    [f.namespace, f.id, str(f.revision),
                     ",".join(t.id for t in [*f.schedules, *f.webhooks]) or "-",
                     (f.description or "").splitlines()[0] if f.description else ""]
                    for f in flows])
            return EXIT_OK
        if args.action == "show":
            flow = engine.get_flow(args.namespace, args.flow_id)
            if args.json:
                p.json(flow.to_dict())
            else:
                p.line(f"# {flow.namespace}.{flow.id} revision {flow.revision}")
                p.line(flow.source.rstrip("\n"))
            return EXIT_OK
        await engine.delete_flow(args.namespace, args.flow_id)
        p.line(f"deleted {args.namespace}.{args.flow_id}")
        return EXIT_OK


async def cmd_run(args: argparse.Namespace, settings: Settings, p: Printer) -> int:
    inputs = parse_pairs(args.input, "input")
    labels = list(parse_pairs(args.label, "label").items())
    async with open_engine(settings, start=True) as engine:
        execution = await engine.create_execution(args.namespace, args.flow_id, inputs=inputs,
                                                  labels=labels)
        if not args.json:
            p.line(f"execution {execution.id} created")
        final = await follow_until_settled(engine, execution.id, p if args.follow else None,
                                           through_pause=args.wait)
        return report_final(final, args.json, p)


def report_final(final: Execution, as_json: bool, p: Printer) -> int:
    if as_json:
        p.json(final.to_dict(datetime.now(UTC)))
    else:
        p.line(f"execution {final.id} {final.state.current} in {short_duration(final)}")
        if final.state.current == "PAUSED":
            p.line("it is waiting (a pause or an approval); decide with `flowdeck approvals` "
                   "or resume it from the deck")
    return EXIT_OK if final.state.current == "SUCCESS" else EXIT_FAILED


async def cmd_executions(args: argparse.Namespace, settings: Settings, p: Printer) -> int:
    acting = args.action in ("kill", "restart")
    async with open_engine(settings, start=acting) as engine:
        if args.action == "list":
            if args.limit < 1:
                raise UsageError("--limit must be at least 1")
            query = ExecutionQuery(namespace=args.namespace, flow_id=args.flow,
                                   states=[s.upper() for s in args.state] if args.state else None,
                                   size=args.limit)
            results, total = await engine.search_executions(query)
            if args.json:
                now = datetime.now(UTC)
                p.json({"results": [e.to_dict(now) for e in results], "total": total})
            else:
                p.table(EXECUTION_HEADERS, [execution_row(e) for e in results])
                if total > len(results):
                    p.line(f"({len(results)} of {total}; use --limit to see more)")
            return EXIT_OK
        if args.action == "show":
            execution = await engine.get_execution(args.execution_id)
            if args.json:
                p.json(execution.to_dict(datetime.now(UTC)))
            else:
                p.table(EXECUTION_HEADERS, [execution_row(execution)])
                p.line()
                p.table(["TASK", "STATE", "ATTEMPTS", "VALUE"], [
                    [t.task_id, t.state.current, str(len(t.attempts)), t.value or ""]
                    for t in execution.task_runs])
            return EXIT_OK
        if args.action == "kill":
            await engine.kill(args.execution_id)
            final = await engine.wait_until_terminal(args.execution_id, timeout=60)
            return report_final(final, args.json, p) if final.state.current != "KILLED" \
                else (p.line(f"execution {final.id} KILLED") or EXIT_OK)
        restarted = await engine.restart(args.execution_id)
        if not args.json:
            p.line(f"execution {restarted.id} restarted")
        final = await follow_until_settled(engine, restarted.id, None, through_pause=False)
        return report_final(final, args.json, p)


async def cmd_logs(args: argparse.Namespace, settings: Settings, p: Printer) -> int:
    async with open_engine(settings, start=args.follow) as engine:
        await engine.get_execution(args.execution_id)
        if args.follow:
            final = await follow_until_settled(engine, args.execution_id, p,
                                               through_pause=False, level=args.level)
            return EXIT_OK if final.state.current == "SUCCESS" else EXIT_FAILED
        for entry in await engine.logs.fetch(args.execution_id, min_level=args.level):
            p.log(entry)
        return EXIT_OK


async def cmd_approvals(args: argparse.Namespace, settings: Settings, p: Printer) -> int:
    acting = args.action in ("approve", "reject")
    async with open_engine(settings, start=acting) as engine:
        if args.action == "list":
            items = await engine.approvals.list(None if args.all else "pending")
            if args.json:
                p.json([a.to_dict() for a in items])
            else:
                now = datetime.now(UTC)
                p.table(["ID", "STATUS", "FLOW", "TITLE", "WAITING"], [
                    [a.id, a.status, f"{a.namespace}.{a.flow_id}", a.title,
                     f"{(now - a.created_at).total_seconds() / 60:.0f}m"] for a in items])
            return EXIT_OK
        import getpass

        who = args.by or getpass.getuser()
        approval = await engine.approvals.decide(args.approval_id,
                                                 approve=args.action == "approve", by=who,
                                                 comment=args.comment)
        p.line(f"approval {approval.id} {approval.status} by {approval.decided_by}")
        final = await follow_until_settled(engine, approval.execution_id, None,
                                           through_pause=False)
        p.line(f"execution {final.id} is {final.state.current}")
        return EXIT_OK


async def cmd_demo(args: argparse.Namespace, settings: Settings, p: Printer) -> int:
    async with open_engine(settings, start=True, scheduler=True) as engine:
        p.line(f"flowdeck demo — data in {engine.data_dir}")
        for source in example_sources():
            flow, what = await engine.apply_flow(source)
            p.line(f"  {what:<9} {flow.namespace}.{flow.id}")
        p.line("\nrunning flowdeck.demo.build-dag and following its logs:\n")
        execution = await engine.create_execution("flowdeck.demo", "build-dag")
        final = await follow_until_settled(engine, execution.id, p, through_pause=False)
        p.line(f"\nexecution {final.id} ended {final.state.current}")
        approval_run = await engine.create_execution("flowdeck.demo", "release-approval")
        await follow_until_settled(engine, approval_run.id, None, through_pause=False)
        pending = await engine.approvals.list("pending")
        p.line(f"{len(pending)} approval(s) waiting; try: flowdeck approvals list")
        results, _ = await engine.search_executions(ExecutionQuery(size=10))
        p.line()
        p.table(EXECUTION_HEADERS, [execution_row(e) for e in results])
    return EXIT_OK


def example_sources() -> list[str]:
    folder = resources.files("flowdeck.examples")
    return [item.read_text() for item in sorted(folder.iterdir(), key=lambda i: i.name)
            if item.name.endswith(".yml")]


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings, Printer], Awaitable[int]]] = {
    "flow": cmd_flow, "run": cmd_run, "executions": cmd_executions, "logs": cmd_logs,
    "approvals": cmd_approvals, "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args.command = "demo"
    try:
        settings = load_settings(args.config, data_dir=args.data_dir)
        return asyncio.run(COMMANDS[args.command](args, settings, Printer()))
    except (FlowdeckError, ConfigError) as exc:
        print(f"flowdeck: {sanitize_line(str(exc), 2000)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
