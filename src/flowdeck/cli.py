"""The `flowdeck` command line: scripts and CI drive the same engine the deck shows.

flow, run, executions, logs, approvals and staging run on the client layer (the `Backend`
protocol): the engine in --data-dir through `EmbeddedBackend`, or a server through `--url` /
`--profile`, with one implementation. `demo`, `serve`, `passwd` and `token` use the engine
directly.

Exit codes: 0 success; 1 the run (or action) ended in a non-successful state; 2 bad input or
configuration (a one-line message on stderr says what is wrong).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import re
import signal
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from flowdeck.config import ConfigError, Settings, load_settings
from flowdeck.core.errors import (
    BadRequestError,
    ConflictError,
    FlowdeckError,
    ValidationError,
)
from flowdeck.core.models import LEVEL_RANK, Approval, Execution, LogEntry
from flowdeck.core.sanitize import sanitize, sanitize_line
from flowdeck.core.states import RESTARTABLE_STATES, is_known, is_terminal
from flowdeck.core.timefmt import format_instant, parse_duration
from flowdeck.engine.engine import Engine, EngineSettings
from flowdeck.engine.keys import ROLES, ApiToken, open_token_store
from flowdeck.engine.query import ExecutionQuery

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 128 + signal.SIGTERM


class UsageError(FlowdeckError):
    """Bad command-line input."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowdeck", description="A terminal control deck for workflow runs.")
    parser.add_argument("--data-dir", help="engine data directory "
                        "(env FLOWDECK_DATA_DIR; default: the user data dir)")
    parser.add_argument("--config", help="config file (env FLOWDECK_CONFIG)")
    # With no command, `flowdeck` opens the deck (the TUI); these flags are for it.
    parser.add_argument("--url", help="open the deck on a server (flowdeck serve or Kestra) "
                        "instead of the embedded engine")
    parser.add_argument("--profile", help="open the deck on a [profiles.NAME] backend")
    parser.add_argument("--read-only", action="store_true", default=None,
                        help="hide every state-changing action in the deck")
    parser.add_argument("--demo", action="store_true",
                        help="with the deck: apply the bundled examples and start some runs")
    parser.add_argument("--serve", metavar="HOST:PORT",
                        help="with the deck on the embedded engine: also serve the HTTP API "
                        "(as `flowdeck serve` does) from the same process")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("demo", help="apply the bundled example flows, run one and follow it live")

    flow = sub.add_parser("flow", help="manage flows").add_subparsers(dest="action",
                                                                     metavar="ACTION")
    flow.required = True
    apply = remote_flags(flow.add_parser("apply", help="create or update flows from YAML files"))
    apply.add_argument("files", nargs="+")
    listing = remote_flags(flow.add_parser("list", help="list flows"))
    listing.add_argument("--namespace")
    listing.add_argument("--json", action="store_true")
    show = remote_flags(flow.add_parser("show", help="show one flow"))
    show.add_argument("namespace")
    show.add_argument("flow_id")
    show.add_argument("--json", action="store_true")
    delete = remote_flags(flow.add_parser("delete", help="delete a flow (its executions are kept)"))
    delete.add_argument("namespace")
    delete.add_argument("flow_id")

    run = remote_flags(sub.add_parser("run", help="run a flow; exits 0 only if it ends in SUCCESS"))
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
    ex_list = remote_flags(ex.add_parser("list"))
    ex_list.add_argument("--state", action="append")
    ex_list.add_argument("--namespace")
    ex_list.add_argument("--flow")
    ex_list.add_argument("--limit", type=int, default=25)
    ex_list.add_argument("--json", action="store_true")
    for name in ("show", "kill", "restart"):
        p = remote_flags(ex.add_parser(name))
        p.add_argument("execution_id")
        p.add_argument("--json", action="store_true")

    logs = remote_flags(sub.add_parser("logs", help="print an execution's logs"))
    logs.add_argument("execution_id")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--level", help="minimum level (TRACE, DEBUG, INFO, WARN, ERROR)")

    ap = sub.add_parser("approvals", help="list and decide approvals").add_subparsers(
        dest="action", metavar="ACTION")
    ap.required = True
    ap_list = remote_flags(ap.add_parser("list"))
    ap_list.add_argument("--all", action="store_true", help="include decided ones")
    ap_list.add_argument("--json", action="store_true")
    for name in ("approve", "reject"):
        p = remote_flags(ap.add_parser(name))
        p.add_argument("approval_id")
        p.add_argument("--comment")
        p.add_argument("--by", default=None, help="who decides (default: $USER)")

    st = sub.add_parser("staging", help="list, clone and delete staging environments "
                        "(runs the dev.deployment staging flows)").add_subparsers(
        dest="action", metavar="ACTION")
    st.required = True
    st_list = remote_flags(st.add_parser("list", help="list staging environments, newest first"))
    st_list.add_argument("--prefix", default="staging-",
                         help="only names starting with this (default: staging-)")
    st_list.add_argument("--json", action="store_true")
    clone = remote_flags(st.add_parser(
        "clone", help="clone a source environment into a new staging environment; without "
        "--wait, print the execution id and state (in-process, without --url, it always "
        "waits: the engine runs in this command)"))
    clone.add_argument("client_name", metavar="CLIENT",
                       help="client identifier, e.g. acme-corp (lowercase letters, digits, '-')")
    clone.add_argument("--name", dest="environment_name", metavar="NAME",
                       help="staging-... (default: staging-CLIENT-YYYYMMDD-HHMMSS, UTC)")
    clone.add_argument("--source", dest="source_environment", metavar="SRC",
                       help="environment to clone from (default: production)")
    clone.add_argument("--skip-database", action="store_true",
                       help="create the environment without copying the database")
    clone.add_argument("--wait", action="store_true",
                       help="wait for the clone and print the environment's name and URL")
    clone.add_argument("--json", action="store_true")
    st_delete = remote_flags(st.add_parser(
        "delete", help="delete a staging environment (only names matching "
        "^staging-[a-z0-9][a-z0-9-]{0,62}$ exactly; the engine refuses the rest)"))
    st_delete.add_argument("environment_name", metavar="NAME")
    st_delete.add_argument("--json", action="store_true")

    serve = sub.add_parser("serve", help="serve the engine over HTTP (Kestra's API) until "
                           "SIGTERM/Ctrl-C")
    serve.add_argument("--host", help="address to bind (default: [server] host, 127.0.0.1); "
                       "anything but loopback needs credentials")
    serve.add_argument("--port", type=int, help="port (default: [server] port, 8080; "
                       "0 picks a free one)")
    serve.add_argument("--access-log", action="store_true",
                       help="log every request to stderr (webhook keys redacted)")

    passwd = sub.add_parser("passwd", help="hash a password for [server] basic_password_hash")
    passwd.add_argument("--stdin", action="store_true",
                        help="read the password from the first line of stdin (scripts)")

    token = sub.add_parser("token", help="manage API tokens (Bearer) for `flowdeck serve`"
                           ).add_subparsers(dest="action", metavar="ACTION")
    token.required = True
    create = token.add_parser("create", help="create a token and show it once")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name")
    create.add_argument("--expires-in", metavar="DURATION",
                        help="ISO-8601 duration, e.g. P30D or PT12H (default: never)")
    create.add_argument("--json", action="store_true")
    token_list = token.add_parser("list", help="list tokens (never their secrets)")
    token_list.add_argument("--json", action="store_true")
    revoke = token.add_parser("revoke", help="revoke a token at once")
    revoke.add_argument("token_id")
    return parser


