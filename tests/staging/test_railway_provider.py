"""The railway provider against a local stand-in of Railway's GraphQL API."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flowdeck.core.ids import new_id
from flowdeck.engine.query import ExecutionQuery
from flowdeck.engine.staging import (
    CloneRequest,
    EnvironmentExists,
    EnvironmentNotFound,
    InvalidEnvironmentName,
    ProviderAuthError,
    ProviderError,
    StagingError,
    provider_for,
    response_of,
)
from flowdeck.engine.staging.railway import (
    CREATE_MUTATION,
    DEFAULT_ENDPOINT,
    ENVIRONMENTS_QUERY,
    RailwayProvider,
)
from staging.conftest import (
    CLONE_URL,
    create_staging,
    open_staging_engine,
    poll,
    run,
    serve,
)
from staging.railway_standin import RailwayStandIn, running


@pytest.fixture
async def standin() -> AsyncIterator[RailwayStandIn]:
    async with running(RailwayStandIn()) as server:
        yield server


def railway(standin: RailwayStandIn, **overrides: Any) -> RailwayProvider:
    config: dict[str, Any] = {"endpoint": standin.url, "token": standin.token,
                              "project_id": standin.project_id, "timeout": 5}
    config.update(overrides)
    return RailwayProvider.from_config(config, clock=lambda: datetime.now(UTC), new_id=new_id,
                                       environ={})


async def test_create_list_delete(standin: RailwayStandIn) -> None:
    provider = railway(standin)
    try:
        assert [e.name for e in await provider.list()] == ["production"]
        production = (await provider.list())[0]
        assert production.created_at == "2024-01-10T08:00:00Z"
        env = await provider.clone(CloneRequest("staging-acme", "production", "acme"))
        assert standin.by_name("staging-acme") is not None
        assert env.id == standin.by_name("staging-acme")["id"]  # type: ignore[index]
        assert env.url == "https://staging-acme.up.railway.app"
        assert env.provider == "railway" and env.client_name == "acme"
        assert env.source_environment == "production"
        listed = await provider.list("staging-")
        assert [(e.name, e.id, e.source_environment) for e in listed] == [
            ("staging-acme", env.id, "production")]
        assert await provider.status("staging-acme") is not None
        deleted = await provider.delete("staging-acme")
        assert deleted.id == env.id
        assert standin.names() == ["production"]
        assert standin.operations[-2:] == ["environments", "environmentDelete"]
    finally:
        await provider.aclose()


async def test_existing_names_missing_sources_and_the_guard(standin: RailwayStandIn) -> None:
    standin.add("staging-taken")
    provider = railway(standin)
    try:
        with pytest.raises(EnvironmentExists, match="'staging-taken' already exists"):
            await provider.clone(CloneRequest("staging-taken", "production"))
        with pytest.raises(EnvironmentNotFound, match="no environment 'qa'"):
            await provider.clone(CloneRequest("staging-new", "qa"))
        assert "environmentCreate" not in standin.operations
        with pytest.raises(EnvironmentNotFound, match="no staging environment 'staging-gone'"):
            await provider.delete("staging-gone")
        calls = len(standin.operations)
        for name in ("production", "Staging-taken", "staging-taken\n", " staging-taken"):
            with pytest.raises(InvalidEnvironmentName, match="refusing to delete"):
                await provider.delete(name)
        assert len(standin.operations) == calls  # refused before Railway is asked
        assert standin.names() == ["production", "staging-taken"]
    finally:
        await provider.aclose()


async def test_error_responses(standin: RailwayStandIn, caplog: pytest.LogCaptureFixture
                               ) -> None:
    caplog.set_level(logging.DEBUG)
    bad = railway(standin, token="not-the-token")
    with pytest.raises(ProviderAuthError, match=r"Railway refused the token \(Not Authorized\)"
                       ) as refused:
        await bad.list()
    assert "not-the-token" not in str(refused.value)
    await bad.aclose()

    standin.auth_failure_status = 401
    bad = railway(standin, token="not-the-token", token_header="project")
    with pytest.raises(ProviderAuthError, match="Not Authorized"):
        await bad.list()
    await bad.aclose()
    assert "not-the-token" not in caplog.text

    no_token = railway(standin, token=None)
    with pytest.raises(ProviderAuthError, match="no Railway token: set RAILWAY_TOKEN"):
        await no_token.list()
    await no_token.aclose()

    provider = railway(standin, project_id="proj-unknown")
    with pytest.raises(ProviderError, match="Railway API error: Project not found"):
        await provider.list()
    await provider.aclose()

    provider = railway(standin)
    try:
        with pytest.raises(ProviderError, match=r'Variable "\$projectId" of required type'):
            await provider.graphql(ENVIRONMENTS_QUERY, {})
        with pytest.raises(ProviderError, match="Environment not found"):
            await provider.graphql(CREATE_MUTATION, {"input": {
                "projectId": standin.project_id, "name": "staging-x",
                "sourceEnvironmentId": "no-such-id"}})
        standin.rate_limited = True
        with pytest.raises(ProviderError, match="rate limit was reached; retry in 7 s"):
            await provider.list()
    finally:
        await provider.aclose()

    unreachable = railway(standin, endpoint="http://127.0.0.1:9/graphql/v2")
    with pytest.raises(ProviderError, match="cannot reach the Railway API"):
        await unreachable.list()
    await unreachable.aclose()


async def test_paging_and_configuration(standin: RailwayStandIn) -> None:
    for i in range(150):
        standin.add(f"staging-bulk-{i:03d}")
    provider = railway(standin)
    try:
        assert len(await provider.list("staging-bulk-")) == 150
        assert standin.operations.count("environments") == 2
    finally:
        await provider.aclose()
    from_env = RailwayProvider.from_config(
        {}, clock=lambda: datetime.now(UTC), new_id=new_id,
        environ={"RAILWAY_TOKEN": "t", "RAILWAY_PROJECT_ID": "p"})
    assert (from_env.token, from_env.project_id, from_env.endpoint) == ("t", "p",
                                                                        DEFAULT_ENDPOINT)
    await from_env.aclose()
    no_project = railway(standin, project_id=None)
    with pytest.raises(StagingError, match="no Railway project: set RAILWAY_PROJECT_ID"):
        await no_project.list()
    await no_project.aclose()
    with pytest.raises(StagingError, match="token_header must be"):
        railway(standin, token_header="cookie")


def railway_config(standin: RailwayStandIn) -> dict[str, Any]:
    return {"provider": "railway",
            "railway": {"endpoint": standin.url, "token": standin.token,
                        "project_id": standin.project_id}}


async def test_the_bundled_flows_on_railway(tmp_path: Path, standin: RailwayStandIn) -> None:
    engine = await open_staging_engine(tmp_path / "data", staging=railway_config(standin))
    try:
        assert isinstance(provider_for(engine), RailwayProvider)
        done = await run(engine, "clone-staging-api", client_name="acme")
        assert done.state.current == "SUCCESS", done.state.current
        response = response_of(done)
        assert response is not None
        name = response["environment_name"]
        assert name in standin.names()
        assert response["staging_url"] == f"https://{name}.up.railway.app"
        messages = [e.message for e in await engine.logs.fetch(done.id)]
        assert ("the railway provider duplicates services and their configuration, not "
                "database contents") in messages
        listed = response_of(await run(engine, "list-staging-environments"))
        assert listed is not None and [e["name"] for e in listed["environments"]] == [name]
        deleted = await run(engine, "delete-staging-environment", environment_name=name)
        assert deleted.state.current == "SUCCESS"
        assert standin.names() == ["production"]
        standin.token = "rotated"
        failed = await run(engine, "list-staging-environments")
        assert failed.state.current == "FAILED"
        errors = [e.message for e in await engine.logs.fetch(failed.id) if e.level == "ERROR"]
        assert errors == ["task 'list-environments' failed: Railway refused the token (Not "
                          "Authorized); check RAILWAY_TOKEN and that it may manage the "
                          "project's environments"]
    finally:
        await engine.close()


async def test_at_most_five_clones_run_at_once(tmp_path: Path) -> None:
    """Six clones at once through the API with the spec's polling client: five run, one
    waits (QUEUED, which the simplified shape reports as CREATED), all succeed."""
    async with running(RailwayStandIn(create_delay=0.8)) as standin:
        engine = await open_staging_engine(tmp_path / "data", staging=railway_config(standin),
                                           max_concurrent_executions=20)
        try:
            async with serve(engine) as live:
                urls = await asyncio.gather(*(create_staging(live.client, f"client-{i}")
                                              for i in range(6)))
                assert len(set(urls)) == 6
                found, _ = await engine.search_executions(ExecutionQuery(size=20))
                executions = [await engine.get_execution(e.id) for e in found]
        finally:
            await engine.close()
    assert len(executions) == 6
    intervals = []
    queued = 0
    for execution in executions:
        states = [h.state for h in execution.state.histories]
        assert states[-1] == "SUCCESS", states
        queued += "QUEUED" in states
        started = next(h.date for h in execution.state.histories if h.state == "RUNNING")
        intervals.append((started, execution.state.histories[-1].date))
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running_now = peak = 0
    for _, delta in events:
        running_now += delta
        peak = max(peak, running_now)
    assert peak == 5
    assert queued == 1
    assert standin.max_in_flight == 5


async def test_the_running_shape(tmp_path: Path) -> None:
    async with running(RailwayStandIn(create_delay=1.0)) as standin:
        engine = await open_staging_engine(tmp_path / "data", staging=railway_config(standin))
        try:
            async with serve(engine) as live:
                response = await live.client.post(CLONE_URL, json={"client_name": "acme"})
                execution_id = response.json()["executionId"]
                seen: list[dict[str, Any]] = []
                for _ in range(100):
                    status = (await live.client.get(
                        f"/api/v1/executions/dev.deployment/clone-staging-api/{execution_id}"
                    )).json()
                    if [r["taskId"] for r in status["taskRunList"]] == [
                            "validate-inputs", "execute-clone"]:
                        seen.append(status)
                        break
                    await asyncio.sleep(0.05)
                (running_status,) = seen
                assert running_status["state"] == "RUNNING"
                assert "endDate" not in running_status and "outputs" not in running_status
                assert running_status["taskRunList"] == [
                    {"taskId": "validate-inputs", "state": "SUCCESS"},
                    {"taskId": "execute-clone", "state": "RUNNING"}]
                final = await poll(live.client, "clone-staging-api", execution_id)
                assert final["state"] == "SUCCESS"
                assert json.dumps(final["outputs"]["response"])
        finally:
            await engine.close()


async def test_the_five_slots_are_shared_by_the_three_staging_flows(tmp_path: Path) -> None:
    """Four slow clones and two lists at once, with room for 20 executions engine-wide: the
    three staging flows share one limit of 5, so one list waits (QUEUED) and never more than
    five staging executions run together."""
    async with running(RailwayStandIn(create_delay=1.0)) as standin:
        engine = await open_staging_engine(tmp_path / "data", staging=railway_config(standin),
                                           max_concurrent_executions=20)
        try:
            ids = [(await engine.create_execution(
                "dev.deployment", "clone-staging-api", inputs={"client_name": f"c{i}"})).id
                for i in range(4)]
            ids += [(await engine.create_execution(
                "dev.deployment", "list-staging-environments")).id for _ in range(2)]
            executions = [await engine.wait_until_terminal(i, timeout=30) for i in ids]
        finally:
            await engine.close()
    histories = [[h.state for h in e.state.histories] for e in executions]
    assert all(states[-1] == "SUCCESS" for states in histories), histories
    assert sum("QUEUED" in states for states in histories) == 1, histories
    intervals = [(next(h.date for h in e.state.histories if h.state == "RUNNING"),
                  e.state.histories[-1].date) for e in executions]
    events = sorted([(s, 1) for s, _ in intervals] + [(end, -1) for _, end in intervals])
    running_now = peak = 0
    for _, delta in events:
        running_now += delta
        peak = max(peak, running_now)
    assert peak == 5
