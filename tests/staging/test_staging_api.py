"""The staging dialect over a real server: the spec's curl examples and polling client, the
simplified execution shape, key checks before body checks, and the delete guard via HTTP."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flowdeck.engine.engine import Engine
from flowdeck.engine.staging import CloneRequest, missing_staging_keys, provider_for
from flowdeck.server.app import ServerOptions
from live_server import LiveServer
from staging.conftest import (
    CLONE_URL,
    DELETE_URL,
    KEYS,
    LIST_URL,
    NS,
    WEBHOOK,
    create_staging,
    open_staging_engine,
    poll,
    serve,
    status_url,
)
from staging.test_delete_guard import LOOK_ALIKES

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
SECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


async def start(live: LiveServer, url: str, **kwargs: Any) -> str:
    response = await live.client.post(url, **kwargs)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"executionId", "state"} and body["state"] == "CREATED"
    execution_id: str = body["executionId"]
    return execution_id


async def test_the_spec_curl_examples(live: LiveServer, tmp_path: Path) -> None:
    # 1. Clone (the spec's curl: client_name and source_environment).
    clone_id = await start(live, CLONE_URL, json={"client_name": "demo-client",
                                                  "source_environment": "production"})
    status = await poll(live.client, "clone-staging-api", clone_id)
    assert list(status) == ["id", "state", "namespace", "flowId", "startDate", "endDate",
                            "taskRunList", "outputs"]
    assert status["id"] == clone_id and status["state"] == "SUCCESS"
    assert (status["namespace"], status["flowId"]) == (NS, "clone-staging-api")
    assert ISO.fullmatch(status["startDate"]) and ISO.fullmatch(status["endDate"])
    assert status["taskRunList"] == [{"taskId": "validate-inputs", "state": "SUCCESS"},
                                     {"taskId": "execute-clone", "state": "SUCCESS"}]
    response = status["outputs"]["response"]
    assert list(status["outputs"]) == ["response"]
    assert list(response) == ["status", "environment_name", "staging_url", "client_name",
                              "source_environment", "created_at"]
    name = response["environment_name"]
    assert re.fullmatch(r"staging-demo-client-\d{8}-\d{6}", name)
    assert response["status"] == "success" and response["client_name"] == "demo-client"
    assert response["source_environment"] == "production"
    assert response["staging_url"] == f"http://{name}.staging.localhost"
    assert SECONDS.fullmatch(response["created_at"])

    # 2. List: the spec's curl sends no body at all.
    list_id = await start(live, LIST_URL)
    listed = await poll(live.client, "list-staging-environments", list_id)
    assert listed["state"] == "SUCCESS"
    result = listed["outputs"]["response"]
    assert list(result) == ["status", "count", "environments", "queried_at"]
    env = (await provider_for(live.engine).status(name))
    assert env is not None
    assert result["status"] == "success" and result["count"] == 1
    assert result["environments"] == [{"name": name, "id": env.id, "createdAt": env.created_at}]
    assert SECONDS.fullmatch(result["queried_at"])
    # A source environment is never listed, whatever the prefix.
    everything = await start(live, LIST_URL, json={"filter_prefix": "prod"})
    prod = (await poll(live.client, "list-staging-environments", everything))
    assert prod["outputs"]["response"]["environments"] == []

    # 3. Delete (the spec's curl, under the tenant prefix this time).
    delete_url = DELETE_URL.replace("/api/v1/", "/api/v1/main/")
    delete_id = await start(live, delete_url, json={"environment_name": name})
    deleted = await poll(live.client, "delete-staging-environment", delete_id)
    assert deleted["state"] == "SUCCESS", deleted
    assert list(deleted["outputs"]["response"]) == ["status", "environment_name", "message",
                                                    "deleted_at"]
    assert deleted["outputs"]["response"]["environment_name"] == name
    assert deleted["outputs"]["response"]["message"] == "Environment deleted successfully"
    assert SECONDS.fullmatch(deleted["outputs"]["response"]["deleted_at"])
    assert await provider_for(live.engine).status(name) is None

    # The status route answers under the tenant prefix too, and only for the right flow.
    main = await live.client.get(status_url("clone-staging-api", clone_id, "/api/v1/main"))
    assert main.status_code == 200 and main.json() == status
    wrong = await live.client.get(status_url("list-staging-environments", clone_id))
    assert wrong.status_code == 404
    assert "no execution" in wrong.json()["detail"]
    unknown = await live.client.get(status_url("clone-staging-api", "nope"))
    assert unknown.status_code == 404


async def test_the_create_staging_polling_client(live: LiveServer) -> None:
    url = await create_staging(live.client, "acme-corp")
    match = re.fullmatch(r"http://(staging-acme-corp-(\d{8}-\d{6}))\.staging\.localhost", url)
    assert match is not None
    stamp = datetime.strptime(match.group(2), "%Y%m%d-%H%M%S").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 30
    database = live.engine.data_dir / "staging" / match.group(1) / "database.sqlite3"
    with closing(sqlite3.connect(database)) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM customers ORDER BY id")]
    assert names == ["Acme Corp", "Globex", "Initech"]
    # A failed clone makes the client throw, as the spec's does.
    await provider_for(live.engine).clone(CloneRequest("staging-taken", "production"))
    response = await live.client.post(CLONE_URL, json={"client_name": "x",
                                                       "environment_name": "staging-taken"})
    failed = await poll(live.client, "clone-staging-api", response.json()["executionId"])
    assert failed["state"] == "FAILED"
    assert failed["failureReason"] == "environment 'staging-taken' already exists"
    with pytest.raises(RuntimeError, match="Clone failed"):
        await create_staging(live.client, "Not A Slug")


async def test_validation_error_shape(live: LiveServer) -> None:
    execution_id = await start(live, CLONE_URL, json={"client_name": "Acme Corp"})
    status = await poll(live.client, "clone-staging-api", execution_id)
    reason = ("client_name 'Acme Corp' must match ^[a-z0-9][a-z0-9-]{0,46}$ (lowercase "
              "letters, digits and '-', at most 47 characters)")
    assert status["state"] == "FAILED"
    assert status["taskRunList"] == [{"taskId": "validate-inputs", "state": "FAILED",
                                      "attempts": [{"logs": [f"ERROR: {reason}"]}]}]
    assert status["failureReason"] == reason
    assert "outputs" not in status and "endDate" in status


async def test_clone_onto_an_existing_name_changes_nothing(live: LiveServer) -> None:
    first = await start(live, CLONE_URL, json={"client_name": "one",
                                               "environment_name": "staging-shared"})
    assert (await poll(live.client, "clone-staging-api", first))["state"] == "SUCCESS"
    local = provider_for(live.engine)
    before = await local.status("staging-shared")
    folder = live.engine.data_dir / "staging" / "staging-shared"
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    second = await start(live, CLONE_URL, json={"client_name": "two",
                                                "environment_name": "staging-shared",
                                                "skip_database": True})
    status = await poll(live.client, "clone-staging-api", second)
    assert status["state"] == "FAILED"
    assert status["failureReason"] == "environment 'staging-shared' already exists"
    assert await local.status("staging-shared") == before
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files


async def test_required_fields_are_checked_after_the_key(live: LiveServer) -> None:
    reject = await live.client.post(f"{WEBHOOK}/clone-staging-api/wrong-key", json={})
    assert reject.status_code == 401
    generic = await live.client.post("/api/v1/executions/webhook/some.ns/flow/wrong-key")
    assert (reject.status_code, reject.content) == (generic.status_code, generic.content)
    headers = {k: v for k, v in reject.headers.items() if k != "date"}
    assert headers == {k: v for k, v in generic.headers.items() if k != "date"}

    bodies: list[dict[str, Any]] = [
        {}, {"content": b""}, {"json": {}}, {"json": {"client_name": None}},
        {"json": {"client_name": ""}}, {"json": ["client_name"]},
        {"content": b"client_name=acme"}, {"json": {"clientName": "acme"}}]
    for url, field in ((CLONE_URL, "client_name"), (DELETE_URL, "environment_name")):
        for kwargs in bodies:
            wrong_key = url.rsplit("/", 1)[0] + "/not-the-key"
            assert (await live.client.post(wrong_key, **kwargs)).content == reject.content
            response = await live.client.post(url, **kwargs)
            assert response.status_code == 400, (url, kwargs, response.text)
            body = response.json()
            assert body["detail"].startswith(f"{field} is required"), body
            assert body["instance"] == f"/api/v1/main/executions/webhook/{NS}/{url.split('/')[-2]}"
            assert KEYS["staging_clone_key"] not in response.text
            assert KEYS["staging_delete_key"] not in response.text
    row = await live.engine.store.fetchone("SELECT COUNT(*) FROM executions")
    assert row is not None and row[0] == 0
    # Input types are still checked by the engine: 422, naming the input.
    typed = await live.client.post(CLONE_URL, json={"client_name": "a", "skip_database": "?"})
    assert typed.status_code == 422
    assert "inputs.skip_database" in typed.text


@pytest.mark.parametrize("envs", [{}, {"staging_clone_key": "", "staging_list_key": " "},
                                  {"staging_delete_key": "only-delete-is-set"}])
async def test_unset_keys_accept_nothing(tmp_path: Path, envs: dict[str, str]) -> None:
    engine = await open_staging_engine(tmp_path / "data", envs=envs)
    options = ServerOptions(extra={"webhook_failures_per_minute": 10_000})
    try:
        async with serve(engine, options) as live:
            unset = missing_staging_keys(envs)
            assert unset and all(name.startswith("ENV_STAGING_") for name in unset)
            flows = {"ENV_STAGING_CLONE_KEY": "clone-staging-api",
                     "ENV_STAGING_LIST_KEY": "list-staging-environments",
                     "ENV_STAGING_DELETE_KEY": "delete-staging-environment"}
            for variable in unset:
                for guess in ("None", "null", "undefined", "%20", "{{ envs.staging_clone_key }}",
                              "%7B%7B%20envs.staging_clone_key%20%7D%7D", "''", "false",
                              *KEYS.values()):
                    for method in ("POST", "GET", "PUT"):
                        response = await live.client.request(
                            method, f"{WEBHOOK}/{flows[variable]}/{guess}",
                            json={"client_name": "a", "environment_name": "staging-a"})
                        assert response.status_code == 401, (variable, guess, method)
            row = await engine.store.fetchone("SELECT COUNT(*) FROM executions")
            assert row is not None and row[0] == 0
            if "staging_delete_key" in envs:  # the one key that is set works
                url = f"{WEBHOOK}/delete-staging-environment/{envs['staging_delete_key']}"
                assert (await live.client.post(url, json={"environment_name": "staging-a"})
                        ).status_code == 200
    finally:
        await engine.close()


async def test_look_alike_names_through_the_api(live: LiveServer) -> None:
    local = provider_for(live.engine)
    for keep in ("staging-x", "staging-a", "staging-keep"):
        await local.clone(CloneRequest(keep, "production"))
    before = await local.list()
    for name in LOOK_ALIKES:
        if name == "":
            continue  # that is the 400 above
        response = await live.client.post(DELETE_URL, json={"environment_name": name})
        assert response.status_code == 200, (name, response.text)
        status = await poll(live.client, "delete-staging-environment",
                            response.json()["executionId"], interval=0.02)
        assert status["state"] == "FAILED", name
        assert status["failureReason"].startswith("refusing to delete "), status
        (run,) = status["taskRunList"]
        assert run["taskId"] == "delete-environment" and run["state"] == "FAILED"
        assert run["attempts"][0]["logs"][0].startswith("ERROR: refusing to delete ")
    assert await local.list() == before


def test_running_states_are_what_the_spec_client_expects() -> None:
    from flowdeck.server.dialects.staging import reported_state

    for state in ("CREATED", "RUNNING", "SUCCESS", "FAILED", "KILLED", "WARNING",
                  "CANCELLED"):
        assert reported_state(state) == state
    for state in ("QUEUED", "RESTARTED", "SUBMITTED", "RESUBMITTED"):
        assert reported_state(state) == "CREATED"
    for state in ("RETRYING", "KILLING", "PAUSED", "BREAKPOINT", "SOMETHING_NEW"):
        assert reported_state(state) == "RUNNING"


SLOW = """
id: slow
namespace: other.ns
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT30S
"""

QUICK = """
id: quick
namespace: other.ns
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: quick-key-123
tasks:
  - id: out
    type: io.kestra.plugin.core.output.OutputValues
    values:
      answer: 42
