"""The releases client on both sides of the client layer: the engine in this process and a
live server's forge API (`/v1`, Bearer tokens). One scenario runs on each: a pipeline run, a
release from it, deployments, the production gate with an approval by someone else, a deploy
request, a revoke, and the events that tell a watcher about each. Then: a backend without
releases says so, and over HTTP a server with only the document's routes still serves the
deck (projects from the profile, no events, no revoke)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter

from flowdeck.client.backend import Capabilities
from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.client.forge_http import HttpReleases
from flowdeck.client.http import HttpBackend
from flowdeck.client.releases import (
    FeatureMissing,
    ForgeEndpoint,
    ForgeEvent,
    Releases,
    ReleasesUnavailable,
    releases_for,
)
from flowdeck.core.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from flowdeck.engine.engine import EngineSettings
from flowdeck.engine.keys import TokenStore
from flowdeck.server.app import ServerOptions
from flowdeck.server.dialect import DialectContext, Routes
from flowdeck.server.dialects import DEFAULT_DIALECTS, forge
from flowdeck.server.dialects.forge import deployments, releases, runs
from helpers import open_engine
from live_server import start_server, stop_server

PIPELINE = textwrap.dedent("""
    id: shop
    namespace: pipelines.acme
    tasks:
      - id: build
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - echo "built api"
      - id: release
        type: io.kestra.plugin.core.log.Log
        message: ready
    """)
SHA = "0123456789abcdef"
PEOPLE = {"alice": "approver", "carol": "approver", "vic": "viewer"}

Person = Callable[[str], Releases]


@contextlib.asynccontextmanager
async def embedded(tmp_path: Path) -> AsyncIterator[Person]:
    backend = EmbeddedBackend(EngineSettings(data_dir=tmp_path / "data", scheduler=False,
                                             envs={}))
    caps = await backend.connect()
    await backend.apply_flow(PIPELINE)
    try:
        yield lambda who: releases_for(backend, caps, user=who)
    finally:
        await backend.close()


@contextlib.asynccontextmanager
async def remote(tmp_path: Path, dialects: list[Any] | None = None
                 ) -> AsyncIterator[tuple[Person, str, dict[str, str]]]:
    engine = await open_engine(tmp_path / "data")
    await engine.apply_flow(PIPELINE)
    tokens = TokenStore(engine.store, engine.clock)
    secrets = {name: (await tokens.create(role, name))[1] for name, role in PEOPLE.items()}
    server, task, url = await start_server(engine, ServerOptions(auth_required=True),
                                           dialects=dialects)
    opened: list[Releases] = []

    def person(who: str) -> Releases:
        client = HttpReleases(url, token=secrets[who])
        opened.append(client)
        return client

    try:
        yield person, url, secrets
    finally:
        for client in opened:
            await client.close()
        await stop_server(server, task)
        await engine.close()


async def first_events(client: Releases, kinds: list[str], after: int = 0,
                       timeout: float = 20) -> list[ForgeEvent]:
    found: list[ForgeEvent] = []
    async with asyncio.timeout(timeout):
        stream = client.events(after)
        try:
            async for event in stream:
                if event.event_type in kinds:
                    found.append(event)
                if [e.event_type for e in found] == kinds:
                    return found
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
    return found


async def scenario(person: Person) -> None:
    alice, carol = person("alice"), person("carol")
    assert (await alice.overview()).projects == ()
    start = await alice.latest_event()
    run = await alice.create_run("acme/shop", "main", SHA, trigger_type="push")
    async with asyncio.timeout(30):
        while (current := await alice.run(run.id)).status not in ("success", "failed"):
            await asyncio.sleep(0.05)
    assert current.status == "success" and current.triggered_by == "alice"
    assert [p.name for p in current.phases] == ["build", "release"]
    step = current.phases[0].tasks[0].steps[0]
    assert "built api" in await alice.step_logs(run.id, step.id)
    assert [r.id for r in (await alice.runs("acme/shop")).items] == [run.id]

    release = await alice.create_release("acme/shop", "api", SHA, [
        {"name": "api", "type": "container", "tracking_oci_uri": "reg/acme/api:0123456"}],
        pipeline_run_id=run.id, tag="v1.0.0")
    assert (release.release_number, release.created_by, release.tag) == (1, "alice", "v1.0.0")
    assert release.pipeline_run_id == run.id and release.trigger.branch == "main"
    assert (await alice.release("acme/shop", "api", "v1.0.0")).id == release.id
    listed = await alice.releases("acme/shop", "api")
    assert [(r.release_number, r.created_by, r.tag) for r in listed.items] == [
        (1, "alice", "v1.0.0")]
    with pytest.raises(ConflictError):
        await alice.create_release("acme/shop", "api", SHA)
    with pytest.raises(ValidationError) as bad:
        await alice.create_release("acme/shop", "api", "not-a-sha")
    assert bad.value.problems[0][0] == "commit_sha"

    dev = await alice.deploy(release.id, "dev")
    assert dev.status == "active" and dev.gitops_commit_sha
    current_dev = await alice.current("dev", "acme/shop", "api")
    assert current_dev is not None and current_dev.release_number == 1
    assert current_dev.deployed_by == "alice"
    assert await alice.current("staging", "acme/shop", "api") is None
    assert [d.status for d in (await alice.history("dev", "acme/shop", "api")).items] == [
        "active"]

    with pytest.raises(PermissionDenied, match="needs the approval_id"):
        await alice.deploy(release.id, "production")
    with pytest.raises(PermissionDenied, match="cannot approve"):
        await alice.approve(release.id, "production", "mine")
    assert await carol.approval(release.id, "production") is None
    approval = await carol.approve(release.id, "production", "CAB-7")
    assert (approval.approver, approval.status) == ("carol", "active")
    found = await alice.approval(release.id, "production")
    assert found is not None and found.justification == "CAB-7"
    prod = await alice.deploy(release.id, "production", approval.id)
    assert prod.status == "active"

    second = await carol.approve(release.id, "production", "again")
    revoked = await carol.revoke(second.id)
    assert revoked.status == "revoked"
    request = await alice.request_deploy(release.id, "production")
    assert (request.requested_by, request.status) == ("alice", "pending")

    overview = await carol.overview()
    [shop] = overview.projects
    assert (shop.repository, shop.project, shop.releases) == ("acme/shop", "api", 1)
    assert shop.latest_release is not None and shop.latest_release.tag == "v1.0.0"
    assert sorted(shop.current) == ["dev", "production"]
    assert overview.environments == ("dev", "staging", "production")

    kinds = ["pipeline.run.created", "pipeline.run.completed", "release.created",
             "deployment.created", "deployment.completed"]
    events = await first_events(carol, kinds, after=start)
    assert events[2].data["release_number"] == 1
    assert all(e.seq > start for e in events)


async def test_embedded_releases(tmp_path: Path) -> None:
    async with embedded(tmp_path) as person:
        await scenario(person)


async def test_http_releases(tmp_path: Path) -> None:
    async with remote(tmp_path) as (person, _, _):
        await scenario(person)


async def test_releases_follow_the_backend(tmp_path: Path) -> None:
    """Same server: the main backend's URL and token; its `/me` names the caller. A Kestra
    has none; a profile's own Forge URL wins."""
    async with remote(tmp_path) as (_, url, secrets):
        backend = HttpBackend(url, token=secrets["alice"])
        try:
            caps = await backend.connect()
            assert caps.releases and caps.user == "alice"
            client = releases_for(backend, caps, user="ignored")
            try:
                assert client.identity == "alice" and client.name == url
                made = await client.create_release("acme/shop", "web", SHA)
                assert made.created_by == "alice"
            finally:
                await client.close()
            kestra = dataclasses.replace(caps, kind="kestra", releases=False)
            with pytest.raises(ReleasesUnavailable, match="Kestra server has no releases"):
                releases_for(backend, kestra, user="x")
            own = releases_for(backend, kestra, user="x", endpoint=ForgeEndpoint(
                url, token=secrets["carol"]))
            try:
                page = await own.releases("acme/shop", "web")
                assert [r.created_by for r in page.items] == ["alice"]
            finally:
                await own.close()
        finally:
            await backend.close()


