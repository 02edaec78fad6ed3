"""`flowdeck serve`: the engine and the HTTP API in one process, on uvicorn.

Start-up order: decide auth (refusing a network host with no credentials at all, before
anything is bound or resumed), bind the socket (a busy port is a one-line error), let the
engine recover what a previous process left unfinished, run the dialects' start-up hooks (the
staging dialect installs its bundled flows), then serve, and print `flowdeck serving
http://HOST:PORT` once connections are accepted (`--port 0` prints the port the kernel
picked).

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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import uvicorn

from flowdeck.core.errors import FlowdeckError
from flowdeck.engine.engine import Engine
from flowdeck.engine.keys import TokenStore
from flowdeck.server.app import ServerOptions, create_app
from flowdeck.server.auth import is_loopback, redact
from flowdeck.server.dialect import Dialect

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


def parse_listen(spec: str) -> tuple[str, int]:
    """`HOST:PORT`, `[V6]:PORT` or a bare `PORT` (on 127.0.0.1) -> (host, port)."""
    text = spec.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "127.0.0.1", text
    host = host.strip()
    if host.startswith("[") != host.endswith("]") or (":" in host and not host.startswith("[")):
        raise ServeError(f"--serve {spec!r}: write an IPv6 address as [ADDRESS]:PORT")
    if not host:
        raise ServeError(f"--serve {spec!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ServeError(f"--serve {spec!r}: the port must be a number from 0 to 65535")
    return host.strip("[]"), int(port_text)


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


def served_dialects(dialects: Sequence[Dialect] | None) -> Sequence[Dialect]:
    if dialects is not None:
        return dialects
    from flowdeck.server.dialects import DEFAULT_DIALECTS

    return DEFAULT_DIALECTS


async def start_dialects(engine: Engine, dialects: Sequence[Dialect]) -> list[str]:
    """Run each dialect's start-up hook (e.g. installing bundled flows); the lines to print."""
    notes = []
    for dialect in dialects:
        if dialect.on_startup is not None:
            note = await dialect.on_startup(engine)
            if note:
                notes.append(note)
    return notes


@dataclass
class HttpService:
    """The HTTP API running on the current loop over an engine; `stop()` ends it."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    url: str
    auth_line: str
    app: Any

    async def stop(self, forced: asyncio.Event | None = None) -> None:
        """No new connections, open event streams end, requests in flight get `GRACEFUL_S`
        (or until `forced` is set), then the server is gone."""
        self.app.state.auth.shutdown.set()
        self.server.should_exit = True
        waiters: set[asyncio.Future[Any]] = {self.task}
        force = asyncio.ensure_future(forced.wait()) if forced is not None else None
        if force is not None:
            waiters.add(force)
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if not self.task.done():
                self.server.force_exit = True
            await _result(self.task)
        finally:
            if force is not None:
                force.cancel()


def server_config(app: Any, options: ServerOptions, *, access_log: bool,
                  log_config: dict[str, Any] | None = None) -> uvicorn.Config:
    if log_config is None:
        log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
        log_config["handlers"]["access"]["stream"] = "ext://sys.stderr"  # stdout: the URL
    config = uvicorn.Config(
        app, host=options.host, port=options.port, lifespan="off", log_level="warning",
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
    return config


async def launch(engine: Engine, options: ServerOptions, sock: socket.socket, auth_line: str,
                 *, access_log: bool = False, log_config: dict[str, Any] | None = None,
                 stop: asyncio.Event | None = None,
                 dialects: Sequence[Dialect] | None = None) -> HttpService | None:
    """Serve on `sock` (already bound) from this loop; answers once connections are
    accepted, or None when `stop` was set first. Raises ServeError if uvicorn cannot start."""
    app = create_app(engine, options, served_dialects(dialects))
    server = _Server(server_config(app, options, access_log=access_log,
                                   log_config=log_config))
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="flowdeck-http")
    service = HttpService(server, serving, url_for(options.host, options.port), auth_line, app)
    while not server.started and not serving.done():
        if stop is not None and stop.is_set():
            await service.stop()
            return None
        await asyncio.sleep(0.01)
    if not server.started:
        await _result(serving)
        raise ServeError("the HTTP server stopped while starting")
    return service


async def serve_alongside(engine: Engine, options: ServerOptions, sock: socket.socket, *,
                          log_file: str | None = None,
                          dialects: Sequence[Dialect] | None = None) -> HttpService:
    """The HTTP API next to a running engine (the deck's `--serve`): checks auth as `flowdeck
    serve` does, runs the dialects' start-up hooks, serves on `sock` until `stop()`. uvicorn's
    own messages go to `log_file` (the terminal belongs to the deck)."""
    options, how = await resolve_auth(engine, options)
    options = replace(options, port=sock.getsockname()[1])
    dialects = served_dialects(dialects)
    await start_dialects(engine, dialects)
    log_config = _file_log_config(log_file)
    service = await launch(engine, options, sock, how, log_config=log_config,
                           dialects=dialects)
    assert service is not None  # no stop event: it runs or raises
    return service


def _file_log_config(path: str | None) -> dict[str, Any]:
    handler: dict[str, Any] = (
        {"class": "logging.FileHandler", "filename": path, "encoding": "utf-8",
         "formatter": "default"} if path else {"class": "logging.NullHandler"})
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"default": {"format": "%(asctime)s %(levelname)s %(message)s"}},
            "handlers": {"default": handler},
            "loggers": {"uvicorn": {"handlers": ["default"], "level": "WARNING",
                                    "propagate": False},
                        "uvicorn.error": {"level": "WARNING"},
                        "uvicorn.access": {"handlers": ["default"], "level": "WARNING",
                                           "propagate": False}}}


async def serve_engine(engine: Engine, options: ServerOptions, stopper: Stopper, *,
                       announce: Callable[[str], None], access_log: bool = False,
                       dialects: Sequence[Dialect] | None = None) -> int:
    """Serve `engine` (opened, not yet started) until `stopper` says stop; returns 0.

    The caller owns the engine and closes it afterwards.
    """
    options, how = await resolve_auth(engine, options)
    dialects = served_dialects(dialects)
    sock = bind(options.host, options.port)
    try:
        options = replace(options, port=sock.getsockname()[1])
        await engine.start()  # recovery, then the scheduler
        notes = await start_dialects(engine, dialects)
        service = await launch(engine, options, sock, how, access_log=access_log,
                               stop=stopper.requested, dialects=dialects)
        if service is None:
            return 0
        announce(f"flowdeck serving {service.url}")
        announce(how)
        for note in notes:
            announce(note)
        stop = asyncio.create_task(stopper.requested.wait())
        try:
            await asyncio.wait({service.task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        await service.stop(stopper.forced)
        left = len(engine.running_ids())
        if left:
            announce(f"flowdeck stopping: {left} unfinished execution(s) continue when it "
                     "starts again")
    finally:
        sock.close()
    return 0


async def _result(task: asyncio.Task[Any]) -> None:
    try:
        await task
    except SystemExit as exc:  # uvicorn exits when it cannot start
        raise ServeError(f"the HTTP server could not start (exit {exc.code})") from None