def remote_flags(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`--url`/`--profile` after the subcommand too (`flowdeck run ns f --url U`); SUPPRESS so
    an absent one does not override the top-level flag."""
    parser.add_argument("--url", default=argparse.SUPPRESS,
                        help="run against this server (flowdeck serve or Kestra); credentials "
                        "from FLOWDECK_TOKEN or FLOWDECK_USERNAME/FLOWDECK_PASSWORD")
    parser.add_argument("--profile", default=argparse.SUPPRESS,
                        help="run against the [profiles.NAME] backend")
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
    try:
        staging = settings.staging.engine_extra()  # reads the Railway token_env/token_file
    except ValueError as exc:
        raise ConfigError(f"{settings.source}: staging.railway.{exc}") from None
    return EngineSettings(
        data_dir=settings.resolved_data_dir(),
        max_concurrent_executions=settings.engine.max_concurrent_executions,
        readers=settings.engine.reader_connections,
        scheduler=scheduler and settings.engine.scheduler,
        extra={"staging": staging, "webhooks": settings.webhooks.engine_extra()})


@asynccontextmanager
async def open_engine(settings: Settings, *, start: bool, scheduler: bool = False) -> Any:
    """Open the engine; with start=False nothing runs until `engine.start()` (recovery).

    Commands validate what they were given before they start the engine, so a typo does not
    resume (and then cut short again) executions an earlier process left unfinished.
    """
    config = engine_settings(settings, scheduler=scheduler)
    try:
        engine = await Engine.open(config, start=start)
    except OSError as exc:
        raise UsageError(f"data dir {config.data_dir} cannot be used: "
                         f"{exc.strerror or exc}") from None
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"{config.data_dir / 'flowdeck.db'}: {exc}") from None
    try:
        yield engine
    finally:
        await engine.close()


_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
                          "\u2028\u2029]")


class Printer:
    """Human output, sanitised: flow, log and user text never reaches the terminal raw."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out

    def line(self, text: str = "") -> None:
        print(sanitize(text), file=self.out, flush=True)

    def json(self, value: Any) -> None:
        # json.dumps escapes C0 controls but writes DEL, C1 (8-bit CSI/OSC...) and bidi
        # controls raw with ensure_ascii=False; escape those too (lossless, still valid JSON).
        text = _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}",
                                json.dumps(value, indent=2, ensure_ascii=False))
        print(text, file=self.out, flush=True)

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
    # Not StateInfo.duration_seconds: that stops at the last state change, so a RUNNING
    # execution would show the time it took to start.
    end = ex.state.end_date or datetime.now(UTC)
    seconds = max(0.0, (end - ex.state.start_date).total_seconds())
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


def read_flow_file(name: str) -> str:
    try:
        return Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{name}: cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{name}: not UTF-8 text (byte {exc.start})") from None


def report_final(final: Execution, as_json: bool, p: Printer) -> int:
    if as_json:
        p.json(final.to_dict(datetime.now(UTC)))
    else:
        p.line(f"execution {final.id} {final.state.current} in {short_duration(final)}")
        if final.state.current == "PAUSED":
            p.line("it is waiting (a pause or an approval); decide with `flowdeck approvals` "
                   "or resume it from the deck")
    return EXIT_OK if final.state.current == "SUCCESS" else EXIT_FAILED


