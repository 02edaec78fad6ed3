"""Releases, deployments, release approvals and pipeline runs through the client layer.

The deck's `:rel` screen and the `release`, `deploy` and `pipeline` commands use one interface,
`Releases`, with two implementations:

- `EmbeddedReleases`: the engine in this process (`engine.forge`, on the engine's own loop);
  what the caller does is recorded under the name it gives (the deck's user, `--by`);
- `HttpReleases` (`client/forge_http.py`): any server of the forge API (spec 002) over its
  documented routes with a Bearer token, `flowdeck serve` or another Forge; the server records
  who the token is. flowdeck's extensions (the projects overview, the event log, revoking,
  deploy requests) are used where the server has them; without them the client says so
  (`FeatureMissing`) and the callers degrade (projects from the profile's list, polling
  instead of events, no revoke).

`releases_for(...)` picks one from the connected backend, or from a profile's own Forge URL
(`ForgeEndpoint`); a backend without releases (a real Kestra) is `ReleasesUnavailable`, which
the screen shows as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from flowdeck.client.backend import Backend, Capabilities
from flowdeck.core.errors import FlowdeckError
from flowdeck.core.forge import (
    DEFAULT_ENVIRONMENTS,
    Deployment,
    DeployRequest,
    Page,
    PipelineRun,
    ProjectSummary,
    Release,
    ReleaseApproval,
)

#: Seconds an embedded event wait lasts before it returns empty (and is asked again).
EVENT_WAIT = 15.0


class ReleasesUnavailable(FlowdeckError):
    """The backend has no releases (a Kestra server) and no Forge URL is configured."""


class FeatureMissing(FlowdeckError):
    """The server does not offer one of flowdeck's extensions to the forge API."""


@dataclass(frozen=True, slots=True)
class ForgeEndpoint:
    """A Forge server of its own (`[profiles.NAME.forge]`): URL, Bearer token and what a
    server without flowdeck's projects overview cannot say itself."""

    url: str
    token: str | None = None
    timeout: float = 10.0
    #: `owner/name/project` entries the deck lists when the server has no projects overview.
    projects: tuple[str, ...] = ()
    environments: tuple[str, ...] = DEFAULT_ENVIRONMENTS
    approval_environments: tuple[str, ...] = ("production",)


@dataclass(frozen=True, slots=True)
class Overview:
    """Every project, and the environments the server deploys to."""

    projects: tuple[ProjectSummary, ...]
    environments: tuple[str, ...] = DEFAULT_ENVIRONMENTS
    approval_environments: tuple[str, ...] = ("production",)


@dataclass(frozen=True, slots=True)
class ForgeEvent:
    """One event of the forge's log: the document's schema and its sequence number."""

    seq: int
    event_type: str
    timestamp: str
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ForgeEvent:
        data = d.get("data")
        return cls(seq=int(d["seq"]), event_type=str(d.get("event_type") or ""),
                   timestamp=str(d.get("timestamp") or ""),
                   data=dict(data) if isinstance(data, dict) else {})


