"""StagingClient: list, clone and delete through a Backend, in process and over HTTP.

The same checks run on an EmbeddedBackend (which installs the bundled flows on first use) and on
an HttpBackend talking to a real `flowdeck serve`-style server on loopback.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.client.http import HttpBackend
from flowdeck.client.staging import StagingClient, StagingFailed, StagingUnavailable
from flowdeck.engine.engine import EngineSettings
from live_server import start_server, stop_server
from staging.conftest import open_staging_engine

Opener = Callable[[Path], contextlib.AbstractAsyncContextManager[StagingClient]]


@contextlib.asynccontextmanager
async def embedded_client(tmp_path: Path) -> AsyncIterator[StagingClient]:
    backend = EmbeddedBackend(EngineSettings(data_dir=tmp_path / "data", scheduler=False,
                                             envs={}))
    caps = await backend.connect()
    try:
        yield StagingClient(backend, caps)
    finally:
        await backend.close()


@contextlib.asynccontextmanager
async def http_client(tmp_path: Path) -> AsyncIterator[StagingClient]:
    engine = await open_staging_engine(tmp_path / "data")
    server, task, url = await start_server(engine)
    backend = HttpBackend(url, poll_interval=0.1)
    try:
        yield StagingClient(backend, await backend.connect())
    finally:
        await backend.close()
        await stop_server(server, task)
        await engine.close()


OPENERS: dict[str, Opener] = {"embedded": embedded_client, "http": http_client}


@pytest.fixture(params=sorted(OPENERS))
def open_client(request: pytest.FixtureRequest) -> Opener:
    return OPENERS[request.param]


async def test_clone_list_and_delete_round_trip(open_client: Opener, tmp_path: Path) -> None:
    async with open_client(tmp_path) as staging:
        assert await staging.list() == []
        response = await staging.clone("acme-corp", environment_name="staging-acme-one",
                                       timeout=30)
        assert response["status"] == "success"
        assert response["environment_name"] == "staging-acme-one"
        assert response["client_name"] == "acme-corp"
        assert response["source_environment"] == "production"

        generated = await staging.clone("beta", skip_database=True, timeout=30)
        assert generated["environment_name"].startswith("staging-beta-")

        listed = {env.name: env for env in await staging.list()}
        assert set(listed) == {"staging-acme-one", generated["environment_name"]}
        acme = listed["staging-acme-one"]
        assert (acme.client_name, acme.source_environment) == ("acme-corp", "production")
        assert acme.url == response["staging_url"]
        assert acme.created_at

        deleted = await staging.delete("staging-acme-one", timeout=30)
        assert deleted["message"] == "Environment deleted successfully"
        assert [env.name for env in await staging.list()] == [generated["environment_name"]]


@pytest.mark.parametrize("name", ["Staging-x", " staging-x", "staging-x\n", "prod-staging-x",
                                  "staging-x/../prod", "\uff53taging-x"])
async def test_a_look_alike_name_is_refused_by_the_engine(
        open_client: Opener, tmp_path: Path, name: str) -> None:
    async with open_client(tmp_path) as staging:
        await staging.clone("x", environment_name="staging-x", timeout=30)
        with pytest.raises(StagingFailed) as failed:
            await staging.delete(name, timeout=30)
        assert failed.value.execution.state.current == "FAILED"
        assert "staging-" in failed.value.reason  # the message names the required pattern
        assert [env.name for env in await staging.list()] == ["staging-x"]


async def test_cloning_onto_an_existing_name_fails_and_changes_nothing(
        open_client: Opener, tmp_path: Path) -> None:
    async with open_client(tmp_path) as staging:
        first = await staging.clone("acme", environment_name="staging-acme", timeout=30)
        with pytest.raises(StagingFailed) as failed:
            await staging.clone("other", environment_name="staging-acme", timeout=30)
        assert "staging-acme" in failed.value.reason
        (env,) = await staging.list()
        assert (env.client_name, env.url) == ("acme", first["staging_url"])


async def test_a_server_without_the_staging_flows_says_so(tmp_path: Path) -> None:
    engine = await open_staging_engine(tmp_path / "data", apply_flows=False)
    server, task, url = await start_server(engine)
    backend = HttpBackend(url)
    try:
        staging = StagingClient(backend, await backend.connect())
        with pytest.raises(StagingUnavailable, match=r"dev\.deployment/clone-staging-api"):
            await staging.list()
    finally:
        await backend.close()
        await stop_server(server, task)
        await engine.close()


async def test_started_executions_are_ordinary_runs_an_operator_can_follow(
        tmp_path: Path) -> None:
    async with embedded_client(tmp_path) as staging:
        started = await staging.start_clone("acme")
        assert (started.namespace, started.flow_id) == ("dev.deployment", "clone-staging-api")
        final = await staging.settle(started.id, timeout=30)
        assert [t.task_id for t in final.task_runs] == ["validate-inputs", "execute-clone"]
        response: Awaitable[dict[str, object]] = staging.outcome(final)
        assert (await response)["client_name"] == "acme"