def show_execution(execution: Execution, p: Printer) -> None:
    p.table(EXECUTION_HEADERS, [execution_row(execution)])
    p.line()
    p.table(["TASK", "STATE", "ATTEMPTS", "VALUE"], [
        [t.task_id, t.state.current, str(len(t.attempts)), t.value or ""]
        for t in execution.task_runs])


def show_approvals(items: list[Approval], as_json: bool, p: Printer) -> None:
    if as_json:
        p.json([a.to_dict() for a in items])
        return
    now = datetime.now(UTC)
    p.table(["ID", "STATUS", "FLOW", "TITLE", "WAITING"], [
        [a.id, a.status, f"{a.namespace}.{a.flow_id}", a.title,
         f"{(now - a.created_at).total_seconds() / 60:.0f}m"] for a in items])


def decider(args: argparse.Namespace) -> str:
    """Who decides an approval: --by, else the login name."""
    import getpass

    if args.by is not None:
        return str(args.by)
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise UsageError("cannot tell who you are; pass --by NAME") from None


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


async def cmd_serve(args: argparse.Namespace, settings: Settings, p: Printer) -> int:
    from flowdeck.server.app import ServerOptions
    from flowdeck.server.serve import serve_engine, stop_on_signals

    config = settings.server
    host = args.host if args.host is not None else config.host
    port = args.port if args.port is not None else config.port
    if not host.strip():
        raise UsageError("--host must not be empty")
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port}: must be between 0 and 65535")
    options = ServerOptions(host=host, port=port, basic_username=config.basic_username,
                            basic_password_hash=config.basic_password_hash)
    with stop_on_signals() as stopper:
        async with open_engine(settings, start=False, scheduler=True) as engine:
            return await serve_engine(engine, options, stopper, announce=p.line,
                                      access_log=args.access_log)


async def cmd_passwd(args: argparse.Namespace, settings: Settings, p: Printer) -> int:
    from flowdeck.server.auth import hash_password

    if args.stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    else:
        import getpass

        try:
            password = getpass.getpass("Password: ")
            again = getpass.getpass("Again: ")
        except EOFError:
            raise UsageError("no password given (use --stdin to pipe one in)") from None
        if password != again:
            raise UsageError("the two passwords differ; nothing was hashed")
    if not password:
        raise UsageError("the password is empty")
    p.line(hash_password(password))
    return EXIT_OK


def token_row(token: ApiToken, now: datetime) -> list[str]:
    def day(value: datetime | None) -> str:
        return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"

    return [token.id, token.name, token.role, token.prefix + "…", token.status(now),
            day(token.created_at), day(token.expires_at) if token.expires_at else "never",
            day(token.last_used_at)]


async def cmd_token(args: argparse.Namespace, settings: Settings, p: Printer) -> int:
    expires_in = None
    if args.action == "create" and args.expires_in is not None:
        try:
            expires_in = parse_duration(args.expires_in)
        except ValueError as exc:
            raise UsageError(f"--expires-in: {exc}") from None
    data_dir = settings.resolved_data_dir()
    try:
        async with open_token_store(data_dir) as tokens:
            now = datetime.now(UTC)
            if args.action == "create":
                token, secret = await tokens.create(args.role, args.name, expires_in)
                if args.json:
                    p.json({**token.to_dict(now), "token": secret})
                    return EXIT_OK
                expiry = format_instant(token.expires_at) if token.expires_at else "never"
                p.line(f"token {token.id} created: name {token.name!r}, role {token.role}, "
                       f"expires {expiry}")
                p.line(secret)
                p.line("it is shown only this once; send it as `Authorization: Bearer <token>`")
                return EXIT_OK
            if args.action == "list":
                items = await tokens.list_all()
                if args.json:
                    p.json([t.to_dict(now) for t in items])
                else:
                    p.table(["ID", "NAME", "ROLE", "PREFIX", "STATUS", "CREATED", "EXPIRES",
                             "LAST USED"], [token_row(t, now) for t in items])
                return EXIT_OK
            token = await tokens.revoke(args.token_id)
            p.line(f"token {token.id} ({token.name}) revoked")
            return EXIT_OK
    except OSError as exc:
        raise UsageError(f"data dir {data_dir} cannot be used: {exc.strerror or exc}") from None
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"{data_dir / 'flowdeck.db'}: {exc}") from None


def profile_backend(settings: Settings, name: str, *, url: str | None = None) -> Any:
    """The backend of `[profiles.NAME]` (not connected yet). A problem (no such profile, an
    unset variable, an unreadable secret file) is a `UsageError` naming the file and key."""
    from flowdeck.client.factory import make_backend

    profile = settings.profiles.get(name)
    if profile is None:
        have = ", ".join(sorted(settings.profiles)) or "none"
        raise UsageError(f"{settings.source}: no [profiles.{name}] (profiles defined: {have})")
    try:
        return make_backend(url, profile=profile.backend_options(),
                            engine_settings=engine_settings(settings, scheduler=True),
                            key_prefix=f"profiles.{name}.")
    except ValidationError as exc:
        raise UsageError(f"{settings.source}: {exc}") from None


def run_deck(args: argparse.Namespace, settings: Settings) -> int:
    """`flowdeck` with no command: the deck, on the embedded engine unless --url or --profile
    names another backend; `:profile NAME` in the deck switches to another profile."""
    app, serving = build_deck(args, settings)
    try:
        app.run()
    finally:
        if serving is not None:
            serving.sock.close()
    return EXIT_OK


