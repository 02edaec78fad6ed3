"""`flowdeck serve`: the engine and the HTTP API in one process, on uvicorn.

Start-up order: decide auth (refusing a network host with no credentials at all, before
anything is bound or resumed), bind the socket (a busy port is a one-line error), let the
engine recover what a previous process left unfinished, then serve, and print
`flowdeck serving http://HOST:PORT` once connections are accepted (`--port 0` prints the port
the kernel picked).

SIGTERM or SIGINT stops it: no new connections, open event streams are ended, requests in
flight get up to `GRACEFUL_S` seconds, then the caller closes the engine, which leaves running
executions RUNNING for the next start to recover (never silently RUNNING forever). A second
signal stops waiting for requests in flight.

uvicorn is configured explicitly: no `Server` header, keep-alive 5 s, proxy headers off (a
spoofed `X-Forwarded-For` cannot dodge the per-IP guards), and the access log off unless asked
for; when on, webhook keys in paths are replaced by `***` before anything is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import uvicorn

from flowdeck.core.errors import FlowdeckError
from flowdeck.engine.engine import Engine
from flowdeck.engine.keys import TokenStore
from flowdeck.server.app import ServerOptions, create_app
from flowdeck.server.auth import is_loopback, redact

log = logging.getLogger("flowdeck.server")

KEEP_ALIVE_S = 5
GRACEFUL_S = 10


class ServeError(FlowdeckError):
    """The server cannot start as configured (exit 2 with the message)."""


@dataclass
class Stopper:
    """What the signal handlers tell the server: stop, then (a second signal) stop now."""

    requested: asyncio.Event = field(default_factory=asyncio.Event)
    forced: asyncio.Event = field(default_factory=asyncio.Event)
    signals: int = 0

    def signal(self) -> None:
        self.signals += 1
        if self.requested.is_set():
            self.forced.set()
        self.requested.set()


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Stopper]:
    """SIGTERM and SIGINT request a clean stop while the block runs (the engine's close
    included), instead of killing the process or raising KeyboardInterrupt mid-close."""
    loop = asyncio.get_running_loop()
    stopper = Stopper()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stopper.signal)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            continue
        installed.append(sig)
    try:
        yield stopper
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: ours stops it, then the engine closes."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class RedactWebhookKeys(logging.Filter):
    """For uvicorn's access log, whose third argument is the path with its query."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact(args[2]), *args[3:])
        return True


def url_for(host: str, port: int) -> str:
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    return f"http://{shown}:{port}"


async def resolve_auth(engine: Engine, options: ServerOptions) -> tuple[ServerOptions, str]:
    """Whether requests must authenticate, and a line saying how; refuse an open network API."""
    has_basic = bool(options.basic_username and options.basic_password_hash)
    tokens = await TokenStore(engine.store, engine.clock).count_active()
    loopback = is_loopback(options.host)
    if not loopback and not has_basic and not tokens:
        raise ServeError(
            f"refusing to serve the API on {options.host}, which is not a loopback address, "
            "without credentials: set [server] basic_username and basic_password_hash (make "
            "the hash with `flowdeck passwd`), or create an API token with `flowdeck token "
            "create --role ROLE`; or bind to 127.0.0.1")
    required = options.auth_required
    if required is None:
        required = has_basic or tokens > 0 or not loopback
    if not required:
        how = "auth: off (loopback, no credentials configured)"
    else:
        ways = []
        if has_basic:
            ways.append(f"HTTP Basic as {options.basic_username}")
        ways.append(f"API tokens ({tokens} active)")
        how = "auth: required — " + ", ".join(ways)
    return replace(options, auth_required=required), how


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on host:port (port 0: the kernel picks one)."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(f"cannot listen on {host}: {exc.strerror or exc}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {url_for(host, port)}: "
                         f"{exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


async def install_staging_flows(engine: Engine) -> str | None:
    """Apply the bundled dev.deployment staging flows (idempotent: unchanged ones stay put).

    Returns a line naming the variables still to set: until a key is set, its webhook accepts
    nothing.
    """
    from flowdeck.engine.staging import bundled_flow_sources, missing_staging_keys

    for source in bundled_flow_sources():
        await engine.apply_flow(source)
    missing = missing_staging_keys(engine.envs)
    if not missing:
        return None
    return ("staging webhooks refuse every call until these are set: " + ", ".join(missing))


async def serve_engine(engine: Engine, options: ServerOptions, stopper: Stopper, *,
                       announce: Callable[[str], None], access_log: bool = False) -> int:
    """Serve `engine` (opened, not yet started) until `stopper` says stop; returns 0.

    The caller owns the engine and closes it afterwards.
    """
    options, how = await resolve_auth(engine, options)
    sock = bind(options.host, options.port)
    try:
        port = sock.getsockname()[1]
        options = replace(options, port=port)
        await engine.start()  # recovery, then the scheduler
        staging_note = await install_staging_flows(engine)
        app = create_app(engine, options)
        log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
        log_config["handlers"]["access"]["stream"] = "ext://sys.stderr"  # stdout: the URL
        config = uvicorn.Config(
            app, host=options.host, port=port, lifespan="off", log_level="warning",
            log_config=log_config,
            access_log=access_log, server_header=False, date_header=True,
            proxy_headers=False, timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=GRACEFUL_S, ws="none")
        config.load()
        if access_log:
            access = logging.getLogger("uvicorn.access")
            access.setLevel(logging.INFO)  # its lines are INFO; the rest of uvicorn warns
            if not any(isinstance(f, RedactWebhookKeys) for f in access.filters):
                access.addFilter(RedactWebhookKeys())
        server = _Server(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]), name="flowdeck-http")
        stop = asyncio.create_task(stopper.requested.wait())
        forced = asyncio.create_task(stopper.forced.wait())
        try:
            while not server.started and not serving.done() and not stop.done():
                await asyncio.sleep(0.01)
            if server.started:
                announce(f"flowdeck serving {url_for(options.host, port)}")
                announce(how)
                if staging_note:
                    announce(staging_note)
            await asyncio.wait({serving, stop}, return_when=asyncio.FIRST_COMPLETED)
            app.state.auth.shutdown.set()  # open event streams end now
            server.should_exit = True
            await asyncio.wait({serving, forced}, return_when=asyncio.FIRST_COMPLETED)
            if not serving.done():
                server.force_exit = True
            await _result(serving)
            left = len(engine.runners)
            if left:
                announce(f"flowdeck stopping: {left} unfinished execution(s) continue when it "
                         "starts again")
        finally:
            for task in (stop, forced, serving):
                task.cancel()
            await asyncio.gather(stop, forced, serving, return_exceptions=True)
    finally:
        sock.close()
    return 0


async def _result(task: asyncio.Task[Any]) -> None:
    try:
        await task
    except SystemExit as exc:  # uvicorn exits when it cannot start
        raise ServeError(f"the HTTP server could not start (exit {exc.code})") from None
