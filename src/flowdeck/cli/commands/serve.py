"""`flowdeck serve`: the engine and its HTTP API in one process, until SIGTERM or Ctrl-C."""

from __future__ import annotations

from typing import Any

from flowdeck.cli import endpoint
from flowdeck.cli.common import Context, UsageError
from flowdeck.cli.engine import open_engine
from flowdeck.cli.options import Commands
from flowdeck.config import Settings

#: How `serve_engine` announces its URL.
SERVING = "flowdeck serving "


def server_extra(settings: Settings) -> dict[str, Any]:
    """The dialects' settings from the configuration (`ServerOptions.extra`)."""
    return {"flowctl_rate_limit": settings.flowctl.rate_limit_per_minute}


def register(commands: Commands) -> None:
    serve = commands.command(
        "serve", "serve the engine over HTTP (Kestra's API) until SIGTERM/Ctrl-C", serve_api,
        remote=False)
    serve.add_argument("--host", help="address to bind (default: [server] host, 127.0.0.1); "
                       "anything but loopback needs credentials")
    serve.add_argument("--port", type=int, help="port (default: [server] port, 8080; "
                       "0 picks a free one)")
    serve.add_argument("--access-log", action="store_true",
                       help="log every request to stderr (webhook keys redacted)")
    serve.set_defaults(uvloop=True)  # about twice the requests per second


async def serve_api(ctx: Context) -> int:
    from flowdeck.server.app import ServerOptions
    from flowdeck.server.serve import serve_engine, stop_on_signals

    args, config = ctx.args, ctx.settings.server
    host = args.host if args.host is not None else config.host
    port = args.port if args.port is not None else config.port
    if not host.strip():
        raise UsageError("--host must not be empty")
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port}: must be between 0 and 65535")
    options = ServerOptions(host=host, port=port, basic_username=config.basic_username,
                            basic_password_hash=config.basic_password_hash,
                            extra=server_extra(ctx.settings),
                            trusted_proxies=tuple(config.trusted_proxies))
    data_dir = ctx.settings.resolved_data_dir()

    def announce(line: str) -> None:
        ctx.out.line(line)
        if line.startswith(SERVING):  # so a command refused on this data dir can name it
            endpoint.record(data_dir, line.removeprefix(SERVING).strip())

    with stop_on_signals() as stopper:
        async with open_engine(ctx.settings, start=False, scheduler=True) as engine:
            try:
                return await serve_engine(engine, options, stopper, announce=announce,
                                          access_log=args.access_log)
            finally:
                endpoint.clear(data_dir)