def build_deck(args: argparse.Namespace, settings: Settings) -> tuple[Any, DeckServing | None]:
    """The deck app for these flags (not running yet), and its `--serve` socket if asked."""
    from flowdeck.client.backend import Backend
    from flowdeck.tui.app import FlowdeckApp

    tui = settings.tui
    read_only, theme = tui.read_only, tui.theme
    backend: Backend
    if args.profile:
        backend = profile_backend(settings, args.profile, url=args.url)
        chosen = settings.profiles[args.profile]
        read_only = chosen.read_only if chosen.read_only is not None else read_only
        theme = chosen.theme or theme
    elif args.url:
        from flowdeck.client.http import HttpBackend

        backend = HttpBackend(args.url, token=os.environ.get("FLOWDECK_TOKEN") or None)
    else:
        from flowdeck.client.embedded import EmbeddedBackend

        backend = EmbeddedBackend(engine_settings(settings, scheduler=True))

    def open_profile(name: str) -> Backend:
        backend: Backend = profile_backend(settings, name)
        return backend

    if args.serve and (args.url or args.profile):
        raise UsageError("--serve serves the embedded engine; it cannot be combined with "
                         "--url or --profile")
    serving = DeckServing.bind(args.serve, settings) if args.serve else None

    async def startup(backend: Backend) -> None:
        if args.demo:
            await seed_demo(backend)
        if serving is not None:
            await serving.start(backend, app)

    app = FlowdeckApp(
        backend, read_only=bool(args.read_only) or read_only, theme=theme,
        refresh_seconds=tui.refresh, bell=tui.bell, keymap=dict(tui.keys),
        max_log_lines=tui.max_log_lines,
        startup=startup if args.demo or serving is not None else None,
        close_backend=True, profile=args.profile, open_profile=open_profile,
        profile_names=sorted(settings.profiles),
        before_close=serving.stop if serving is not None else None)
    return app, serving


class DeckServing:
    """`flowdeck --serve HOST:PORT`: the HTTP API on the deck's embedded engine.

    The socket is bound before the deck takes the terminal, so a busy port is a one-line
    error (exit 2); the server then runs on the engine's own loop once the engine is up, and
    stops before the deck closes the engine. uvicorn's messages go to `serve.log` in the data
    directory, since the terminal is the deck's.
    """

    def __init__(self, sock: Any, options: Any, log_file: Path) -> None:
        self.sock = sock
        self.options = options
        self.log_file = log_file
        self.service: Any = None

    @classmethod
    def bind(cls, spec: str, settings: Settings) -> DeckServing:
        from flowdeck.server.app import ServerOptions
        from flowdeck.server.serve import ServeError, bind, parse_listen

        try:
            host, port = parse_listen(spec)
            sock = bind(host, port)
        except ServeError as exc:
            raise UsageError(str(exc)) from None
        config = settings.server
        options = ServerOptions(host=host, port=sock.getsockname()[1],
                                basic_username=config.basic_username,
                                basic_password_hash=config.basic_password_hash)
        return cls(sock, options, settings.resolved_data_dir() / "serve.log")

    async def start(self, backend: Any, app: Any) -> None:
        from flowdeck.server.serve import serve_alongside

        async def run(engine: Engine) -> Any:
            return await serve_alongside(engine, self.options, self.sock,
                                         log_file=str(self.log_file))

        try:
            self.service = await backend.engine_call(run)
        except FlowdeckError as exc:
            app.toast(f"not serving the HTTP API: {exc}", severity="error")
            return
        app.serving_url = self.service.url
        app.toast(f"serving the HTTP API at {self.service.url} — {self.service.auth_line}")

    async def stop(self, backend: Any) -> None:
        service, self.service = self.service, None
        if service is not None:
            async def run(engine: Engine) -> None:
                await service.stop()

            await backend.engine_call(run)


async def seed_demo(backend: Any) -> None:
    """Live activity for `make run`: the examples, the scheduled report and an approval."""
    for source in example_sources():
        await backend.apply_flow(source)
    await backend.create_execution("flowdeck.demo", "nightly-report")
    await backend.create_execution("flowdeck.demo", "release-approval")


def example_sources() -> list[str]:
    folder = resources.files("flowdeck.examples")
    return [item.read_text() for item in sorted(folder.iterdir(), key=lambda i: i.name)
            if item.name.endswith(".yml")]


# -- the commands, over the Backend protocol: the embedded engine or --url / --profile --------

#: How long `executions kill` waits for the killed run to end.
KILL_WAIT = 60.0
#: How long, after an in-process execution ended, its runner may take to let go (its last
#: log lines commit then).
RUNNER_WAIT = 10.0


