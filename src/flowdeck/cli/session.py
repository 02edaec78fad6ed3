"""The backend a command runs on: the engine in the data dir, or the server `--url` or
`--profile` names, opened for reading or for a change.

The embedded engine is opened the way the command needs it:

- to read (`Access.READ`): read-only, without the data dir's lock, so it works while a deck or
  `flowdeck serve` holds the data dir (SQLite's WAL lets readers in beside the writer); it
  never starts, so reading never resumes what a stopped process left unfinished;
- to change (`Access.CHANGE`): with the lock, not started until `Session.before_change()`
  (after the command has checked its input); a data dir another engine holds is a one-line
  error saying how to reach that engine instead (its HTTP API, then `--url`).
"""

from __future__ import annotations

import dataclasses
import enum
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowdeck.cli.common import Context, UsageError
from flowdeck.client.backend import Backend, Capabilities
from flowdeck.client.local import LocalEngine
from flowdeck.config import ConfigError, Settings
from flowdeck.core.errors import EngineLockedError, ValidationError
from flowdeck.engine.engine import EngineSettings
from flowdeck.engine.isolation import TaskSettings
from flowdeck.engine.store import ReadOnlyStoreError

if TYPE_CHECKING:
    from flowdeck.client.embedded import EmbeddedBackend
    from flowdeck.client.http import HttpBackend

#: How long, after an in-process execution ended, its runner may take to let go (its last
#: log lines commit then).
RUNNER_WAIT = 10.0

class Access(enum.Enum):
    """What a command does with the data it reaches."""

    READ = "read"
    CHANGE = "change"


@dataclass(slots=True)
class Session:
    """A connected backend, and the in-process engine behind it if there is one."""

    backend: Backend
    capabilities: Capabilities
    local: LocalEngine | None

    @property
    def where(self) -> str:
        """Where runs go on, for messages: the server's URL or the data dir."""
        return self.backend.name if self.local is None else str(self.local.data_dir)

    async def before_change(self) -> None:
        """An in-process engine starts now: it resumes what an earlier process left
        unfinished, and a run it starts or resumes has its runner here. A server runs."""
        if self.local is not None and not self.local.started:
            await self.local.start()

    async def released(self, execution_id: str) -> None:
        """For an in-process engine: wait until the ended execution's runner has let go."""
        if self.local is not None:
            await self.local.wait_released(execution_id, RUNNER_WAIT)


def engine_settings(settings: Settings, *, scheduler: bool) -> EngineSettings:
    # Each section's `engine_extra()` reads the secrets its *_env / token_file keys name;
    # a ValueError names the key, under the prefix shown here.
    sections: dict[str, tuple[str, Any]] = {
        "staging": ("staging.railway.", settings.staging),
        "webhooks": ("webhooks.", settings.webhooks),
        "public": ("public.", settings.public),
        "forge": ("forge.", settings.forge),
        "flowctl": ("flowctl.", settings.flowctl)}
    extra: dict[str, Any] = {}
    for name, (prefix, section) in sections.items():
        try:
            extra[name] = section.engine_extra()
        except ValueError as exc:
            raise ConfigError(f"{settings.source}: {prefix}{exc}") from None
    return EngineSettings(
        data_dir=settings.resolved_data_dir(),
        max_concurrent_executions=settings.engine.max_concurrent_executions,
        readers=settings.engine.reader_connections,
        scheduler=scheduler and settings.engine.scheduler,
        tasks=TaskSettings(env_passthrough=tuple(settings.tasks.env_passthrough),
                           public_envs=tuple(settings.tasks.public_envs),
                           run_as=settings.tasks.run_as),
        extra=extra)


def held_message(exc: EngineLockedError, data_dir: Path) -> str:
    """The lock's message, and how to reach the engine that holds the data dir: the URL it
    serves its API at if it says, else how to have it served."""
    from flowdeck.cli.endpoint import served_at

    url = served_at(data_dir)
    if url is not None:
        return f"{exc}. It serves its HTTP API at {url}: add --url {url} to this command"
    return (f"{exc}. To change anything while it runs, go through its HTTP API: `flowdeck "
            "serve` serves it, and so does a deck opened with `flowdeck --serve "
            "127.0.0.1:8080`; then add --url http://127.0.0.1:8080 to this command")