class Releases(Protocol):
    """What the deck and the CLI do with releases; every method may raise a FlowdeckError
    (NotFoundError, ConflictError, ValidationError, PermissionDenied for the production gate,
    BackendUnavailable, FeatureMissing for an extension the server lacks)."""

    @property
    def name(self) -> str:
        """Where the releases are: "embedded" or the server's URL."""
        ...

    @property
    def identity(self) -> str | None:
        """Who the releases backend records as the caller (None: not known)."""
        ...

    @property
    def role(self) -> str | None:
        """The caller's role where the releases come from a server of their own (a
        profile's Forge that says so); None: the deck's own role applies."""
        ...

    async def close(self) -> None: ...

    async def overview(self) -> Overview: ...

    async def releases(self, repository: str, project: str, limit: int = 20,
                       offset: int = 0) -> Page[Release]: ...

    async def release(self, repository: str, project: str, ref: str) -> Release: ...

    async def create_release(self, repository: str, project: str, commit_sha: str,
                             artifacts: list[dict[str, Any]] | None = None, *,
                             pipeline_run_id: str | None = None,
                             tag: str | None = None) -> Release: ...

    async def current(self, environment: str, repository: str,
                      project: str) -> Deployment | None: ...

    async def history(self, environment: str, repository: str, project: str,
                      limit: int = 20, offset: int = 0) -> Page[Deployment]: ...

    async def deploy(self, release_id: str, environment: str,
                     approval_id: str | None = None) -> Deployment: ...

    async def request_deploy(self, release_id: str, environment: str) -> DeployRequest: ...

    async def approve(self, release_id: str, environment: str,
                      justification: str) -> ReleaseApproval: ...

    async def approval(self, release_id: str, environment: str) -> ReleaseApproval | None: ...

    async def revoke(self, approval_id: str) -> ReleaseApproval: ...

    async def create_run(self, repository: str, branch: str, commit_sha: str, *,
                         triggered_by: str | None = None,
                         trigger_type: str = "manual") -> PipelineRun: ...

    async def run(self, run_id: str) -> PipelineRun: ...

    async def runs(self, repository: str, branch: str | None = None, limit: int = 20,
                   offset: int = 0) -> Page[PipelineRun]: ...

    async def cancel_run(self, run_id: str) -> None: ...

    async def step_logs(self, run_id: str, step_id: str) -> str: ...

    def events(self, after: int = 0) -> AsyncIterator[ForgeEvent]:
        """The forge's events after `after`, then new ones as they come; never ends by itself
        (FeatureMissing at once when the server keeps no event log)."""
        ...

    async def latest_event(self) -> int:
        """The newest event's sequence number (0: none), to follow only what comes next."""
        ...


def releases_for(backend: Backend, capabilities: Capabilities, *, user: str,
                 endpoint: ForgeEndpoint | None = None) -> Releases:
    """The releases of this backend (or of the profile's own Forge, when given)."""
    from flowdeck.client.forge_http import HttpReleases
    from flowdeck.client.http import HttpBackend

    if endpoint is not None:
        return releases_at(endpoint)
    # The engine in this process is recognised by what it offers, not by its class: importing
    # the embedded backend here would pull the engine into every screen that shows releases.
    if callable(getattr(backend, "engine_call", None)) and capabilities.releases:
        return EmbeddedReleases(backend, user)
    if isinstance(backend, HttpBackend) and capabilities.releases:
        return HttpReleases(backend.base_url, headers=backend.auth_headers(),
                            timeout=backend.timeout, identity=capabilities.user)
    raise ReleasesUnavailable(
        f"releases are not available on {backend.name} ({capabilities.kind} "
        f"{capabilities.version}): a Kestra server has no releases API; point a profile's "
        "[profiles.NAME.forge] url at a Forge server, or use a flowdeck server")


def releases_at(endpoint: ForgeEndpoint) -> Releases:
    """The releases of a Forge server of its own (a profile's `forge` table)."""
    from flowdeck.client.forge_http import HttpReleases

    return HttpReleases(endpoint.url, token=endpoint.token, timeout=endpoint.timeout,
                        fallback=endpoint)