def client_backend(args: argparse.Namespace, settings: Settings) -> Any:
    """The backend the command runs on (not connected yet): the engine in --data-dir, else the
    one `--url`/`--profile` names. Credentials come from the profile, else from FLOWDECK_TOKEN
    or FLOWDECK_USERNAME/FLOWDECK_PASSWORD; never a flag.

    An in-process engine is opened without starting it (no recovery, no workers, no
    scheduler), so a command that only reads changes nothing; `ensure_started` starts it just
    before the first change, once the command's input has been checked.
    """
    from flowdeck.client.embedded import EmbeddedBackend
    from flowdeck.client.factory import make_backend

    url = getattr(args, "url", None)
    profile_name = getattr(args, "profile", None)
    if not url and not profile_name:
        return EmbeddedBackend(engine_settings(settings, scheduler=False), start=False)
    env = os.environ
    token = env.get("FLOWDECK_TOKEN") or None
    username = env.get("FLOWDECK_USERNAME") or None
    password = env.get("FLOWDECK_PASSWORD")
    credentials: dict[str, Any] = {}
    if token is not None or username is not None:
        credentials = {"token": token, "username": username,
                       "password": password if username is not None else None}
    if profile_name:
        profile = settings.profiles.get(profile_name)
        if profile is None:
            have = ", ".join(sorted(settings.profiles)) or "none"
            raise UsageError(f"{settings.source}: no [profiles.{profile_name}] "
                             f"(profiles defined: {have})")
        options = profile.backend_options()
        if any(options.get(k) is not None for k in (
                "username", "password", "token", "username_env", "password_env", "token_env",
                "password_file", "token_file")):
            credentials = {}  # the profile's own credentials win over the environment
        try:
            backend = make_backend(url, profile=options,
                                   engine_settings=engine_settings(settings, scheduler=True),
                                   key_prefix=f"profiles.{profile_name}.", **credentials)
        except ValidationError as exc:
            raise UsageError(f"{settings.source}: {exc}") from None
        if isinstance(backend, EmbeddedBackend):  # an embedded profile: as --data-dir is
            return EmbeddedBackend(dataclasses.replace(backend.settings, scheduler=False),
                                   start=False)
        return backend
    try:
        return make_backend(url, **credentials)
    except ValidationError as exc:
        raise UsageError(f"--url {url}: {exc}") from None


@asynccontextmanager
async def open_backend(args: argparse.Namespace, settings: Settings) -> Any:
    backend = client_backend(args, settings)
    try:
        try:
            capabilities = await backend.connect()
        except OSError as exc:  # only an embedded engine opens files here
            data_dir = getattr(getattr(backend, "settings", None), "data_dir", "")
            raise UsageError(f"data dir {data_dir} cannot be used: "
                             f"{exc.strerror or exc}") from None
        except sqlite3.DatabaseError as exc:
            data_dir = getattr(getattr(backend, "settings", None), "data_dir", "")
            raise UsageError(f"{Path(data_dir) / 'flowdeck.db'}: {exc}") from None
        yield backend, capabilities
    finally:
        await backend.close()


def idle_engine(backend: Any) -> bool:
    """Whether `backend` is an in-process engine that has not been started."""
    from flowdeck.client.embedded import EmbeddedBackend

    return isinstance(backend, EmbeddedBackend) and not backend.started


async def ensure_started(backend: Any) -> None:
    """Before a change: an in-process engine starts now (it resumes what an earlier process
    left unfinished, and a run it starts or resumes has its runner here). A server runs."""
    if idle_engine(backend):
        await backend.start()


async def runner_gone(backend: Any, execution_id: str) -> None:
    """For an in-process engine: wait until the ended execution's runner has let go, so its
    last log lines are committed too (they can trail the final state by one commit)."""
    from flowdeck.client.embedded import EmbeddedBackend

    if isinstance(backend, EmbeddedBackend) and backend.started:
        with contextlib.suppress(TimeoutError):
            await backend.engine_call(
                lambda e: e.wait_until_terminal(execution_id, timeout=RUNNER_WAIT))


#: Flow keys Kestra's flow JSON carries beyond what `FlowInfo` keeps (read from the source).
FLOW_BODY_KEYS = ("outputs", "variables", "tasks", "errors", "finally", "afterExecution",
                  "concurrency", "retry", "pluginDefaults")


def flow_dict(flow: Any, *, with_source: bool) -> dict[str, Any]:
    """A flow as Kestra's JSON shows it, `tasks` and all (taken from its YAML source)."""
    import yaml

    out: dict[str, Any] = {
        "id": flow.id, "namespace": flow.namespace, "revision": flow.revision,
        "description": flow.description,
        "labels": [{"key": k, "value": v} for k, v in flow.labels],
        "inputs": flow.inputs}
    doc: Any = None
    if flow.source:
        with contextlib.suppress(yaml.YAMLError):
            doc = yaml.safe_load(flow.source)
    if isinstance(doc, dict):
        out.update({k: doc[k] for k in FLOW_BODY_KEYS if k in doc})
    out["triggers"] = flow.triggers
    out["disabled"] = flow.disabled
    if with_source:
        out["source"] = flow.source
    return out


async def client_flow(args: argparse.Namespace, backend: Any, p: Printer) -> int:
    from flowdeck.core.errors import NotFoundError

    if args.action == "apply":
        sources = [(name, read_flow_file(name)) for name in args.files]
        for name, source in sources:
            identity = flow_identity(source)
            before = None
            if identity is not None:
                with contextlib.suppress(NotFoundError):
                    before = await backend.get_flow(*identity)
            try:
                flow = await backend.apply_flow(source)
            except (ValidationError, BadRequestError) as exc:
                raise UsageError(f"{name}: {exc}") from None
            what = ("created" if before is None else
                    "unchanged" if before.revision == flow.revision else "updated")
            p.line(f"{what:<9} {flow.namespace}.{flow.id} (revision {flow.revision})")
        return EXIT_OK
    if args.action == "list":
        flows = await backend.list_flows(args.namespace)
        if args.json:
            p.json([flow_dict(f, with_source=False) for f in flows])
        else:
            p.table(["NAMESPACE", "ID", "REVISION", "TRIGGERS", "DESCRIPTION"], [
                [f.namespace, f.id, str(f.revision),
                 ",".join(str(t.get("id")) for t in f.triggers) or "-",
                 (f.description or "").splitlines()[0] if f.description else ""]
                for f in flows])
        return EXIT_OK
    if args.action == "show":
        flow = await backend.get_flow(args.namespace, args.flow_id)
        if args.json:
            p.json(flow_dict(flow, with_source=True))
        else:
            p.line(f"# {flow.namespace}.{flow.id} revision {flow.revision}")
            p.line((flow.source or "").rstrip("\n"))
        return EXIT_OK
    await backend.delete_flow(args.namespace, args.flow_id)
    p.line(f"deleted {args.namespace}.{args.flow_id}")
    return EXIT_OK


