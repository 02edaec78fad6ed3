"""`flowdeck` with no command: the deck (the TUI), on the embedded engine unless `--url` or
`--profile` names another backend; `--serve` also serves the HTTP API from its engine."""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from flowdeck.cli import endpoint
from flowdeck.cli.common import EXIT_OK, UsageError
from flowdeck.cli.releases import profile_forge
from flowdeck.cli.session import engine_settings
from flowdeck.client.backend import Backend
from flowdeck.config import Settings
from flowdeck.core.errors import BackendUnavailable, FlowdeckError, ValidationError
from flowdeck.engine.engine import Engine

if TYPE_CHECKING:
    from flowdeck.client.embedded import EmbeddedBackend
    from flowdeck.client.releases import ForgeEndpoint
    from flowdeck.server.app import ServerOptions
    from flowdeck.server.serve import HttpService
    from flowdeck.tui.app import FlowdeckApp


def profile_backend(settings: Settings, name: str, *, url: str | None = None) -> Backend:
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
    app, serving = build_deck(args, settings)
    try:
        app.run()
    finally:
        if serving is not None:
            serving.sock.close()
    return EXIT_OK


def build_deck(args: argparse.Namespace, settings: Settings
               ) -> tuple[FlowdeckApp, DeckServing | None]:
    """The deck app for these flags (not running yet), and its `--serve` socket if asked."""
    from flowdeck.client.embedded import EmbeddedBackend
    from flowdeck.client.http import HttpBackend
    from flowdeck.tui.app import FlowdeckApp

    tui = settings.tui
    read_only, theme = tui.read_only, tui.theme
    if args.serve and (args.url or args.profile):
        raise UsageError("--serve serves the embedded engine; it cannot be combined with "
                         "--url or --profile")
    backend: Backend
    embedded: EmbeddedBackend | None = None
    if args.profile:
        backend = profile_backend(settings, args.profile, url=args.url)
        chosen = settings.profiles[args.profile]
        read_only = chosen.read_only if chosen.read_only is not None else read_only
        theme = chosen.theme or theme
    elif args.url:
        backend = HttpBackend(args.url, token=os.environ.get("FLOWDECK_TOKEN") or None)
    else:
        backend = embedded = EmbeddedBackend(engine_settings(settings, scheduler=True))

    def open_profile(name: str) -> Backend:
        return profile_backend(settings, name)

    def forge_for_profile(name: str) -> ForgeEndpoint | None:
        try:
            return profile_forge(settings, name)
        except UsageError as exc:  # e.g. its token variable is unset: releases say so
            raise ValidationError([(f"profiles.{name}.forge", str(exc))]) from None

    serving = DeckServing.bind(args.serve, settings) if args.serve else None

    async def startup(backend: Backend) -> None:
        if args.demo:
            await seed_demo(backend)
        if serving is not None and embedded is not None:
            await serving.start(embedded, app)

    async def before_close(backend: Backend) -> None:
        if serving is not None and embedded is not None:
            await serving.stop(embedded)

    app = FlowdeckApp(
        backend, read_only=bool(args.read_only) or read_only, theme=theme,
        refresh_seconds=tui.refresh, bell=tui.bell, keymap=dict(tui.keys),
        max_log_lines=tui.max_log_lines,
        startup=startup if args.demo or serving is not None else None,
        close_backend=True, profile=args.profile, open_profile=open_profile,
        profile_names=sorted(settings.profiles), confirm=settings.deck.confirm,
        before_close=before_close if serving is not None else None,
        forge=profile_forge(settings, args.profile) if args.profile else None,
        forge_for_profile=forge_for_profile)
    return app, serving


class DeckServing:
    """`flowdeck --serve HOST:PORT`: the HTTP API on the deck's embedded engine.

    The socket is bound before the deck takes the terminal, so a busy port is a one-line
    error (exit 2); the server then runs on the engine's own loop once the engine is up, and
    stops before the deck closes the engine. uvicorn's messages go to `serve.log` in the data
    directory, since the terminal is the deck's.
    """

    def __init__(self, sock: socket.socket, options: ServerOptions, log_file: Path) -> None:
        self.sock = sock
        self.options = options
        self.log_file = log_file
        self.service: HttpService | None = None

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

    async def start(self, backend: EmbeddedBackend, app: FlowdeckApp) -> None:
        from flowdeck.server.serve import serve_alongside

        async def run(engine: Engine) -> HttpService:
            return await serve_alongside(engine, self.options, self.sock,
                                         log_file=str(self.log_file))

        try:
            service = self.service = await backend.engine_call(run)
        except FlowdeckError as exc:
            app.toast(f"not serving the HTTP API: {exc}", severity="error")
            return
        endpoint.record(backend.data_dir, service.url)
        app.serving_url = service.url
        app.toast(f"serving the HTTP API at {service.url} — {service.auth_line}")

    async def stop(self, backend: EmbeddedBackend) -> None:
        service, self.service = self.service, None
        if service is None:
            return
        endpoint.clear(backend.data_dir)

        async def run(engine: Engine) -> None:
            await service.stop()

        # The engine may be gone already (the deck switched to another profile): the server
        # ran on its loop and stopped with it.
        with contextlib.suppress(BackendUnavailable):
            await backend.engine_call(run)


async def seed_demo(backend: Backend) -> None:
    """Live activity for `make run`: the examples, the scheduled report and an approval,
    and the releases screen's data (the example pipeline, a run, a release in dev)."""
    from flowdeck.cli.commands.demo import example_sources

    for source in example_sources():
        await backend.apply_flow(source)
    await backend.create_execution("flowdeck.demo", "nightly-report")
    await backend.create_execution("flowdeck.demo", "release-approval")
    await seed_demo_release(backend)


#: The demo release's commit (the same every time, so `make run` makes it once).
DEMO_SHA = "5eed0de7c0ffee00"


async def seed_demo_release(backend: Backend) -> None:
    """The example pipeline of `example/shop`, a run of it and, once, release 1 of
    `example/shop/api` from that run, deployed to dev."""
    from flowdeck.client.releases import releases_for
    from flowdeck.core.errors import NotFoundError
    from flowdeck.core.forge import EXAMPLE_REPOSITORY, example_pipeline_sources

    for source in example_pipeline_sources():
        await backend.apply_flow(source)
    releases = releases_for(backend, await backend.connect(), user="demo")
    try:
        try:
            await releases.release(EXAMPLE_REPOSITORY, "api", DEMO_SHA)
            return
        except NotFoundError:
            pass
        run = await releases.create_run(EXAMPLE_REPOSITORY, "main", DEMO_SHA,
                                        trigger_type="push")
        release = await releases.create_release(
            EXAMPLE_REPOSITORY, "api", DEMO_SHA,
            [{"name": "api", "type": "container",
              "tracking_oci_uri": f"registry.example.com/example/shop/api:{DEMO_SHA[:7]}"}],
            pipeline_run_id=run.id, tag="v0.1.0")
        await releases.deploy(release.id, "dev")
    finally:
        await releases.close()