def choose(ctx: Context) -> HttpBackend | EngineSettings:
    """The server's `HttpBackend`, or the embedded engine's settings (the CLI never runs
    the scheduler: a command is not the place for cron). Credentials come from the
    profile, else from FLOWDECK_TOKEN or FLOWDECK_USERNAME/FLOWDECK_PASSWORD; never a flag."""
    from flowdeck.client.factory import resolve_backend

    args, settings = ctx.args, ctx.settings
    url = getattr(args, "url", None)
    profile_name = getattr(args, "profile", None)
    if not url and not profile_name:
        return engine_settings(settings, scheduler=False)
    env = os.environ
    token = env.get("FLOWDECK_TOKEN") or None
    username = env.get("FLOWDECK_USERNAME") or None
    password = env.get("FLOWDECK_PASSWORD")
    credentials: dict[str, Any] = {}
    if token is not None or username is not None:
        credentials = {"token": token, "username": username,
                       "password": password if username is not None else None}
    if not profile_name:
        try:  # `--url embedded` names the engine in the data dir
            return resolve_backend(url, engine_settings=engine_settings(settings, scheduler=False),
                                   **credentials)
        except ValidationError as exc:
            raise UsageError(f"--url {url}: {exc}") from None
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
        choice = resolve_backend(url, profile=options,
                                 engine_settings=engine_settings(settings, scheduler=True),
                                 key_prefix=f"profiles.{profile_name}.", **credentials)
    except ValidationError as exc:
        raise UsageError(f"{settings.source}: {exc}") from None
    if isinstance(choice, EngineSettings):  # an embedded profile: as --data-dir is
        return dataclasses.replace(choice, scheduler=False)
    return choice


async def execution_id(session: Session, text: str) -> str:
    """The execution `text` names: a whole id, or a unique fragment (the deck's short id).
    A server whose search does not match ids (a Kestra) is scanned, boundedly."""
    from flowdeck.client.resolve import resolve_execution_id

    return await resolve_execution_id(session.backend, text,
                                      scan=session.capabilities.kind == "kestra")


def embedded(ctx: Context) -> bool:
    """Whether the command runs on the engine in this process (not on a server)."""
    return isinstance(choose(ctx), EngineSettings)


@asynccontextmanager
async def open_session(ctx: Context, access: Access) -> AsyncIterator[Session]:
    """Connect the command's backend (see the module docstring) and close it at the end,
    cleanly even after Ctrl-C or SIGTERM."""
    choice = choose(ctx)
    backend: Backend
    local: EmbeddedBackend | None = None
    if isinstance(choice, EngineSettings):
        capabilities, local = await _open_embedded(choice, access)
        backend = local
    else:
        backend = choice
        try:
            capabilities = await backend.connect()
        except BaseException:
            await backend.close()
            raise
    try:
        yield Session(backend, capabilities, local)
    finally:
        with ctx.interrupts.deferred():
            await backend.close()


async def _open_embedded(settings: EngineSettings, access: Access
                         ) -> tuple[Capabilities, EmbeddedBackend]:
    from flowdeck.client.embedded import EmbeddedBackend

    database = settings.data_dir / "flowdeck.db"
    if access is Access.READ and _is_file(database):
        backend = EmbeddedBackend(settings, read_only=True)
        try:
            return await _connect(backend, settings.data_dir), backend
        except ReadOnlyStoreError:
            pass  # an older schema: an engine of this version opens (and migrates) it below
    backend = EmbeddedBackend(settings, start=False)
    try:
        return await _connect(backend, settings.data_dir), backend
    except EngineLockedError as exc:
        raise UsageError(held_message(exc, settings.data_dir)) from None


async def _connect(backend: EmbeddedBackend, data_dir: Path) -> Capabilities:
    """Connect (a failed connect leaves nothing open); storage problems as one line."""
    try:
        return await backend.connect()
    except OSError as exc:
        raise UsageError(f"data dir {data_dir} cannot be used: "
                         f"{exc.strerror or exc}") from None
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"{data_dir / 'flowdeck.db'}: {exc}") from None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False