class EmbeddedReleases:
    """`Releases` on the engine in this process; changes are recorded as `user`'s."""

    def __init__(self, backend: Any, user: str) -> None:
        self.backend = backend
        self.user = user

    @property
    def name(self) -> str:
        return "embedded"

    @property
    def identity(self) -> str | None:
        return self.user

    @property
    def role(self) -> str | None:
        return None

    async def close(self) -> None:
        """Nothing of its own to close: the backend is its owner's."""

    async def _call(self, fn: Any) -> Any:
        return await self.backend.engine_call(fn)

    async def overview(self) -> Overview:
        async def run(engine: Any) -> Overview:
            settings = engine.forge.settings
            return Overview(tuple(await engine.forge.list_projects()),
                            tuple(settings.environments),
                            tuple(settings.approval_environments))

        found: Overview = await self._call(run)
        return found

    async def releases(self, repository: str, project: str, limit: int = 20,
                       offset: int = 0) -> Page[Release]:
        found: Page[Release] = await self._call(
            lambda e: e.forge.list_releases(repository, project, limit, offset))
        return found

    async def release(self, repository: str, project: str, ref: str) -> Release:
        found: Release = await self._call(lambda e: e.forge.get_release(repository, project,
                                                                        ref))
        return found

    async def create_release(self, repository: str, project: str, commit_sha: str,
                             artifacts: list[dict[str, Any]] | None = None, *,
                             pipeline_run_id: str | None = None,
                             tag: str | None = None) -> Release:
        found: Release = await self._call(lambda e: e.forge.create_release(
            repository, project, commit_sha, artifacts, by=self.user,
            pipeline_run_id=pipeline_run_id, tag=tag))
        return found

    async def current(self, environment: str, repository: str,
                      project: str) -> Deployment | None:
        from flowdeck.core.errors import NotFoundError

        try:
            found: Deployment = await self._call(
                lambda e: e.forge.current_deployment(environment, repository, project))
        except NotFoundError:
            return None
        return found

    async def history(self, environment: str, repository: str, project: str,
                      limit: int = 20, offset: int = 0) -> Page[Deployment]:
        found: Page[Deployment] = await self._call(lambda e: e.forge.deployment_history(
            environment, repository, project, limit, offset))
        return found

    async def deploy(self, release_id: str, environment: str,
                     approval_id: str | None = None) -> Deployment:
        found: Deployment = await self._call(lambda e: e.forge.create_deployment(
            release_id, environment, by=self.user, approval_id=approval_id))
        return found

    async def request_deploy(self, release_id: str, environment: str) -> DeployRequest:
        found: DeployRequest = await self._call(
            lambda e: e.forge.request_deployment(release_id, environment, by=self.user))
        return found

    async def approve(self, release_id: str, environment: str,
                      justification: str) -> ReleaseApproval:
        found: ReleaseApproval = await self._call(lambda e: e.forge.create_approval(
            release_id, environment, justification, by=self.user))
        return found

    async def approval(self, release_id: str, environment: str) -> ReleaseApproval | None:
        from flowdeck.core.errors import NotFoundError

        try:
            found: ReleaseApproval = await self._call(
                lambda e: e.forge.approval_status(release_id, environment))
        except NotFoundError:
            return None
        return found

    async def revoke(self, approval_id: str) -> ReleaseApproval:
        found: ReleaseApproval = await self._call(
            lambda e: e.forge.revoke_approval(approval_id, by=self.user))
        return found

    async def create_run(self, repository: str, branch: str, commit_sha: str, *,
                         triggered_by: str | None = None,
                         trigger_type: str = "manual") -> PipelineRun:
        found: PipelineRun = await self._call(lambda e: e.forge.create_run(
            repository, branch, commit_sha, triggered_by or self.user, trigger_type,
            by=self.user))
        return found

    async def run(self, run_id: str) -> PipelineRun:
        found: PipelineRun = await self._call(lambda e: e.forge.get_run(run_id))
        return found

    async def runs(self, repository: str, branch: str | None = None, limit: int = 20,
                   offset: int = 0) -> Page[PipelineRun]:
        found: Page[PipelineRun] = await self._call(
            lambda e: e.forge.list_runs(repository, branch, limit, offset))
        return found

    async def cancel_run(self, run_id: str) -> None:
        await self._call(lambda e: e.forge.cancel_run(run_id))

    async def step_logs(self, run_id: str, step_id: str) -> str:
        found: str = await self._call(lambda e: e.forge.step_logs(run_id, step_id))
        return found

    async def latest_event(self) -> int:
        found: int = await self._call(lambda e: e.event_reader.latest_seq())
        return found

    async def events(self, after: int = 0) -> AsyncIterator[ForgeEvent]:
        """Long waits on the engine's loop, each returning what committed meanwhile."""
        seq = after
        while True:
            page: list[ForgeEvent] = await self._call(
                lambda e, start=seq: _next_events(e, start, EVENT_WAIT))
            for event in page:
                seq = event.seq
                yield event


async def _next_events(engine: Any, after: int, wait: float) -> list[ForgeEvent]:
    """On the engine loop: the forge events after `after`, waiting up to `wait` seconds for
    the first one (subscribed before the read, so none slips between)."""
    sub = engine.subscribe("events")
    try:
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            found = await engine.event_reader.after(after, source="forge", limit=500)
            if found:
                return [ForgeEvent(e.seq, e.kind, str(e.payload.get("timestamp") or ""),
                                   dict(e.payload.get("data") or {})) for e in found]
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return []
            with contextlib.suppress(TimeoutError):
                await sub.get(left)
    finally:
        sub.close()