EXTENSIONS = {"/v1/projects", "/v1/events", "/v1/events/follow", "/v1/deployments/requests",
              "/v1/approvals/{approval_id}"}


def documented_routes(context: DialectContext) -> list[Routes]:
    """The forge dialect without flowdeck's extensions: another server of the document."""
    mounts = []
    for module in (runs, releases, deployments):
        router = APIRouter()
        router.routes.extend(r for r in module.router.routes
                             if getattr(r, "path", "") not in EXTENSIONS)
        mounts.append(Routes(router))
    return mounts


class Recording(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(f"{request.method} {request.url.path}")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_server_with_only_the_documents_routes(tmp_path: Path) -> None:
    plain = dataclasses.replace(forge.DIALECT, routes=documented_routes)
    dialects = [d for d in DEFAULT_DIALECTS if d.name != "forge"] + [plain]
    async with remote(tmp_path, dialects) as (person, url, secrets):
        alice = person("alice")
        release = await alice.create_release("acme/shop", "api", SHA)
        await alice.deploy(release.id, "staging")
        recording = Recording()
        endpoint = ForgeEndpoint(url, token=secrets["carol"], projects=("acme/shop/api",),
                                 environments=("dev", "staging"))
        client = HttpReleases(url, token=secrets["carol"], fallback=endpoint,
                              transport=recording)
        try:
            assert client.identity is None
            overview = await client.overview()
            assert (client.identity, client.role) == ("carol", "approver")  # from /api/v1/me
            [shop] = overview.projects
            assert (shop.project, shop.releases, sorted(shop.current)) == (
                "api", 1, ["staging"])
            assert overview.environments == ("dev", "staging")
            with pytest.raises(FeatureMissing):
                await client.latest_event()
            with pytest.raises(FeatureMissing):
                await first_events(client, ["release.created"])
            approval = await client.approve(release.id, "production", "ok")
            with pytest.raises(FeatureMissing):
                await client.revoke(approval.id)
            with pytest.raises(FeatureMissing):
                await client.request_deploy(release.id, "production")
            with pytest.raises(NotFoundError):
                await client.release("acme/shop", "api", "99")
        finally:
            await client.close()
        assert recording.paths.count("GET /api/v1/me") == 1
        documented = ("GET /api/v1/me", "GET /v1/releases/", "GET /v1/deployments/",
                      "POST /v1/approvals",
                      "GET /v1/projects", "GET /v1/events", "DELETE /v1/approvals/",
                      "POST /v1/deployments/requests")
        assert all(p.startswith(documented) for p in recording.paths), recording.paths


def test_capabilities_of_a_kestra_say_no_releases() -> None:
    caps = Capabilities(kind="kestra", version="1.0.0")
    backend = HttpBackend("http://127.0.0.1:9")
    with pytest.raises(ReleasesUnavailable):
        releases_for(backend, caps, user="x")
