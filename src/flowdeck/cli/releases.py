"""What the `release`, `deploy` and `pipeline` commands share: reaching the releases (the
engine in the data dir, the `--url` server, or a profile's own Forge), who acts, naming a
release on the command line, and the exit codes of what the forge refuses.

A release is named `OWNER/NAME/PROJECT/REF`, REF being its number, tag, commit SHA (or a
unique prefix of 7+ digits) or id; `OWNER/NAME/PROJECT` alone is the project's newest release.

Exit codes: 0 done; 2 the input was refused (a bad value, an unknown release, the production
gate's refusal: the message says why); 1 anything else (a conflict such as a release that
exists already, a server without releases or without an extension, a run that failed).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowdeck.cli.common import EXIT_FAILED, Context, UsageError, error
from flowdeck.cli.session import Access, Session, open_session
from flowdeck.client.releases import (
    FeatureMissing,
    ForgeEndpoint,
    Releases,
    ReleasesUnavailable,
    releases_at,
    releases_for,
)
from flowdeck.config import Settings
from flowdeck.core.errors import BackendUnavailable, ConflictError
from flowdeck.core.forge import Deployment, PipelineRun, Release, ReleaseApproval

RELEASE_HELP = ("OWNER/NAME/PROJECT/REF: REF is the release's number, tag, commit SHA or id "
                "(left out: the newest release)")


@dataclass(frozen=True, slots=True)
class ReleaseRef:
    repository: str
    project: str
    ref: str | None

    @property
    def project_path(self) -> str:
        return f"{self.repository}/{self.project}"


def parse_release(text: str, *, ref: bool = True) -> ReleaseRef:
    """`acme/shop/api/42` (or `acme/shop/api`: the newest); UsageError otherwise."""
    parts = text.strip().split("/")
    wanted = "OWNER/NAME/PROJECT/REF" if ref else "OWNER/NAME/PROJECT"
    if len(parts) not in ((3, 4) if ref else (3,)) or not all(parts):
        raise UsageError(f"'{text}' does not name a {'release' if ref else 'project'}: "
                         f"write {wanted}, e.g. acme/shop/api{'/42' if ref else ''}")
    return ReleaseRef(f"{parts[0]}/{parts[1]}", parts[2], parts[3] if len(parts) == 4 else None)


def forge_endpoint(ctx: Context) -> ForgeEndpoint | None:
    """`[profiles.NAME.forge]` of the `--profile` given."""
    name = getattr(ctx.args, "profile", None)
    return profile_forge(ctx.settings, name) if name else None


def profile_forge(settings: Settings, name: str) -> ForgeEndpoint | None:
    """`[profiles.NAME.forge]`, its token read from the environment variable or file it
    names (UsageError naming the key when it cannot be)."""
    profile = settings.profiles.get(name)
    if profile is None or profile.forge is None:
        return None
    forge = profile.forge
    key = f"{settings.source}: profiles.{name}.forge"
    token = None
    if forge.token_env:
        token = os.environ.get(forge.token_env)
        if not token:
            raise UsageError(f"{key}.token_env: environment variable {forge.token_env} "
                             "is not set")
    elif forge.token_file:
        path = Path(forge.token_file).expanduser()
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{key}.token_file: cannot read {path}: {exc}") from None
    return ForgeEndpoint(forge.url, token=token, timeout=forge.timeout or 10.0,
                         projects=tuple(forge.projects),
                         environments=tuple(forge.environments),
                         approval_environments=tuple(forge.approval_environments))


def acting_user(ctx: Context, remote: bool) -> str:
    """Who the engine in the data dir records: `--by`, else the login name. A server
    records the token's name, so `--by` is refused there."""
    by = getattr(ctx.args, "by", None)
    if remote:
        if by is not None:
            raise UsageError("--by is for the engine in the data dir; a server records the "
                             "name of the token you call it with")
        return ""
    if by is not None:
        if not str(by).strip():
            raise UsageError("--by must not be empty")
        return str(by)
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise UsageError("cannot tell who you are; pass --by NAME") from None


@dataclass
class Forge:
    """The releases a command works on, and the session behind them (None: a profile's
    own Forge server, reached directly)."""

    releases: Releases
    session: Session | None

    async def before_change(self) -> None:
        if self.session is not None:
            await self.session.before_change()

    @property
    def local(self) -> bool:
        return self.session is not None and self.session.local is not None


@asynccontextmanager
async def open_forge(ctx: Context, access: Access) -> AsyncIterator[Forge]:
    endpoint = forge_endpoint(ctx)
    if endpoint is not None:
        acting_user(ctx, remote=True)
        client = releases_at(endpoint)
        try:
            yield Forge(client, None)
        finally:
            await client.close()
        return
    async with open_session(ctx, access) as session:
        user = acting_user(ctx, remote=session.local is None)
        client = releases_for(session.backend, session.capabilities, user=user)
        try:
            yield Forge(client, session)
        finally:
            await client.close()


async def guarded(work: Callable[[], Awaitable[int]]) -> int:
    """Run a command's work; what is not the input's fault exits 1 with one line."""
    try:
        return await work()
    except (ConflictError, BackendUnavailable, FeatureMissing, ReleasesUnavailable) as exc:
        error(str(exc))
        return EXIT_FAILED


async def find_release(forge: Forge, ref: ReleaseRef) -> Release:
    if ref.ref is not None:
        return await forge.releases.release(ref.repository, ref.project, ref.ref)
    page = await forge.releases.releases(ref.repository, ref.project, limit=1)
    if not page.items:
        from flowdeck.core.errors import NotFoundError

        raise NotFoundError(f"{ref.project_path} has no release yet")
    return page.items[0]


# -- JSON documents ------------------------------------------------------------------------


def release_json(release: Release) -> dict[str, Any]:
    return {**release.to_dict(), "tag": release.tag, "canonical_id": release.canonical_id,
            "pipeline_run_id": release.pipeline_run_id}


def approval_json(approval: ReleaseApproval) -> dict[str, Any]:
    return {**approval.to_dict(), "release_id": approval.release_id,
            "environment": approval.environment, "revoked_by": approval.revoked_by,
            "revoked_at": approval.revoked_at, "used_by_deployment": approval.used_by_deployment}


def deployment_json(deployment: Deployment) -> dict[str, Any]:
    return deployment.to_dict()


def run_json(run: PipelineRun) -> dict[str, Any]:
    return run.to_dict()

