"""Forge data for the deck's releases tests: a pipeline of Log tasks (quick, no processes),
a run of it, releases and deployments, made through the releases client like any user."""

from __future__ import annotations

import asyncio

from flowdeck.client.backend import Backend
from flowdeck.client.releases import Releases, releases_for
from flowdeck.core.forge import PipelineRun, Release

PIPELINE = """
id: shop
namespace: pipelines.acme
tasks:
  - id: discover
    type: io.kestra.plugin.core.log.Log
    message: found api and web
  - id: ci
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: api
        type: io.kestra.plugin.core.log.Log
        message: api built
      - id: web
        type: io.kestra.plugin.core.log.Log
        message: web built
  - id: release
    type: io.kestra.plugin.core.log.Log
    message: released
"""
SHA1, SHA2, SHA3 = "1a2b3c4d5e6f7081", "2b3c4d5e6f708192", "3c4d5e6f708192a3"
IMAGE = {"name": "api", "type": "container",
         "tracking_oci_uri": "registry.example.com/acme/shop/api:1a2b3c4"}


async def person(backend: Backend, who: str) -> Releases:
    return releases_for(backend, await backend.connect(), user=who)


async def finished_run(client: Releases, sha: str) -> PipelineRun:
    run = await client.create_run("acme/shop", "main", sha, trigger_type="push")
    async with asyncio.timeout(20):
        while (current := await client.run(run.id)).status not in ("success", "failed"):
            await asyncio.sleep(0.02)
    return current


async def seed(backend: Backend) -> tuple[Release, Release]:
    """Two releases of acme/shop/api by alice (the first from a pipeline run, tagged), one
    of acme/shop/web; the first and then the second deployed to dev, the first to staging."""
    await backend.apply_flow(PIPELINE)
    alice = await person(backend, "alice")
    run = await finished_run(alice, SHA1)
    first = await alice.create_release("acme/shop", "api", SHA1, [IMAGE],
                                       pipeline_run_id=run.id, tag="v1.0.0")
    second = await alice.create_release("acme/shop", "api", SHA2, [IMAGE])
    await alice.create_release("acme/shop", "web", SHA1, [])
    await alice.deploy(first.id, "dev")
    await alice.deploy(first.id, "staging")
    await alice.deploy(second.id, "dev")
    return first, second