def flow_identity(source: str) -> tuple[str, str] | None:
    """(namespace, id) of a flow's YAML, if it reads as one (to tell created from updated)."""
    import yaml

    try:
        doc = yaml.safe_load(source)
    except yaml.YAMLError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("namespace"), str) \
            and isinstance(doc.get("id"), str):
        return doc["namespace"], doc["id"]
    return None


async def backend_settled(backend: Any, execution_id: str, *, through_pause: bool) -> Execution:
    """The execution once it ended (or, without through_pause, once it waits)."""
    last: Execution | None = None
    stream = backend.follow_execution(execution_id)
    try:
        async for snapshot in stream:
            last = snapshot
            if is_terminal(snapshot.state.current):
                break
            if not through_pause and snapshot.state.current == "PAUSED":
                break
    finally:
        await stream.aclose()
    if last is not None and is_terminal(last.state.current):
        await runner_gone(backend, execution_id)
    final: Execution = await backend.get_execution(execution_id)
    if last is not None and is_terminal(last.state.current) \
            and not is_terminal(final.state.current):
        return last
    return final


async def backend_follow(backend: Any, execution_id: str, printer: Printer | None, *,
                         through_pause: bool, level: str | None = None) -> Execution:
    """Print an execution's logs live (at `level` and above) until it settles."""
    if printer is None:
        return await backend_settled(backend, execution_id, through_pause=through_pause)
    floor = LEVEL_RANK[level] if level else None
    last = 0

    def show(entry: LogEntry) -> None:
        nonlocal last
        last = max(last, entry.seq)
        if floor is None or LEVEL_RANK.get(entry.level, 0) >= floor:
            printer.log(entry)

    async def pump() -> None:
        stream = backend.follow_logs(execution_id)
        try:
            async for entry in stream:
                show(entry)
        finally:
            await stream.aclose()

    follower = asyncio.ensure_future(pump())
    try:
        final = await backend_settled(backend, execution_id, through_pause=through_pause)
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
    if follower.done() and not follower.cancelled() and follower.exception() is not None:
        raise follower.exception()  # type: ignore[misc]
    for rest in await backend.logs(execution_id, after_seq=last):
        show(rest)  # whatever committed after the last line shown
    return final


def check_inputs(flow: Any, inputs: dict[str, str]) -> None:
    """Refuse bad inputs as the engine would (`inputs.count: expected an integer, got 'abc'`),
    before an in-process engine starts: a typo must not resume what an earlier process left
    unfinished. A server checks them itself."""
    from flowdeck.engine.inputs import InputDef, resolve_inputs

    resolve_inputs([InputDef.model_validate(d) for d in flow.inputs], inputs)


async def client_run(args: argparse.Namespace, backend: Any, p: Printer) -> int:
    inputs = parse_pairs(args.input, "input")
    labels = list(parse_pairs(args.label, "label").items())
    flow = await backend.get_flow(args.namespace, args.flow_id)  # unknown: one line, exit 2
    if idle_engine(backend):
        check_inputs(flow, inputs)
        await ensure_started(backend)
    execution = await backend.create_execution(args.namespace, args.flow_id, inputs=inputs,
                                               labels=labels)
    if not args.json:
        p.line(f"execution {execution.id} created")
    final = await backend_follow(backend, execution.id, p if args.follow else None,
                                 through_pause=args.wait)
    return report_final(final, args.json, p)


async def client_executions(args: argparse.Namespace, backend: Any, p: Printer) -> int:
    from flowdeck.client.backend import ExecutionFilter

    states = [s.upper() for s in args.state] if getattr(args, "state", None) else None
    if args.action == "list":
        page = await backend.search_executions(ExecutionFilter(
            namespace=args.namespace, flow_id=args.flow, states=states, size=args.limit))
        if args.json:
            now = datetime.now(UTC)
            p.json({"results": [e.to_dict(now) for e in page.results], "total": page.total})
        else:
            p.table(EXECUTION_HEADERS, [execution_row(e) for e in page.results])
            if page.total > len(page.results):
                p.line(f"({len(page.results)} of {page.total}; use --limit to see more)")
        return EXIT_OK
    if args.action == "show":
        execution = await backend.get_execution(args.execution_id)
        if args.json:
            p.json(execution.to_dict(datetime.now(UTC)))
        else:
            show_execution(execution, p)
        return EXIT_OK
    if args.action == "kill":
        current = await backend.get_execution(args.execution_id)
        if is_terminal(current.state.current):  # as the engine says it (a server may not)
            raise ConflictError(f"execution {current.id} is already {current.state.current}")
        await ensure_started(backend)  # its runner lives in this process from now on
        await backend.kill(args.execution_id)
        try:
            async with asyncio.timeout(KILL_WAIT):
                final = await backend_settled(backend, args.execution_id, through_pause=True)
        except TimeoutError:
            raise UsageError(f"execution {args.execution_id} did not end within "
                             f"{KILL_WAIT:g} s of the kill") from None
        if final.state.current != "KILLED":
            return report_final(final, args.json, p)  # it ended on its own first
        if args.json:
            p.json(final.to_dict(datetime.now(UTC)))
        else:
            p.line(f"execution {final.id} KILLED")
        return EXIT_OK
    if idle_engine(backend):
        current = await backend.get_execution(args.execution_id)
        if current.state.current in RESTARTABLE_STATES:  # else the engine refuses it
            await ensure_started(backend)  # first, or recovery would launch it twice
    restarted = await backend.restart(args.execution_id)
    if not args.json:
        p.line(f"execution {restarted.id} restarted")
    final = await backend_settled(backend, restarted.id, through_pause=False)
    return report_final(final, args.json, p)