"""


async def test_kestra_routes_keep_working(live: LiveServer, staging_engine: Engine) -> None:
    """The three-segment status route shares `/executions/...` with Kestra's routes."""
    await staging_engine.apply_flow(SLOW)
    await staging_engine.apply_flow(QUICK)
    for prefix in ("/api/v1", "/api/v1/main"):
        hook = await live.client.post(f"{prefix}/executions/webhook/other.ns/quick/quick-key-123")
        assert hook.status_code == 200 and hook.json()["namespace"] == "other.ns"
        assert hook.json()["state"]["current"] == "CREATED"  # the Kestra shape, not ours
        done = await staging_engine.wait_until_terminal(hook.json()["id"], 10)
        task_run = done.task_runs[0]
        outputs = await live.client.get(
            f"{prefix}/executions/{done.id}/taskruns/{task_run.id}/outputs")
        assert outputs.status_code == 200, outputs.text
        full = await live.client.get(f"{prefix}/executions/{done.id}")
        assert full.status_code == 200 and full.json()["state"]["current"] == "SUCCESS"
        created = await live.client.post(f"{prefix}/executions/other.ns/slow")
        assert created.status_code == 200, created.text
        slow_id = created.json()["id"]
        simple = await live.client.get(f"{prefix}/executions/other.ns/slow/{slow_id}")
        assert simple.status_code == 200
        assert simple.json()["state"] in ("CREATED", "RUNNING")
        killed = await live.client.delete(f"{prefix}/executions/{slow_id}/actions/kill")
        assert killed.status_code == 200, killed.text
        final = await staging_engine.wait_until_terminal(slow_id, 10)
        assert final.state.current == "KILLED"
        shown = await live.client.get(f"{prefix}/executions/other.ns/slow/{slow_id}")
        assert shown.json()["state"] == "KILLED"
        assert shown.json()["failureReason"] == "the execution was killed"
        labels = await live.client.post(f"{prefix}/executions/{slow_id}/labels",
                                        json=[{"key": "k", "value": "v"}])
        assert labels.status_code == 200, labels.text
        for method in ("POST", "PUT", "DELETE"):  # only GET is ours
            other = await live.client.request(method, f"{prefix}/executions/a/b/c")
            assert other.status_code in (404, 405), (method, other.text)
    # The staging webhook also answers GET, with the same compact shape.
    got = await live.client.get(LIST_URL)
    assert got.status_code == 200 and set(got.json()) == {"executionId", "state"}
    spec = (await live.client.get("/openapi.json")).json()["paths"]
    assert "/api/v1/executions/{namespace}/{flow_id}/{execution_id}" in spec
    assert f"{WEBHOOK}/clone-staging-api/{{key}}" in spec


async def test_auth_required_keeps_webhooks_open_and_status_closed(tmp_path: Path) -> None:
    engine = await open_staging_engine(tmp_path / "data")
    try:
        async with serve(engine, ServerOptions(auth_required=True)) as live:
            execution_id = await start(live, CLONE_URL, json={"client_name": "acme"})
            closed = await live.client.get(status_url("clone-staging-api", execution_id))
            assert closed.status_code == 401
            bad = await live.client.post(f"{WEBHOOK}/clone-staging-api/nope", json={})
            assert bad.status_code == 401 and bad.json()["detail"] == "invalid webhook key"
            await engine.wait_until_terminal(execution_id, 10)
    finally:
        await engine.close()