async def client_logs(args: argparse.Namespace, backend: Any, p: Printer,
                      level: str | None) -> int:
    await backend.get_execution(args.execution_id)
    if args.follow:
        await ensure_started(backend)  # an unfinished run goes on while it is followed
        final = await backend_follow(backend, args.execution_id, p, through_pause=False,
                                     level=level)
        return EXIT_OK if final.state.current == "SUCCESS" else EXIT_FAILED
    for entry in await backend.logs(args.execution_id, min_level=level):
        p.log(entry)
    return EXIT_OK


async def client_approvals(args: argparse.Namespace, backend: Any, p: Printer,
                           capabilities: Any) -> int:
    if not capabilities.approvals:
        raise UsageError(f"approvals are not available on this server ({backend.name})")
    if args.action == "list":
        show_approvals(await backend.list_approvals(None if args.all else "pending"),
                       args.json, p)
        return EXIT_OK
    who = decider(args)
    approve = args.action == "approve"
    current = await backend.get_approval(args.approval_id)
    if current.status != "pending":
        # The server refuses it; its answer names who decided and when.
        await backend.decide(current.id, approve=approve, by=who, comment=args.comment)
    if current.require_comment and not (args.comment or "").strip():
        raise UsageError(f"approval {current.id} requires a comment: pass --comment TEXT")
    # The waiting execution must have its runner in this process when the decision lands.
    await ensure_started(backend)
    approval = await backend.decide(current.id, approve=approve, by=who, comment=args.comment)
    p.line(f"approval {approval.id} {approval.status} by {approval.decided_by}")
    final = await backend_after_decision(backend, approval.execution_id, approval.task_run_id)
    p.line(f"execution {final.id} is {final.state.current}")
    return EXIT_OK


async def backend_after_decision(backend: Any, execution_id: str,
                                 task_run_id: str) -> Execution:
    """Wait until the execution has acted on a decision: it ended, or it went on past the
    decided task and is waiting again (a later pause or approval)."""
    def settled(execution: Execution) -> bool:
        if is_terminal(execution.state.current):
            return True
        decided = execution.find_task_run(task_run_id)
        return execution.state.current == "PAUSED" and (
            decided is None or decided.state.current != "PAUSED")

    stream = backend.follow_execution(execution_id)
    ended = False
    try:
        async for snapshot in stream:
            if settled(snapshot):
                ended = is_terminal(snapshot.state.current)
                break
    finally:
        await stream.aclose()
    if ended:
        await runner_gone(backend, execution_id)
    final: Execution = await backend.get_execution(execution_id)
    return final


# -- staging environments (the dev.deployment flows, through any backend) ---------------------

#: The engine's answers that refuse what was typed: its name rules and required fields
#: (`flowdeck.engine.staging.base`: each names the field, or says "refusing to delete"), and a
#: source environment that does not exist. A Kestra running the spec's flows logs the same
#: way ("ERROR: client_name is required").
_INPUT_REFUSED = re.compile(
    r"(?:ERROR: )?(?:(?:client_name|environment_name|source_environment|skip_database)\b"
    r"|refusing to delete |source environment '[^']*' does not exist)")
#: The clone flow's task that checks its inputs (the spec's `validate-inputs`).
VALIDATE_TASK = "validate-inputs"


def staging_exit_code(action: str, execution: Execution, reason: str) -> int:
    """2 when the engine refused the input (its own guard decided: nothing is checked here
    beforehand), 1 for everything else: a name already taken, a provider error, a kill.

    For a clone, only a `validate-inputs` failure can be the input's fault; that task also
    checks state (the name is free, the source exists) through the provider, so the reason
    tells the two apart. For a delete, the engine's reason does.
    """
    refused = _INPUT_REFUSED.match(reason) is not None
    if action == "clone":
        failed = [t.task_id for t in execution.task_runs if t.state.current == "FAILED"]
        refused = refused and failed[:1] == [VALIDATE_TASK]
    return EXIT_USAGE if refused else EXIT_FAILED


def staging_error(message: str) -> None:
    print(f"flowdeck: {sanitize_line(message, 2000)}", file=sys.stderr, flush=True)


async def cmd_staging(args: argparse.Namespace, settings: Settings, p: Printer) -> int:
    """`staging list|clone|delete`: executions of the staging flows, through the embedded
    engine (installing the flows on first use) or `--url`/`--profile`'s server."""
    from flowdeck.client.staging import (
        LIST_TIMEOUT,
        StagingClient,
        StagingFailed,
        StagingUnavailable,
        environments_of,
    )

    async with open_backend(args, settings) as (backend, capabilities):
        await ensure_started(backend)  # every staging action runs an execution
        staging = StagingClient(backend, capabilities)
        started: Execution | None = None
        try:
            if args.action == "list":
                started = await staging.start_list(args.prefix)
                try:
                    final = await staging.settle(started.id, timeout=LIST_TIMEOUT)
                except TimeoutError:
                    staging_error(f"staging list: execution {started.id} did not finish within "
                                  f"{LIST_TIMEOUT:g} s")
                    return EXIT_FAILED
                await staging.outcome(final)
                found = sorted(environments_of(final), key=lambda e: (e.created_at or "", e.name),
                               reverse=True)
                if args.json:
                    p.json([dataclasses.asdict(e) for e in found])
                else:
                    p.table(["NAME", "CLIENT", "SOURCE", "URL", "STATUS", "CREATED"], [
                        [e.name, e.client_name or "-", e.source_environment or "-",
                         e.url or "-", e.status or "-", e.created_at or "-"] for e in found])
                return EXIT_OK
            if args.action == "clone":
                started = await staging.start_clone(
                    args.client_name, environment_name=args.environment_name,
                    source_environment=args.source_environment,
                    skip_database=args.skip_database)
                # In-process, the engine lives in this command: leaving now would strand the
                # run until the next start, so it always waits.
                wait = args.wait or capabilities.kind == "embedded"
                if not wait:
                    if args.json:  # the spec's webhook answer
                        p.json({"executionId": started.id, "state": started.state.current})
                    else:
                        p.line(f"execution {started.id} {started.state.current}")
                    return EXIT_OK
                if not args.json:
                    p.line(f"execution {started.id} {started.state.current}")
            else:
                started = await staging.start_delete(args.environment_name)
            final = await staging.settle(started.id)
            response = await staging.outcome(final)
        except StagingFailed as exc:
            code = staging_exit_code(args.action, exc.execution, exc.reason)
            if code == EXIT_USAGE:
                raise UsageError(f"staging {args.action}: {exc.reason} "
                                 f"(execution {exc.execution.id})") from None
            staging_error(f"staging {args.action} failed: {exc.reason} "
                          f"(execution {exc.execution.id})")
            return code
        except StagingUnavailable as exc:
            # 1, not 2: nothing the user typed is wrong; the server lacks the flows (its
            # operator installs them, or runs `flowdeck serve`, which does).
            staging_error(str(exc))
            return EXIT_FAILED
        if args.json:
            p.json({"executionId": final.id, "state": final.state.current,
                    "response": response})
        elif args.action == "clone":
            p.line(f"environment {response.get('environment_name')} is ready at "
                   f"{response.get('staging_url')}")
        else:
            p.line(f"environment {response.get('environment_name')} deleted")
        return EXIT_OK


async def run_client(args: argparse.Namespace, settings: Settings, p: Printer) -> int:
    """flow, run, executions, logs, approvals: on the engine in --data-dir or the server
    `--url`/`--profile` names. Input is checked first, so a typo never reaches the server
    (nor opens the engine)."""
    level = None
    if args.command == "logs":
        level = args.level.upper() if args.level else None
        if level is not None and level not in LEVEL_RANK:
            raise UsageError(f"--level {args.level}: not one of {', '.join(LEVEL_RANK)}")
    if args.command == "executions":
        for state in getattr(args, "state", None) or []:
            if not is_known(state.upper()):
                raise UsageError(f"--state {state.upper()}: not an execution state")
        if args.action == "list" and args.limit < 1:
            raise UsageError("--limit must be at least 1")
    if args.command == "run":
        parse_pairs(args.input, "input")
        parse_pairs(args.label, "label")
    if args.command == "approvals" and args.action != "list":
        decider(args)
    async with open_backend(args, settings) as (backend, capabilities):
        if args.command == "flow":
            return await client_flow(args, backend, p)
        if args.command == "run":
            return await client_run(args, backend, p)
        if args.command == "executions":
            return await client_executions(args, backend, p)
        if args.command == "logs":
            return await client_logs(args, backend, p, level)
        return await client_approvals(args, backend, p, capabilities)


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings, Printer], Awaitable[int]]] = {
    "flow": run_client, "run": run_client, "executions": run_client, "logs": run_client,
    "approvals": run_client, "staging": cmd_staging, "demo": cmd_demo, "serve": cmd_serve,
    "passwd": cmd_passwd, "token": cmd_token,
}


async def run_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run one command; SIGTERM (CI cancelling a job, `timeout`, `kill`) stops it like Ctrl-C:
    the engine closes cleanly, task subprocesses are stopped, unfinished runs stay recoverable."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    terminated = False

    def on_sigterm() -> None:
        nonlocal terminated
        if not terminated:  # a second one must not interrupt the clean close
            terminated = True
            task.cancel()

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    try:
        return await COMMANDS[args.command](args, settings, Printer())
    except asyncio.CancelledError:
        if terminated:
            return EXIT_TERMINATED
        raise
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGTERM)


def loop_factory(command: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """`serve` runs on uvloop where it is installed: about twice the requests per second."""
    if command != "serve":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config, data_dir=args.data_dir)
        if args.command is None:
            return run_deck(args, settings)
        with asyncio.Runner(loop_factory=loop_factory(args.command)) as runner:
            return runner.run(run_command(args, settings))
    except (FlowdeckError, ConfigError) as exc:
        print(f"flowdeck: {sanitize_line(str(exc), 2000)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`flowdeck ... | head`): stop quietly, and keep Python from
        # complaining again when it flushes stdout at exit.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
