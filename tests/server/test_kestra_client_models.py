"""Every answer of the Kestra dialect, read with the models of Kestra's own Python client
(kestrapy 2.0.3, generated from Kestra's OpenAPI document). A model that refuses an answer
fails the test: kestrapy itself would only fall back to an unvalidated object there.

The document's known errata are relaxed first (`tests/compat/kestra_errata.py` names each).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import yaml

from compat import kestra_errata
from flowdeck.engine.engine import Engine
from helpers import open_engine
from live_server import start_server, stop_server
from server import openapi_check
from server.kestra_calls import NS, Call, exercise

pytest.importorskip("regex", reason="kestrapy 2.0.3 needs the undeclared 'regex' package")

def parse(model: str, body: Any) -> None:
    import kestrapy.models as models

    kestra_errata.parse(models, model, body)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def calls(tmp_path_factory: pytest.TempPathFactory) -> list[Call]:
    """One run of every operation, shared by the tests of this module."""
    engine: Engine = await open_engine(tmp_path_factory.mktemp("kestra") / "data")
    server, task, url = await start_server(engine)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            return await exercise(client, engine)
    finally:
        await stop_server(server, task)
        await engine.close()


@pytest.mark.asyncio(loop_scope="module")
async def test_every_answer_parses_with_kestrapy_models(calls: list[Call]) -> None:
    failures = []
    for call in calls:
        if call.model is None:
            continue
        try:
            parse(call.model, call.body)
        except Exception as exc:  # pydantic's ValidationError, a ValueError of a validator
            failures.append(f"{call.name} ({call.method} {call.path}) as {call.model}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert len([c for c in calls if c.model]) >= 45


@pytest.mark.asyncio(loop_scope="module")
async def test_the_answers_say_what_kestra_says(calls: list[Call]) -> None:
    by_name = {c.name: c for c in calls}
    assert by_name["search staging flows"].body["total"] == 3
    inputs = {i["id"]: i["defaults"] for i in by_name["create flow"].body["inputs"]}
    assert inputs == {"name": "world", "flag": "false", "count": "5", "ratio": "1.5",
                      "tags": '["a","b"]', "doc": '{"k":"v"}'}
    assert by_name["create flow"].body["draft"] is False
    [found] = by_name["source search"].body["results"]
    assert found["id"] == "quick"
    assert found["matches"][0]["snippet"].endswith("message: [mark]quicker[/mark]}")
    assert by_name["replace preview"].body["totalMatches"] == 1
    replaced = by_name["replace apply"].body
    assert [f["revision"] for f in replaced["updated"]] == [3]
    assert replaced["skipped"] == [{"namespace": NS, "id": "x", "reason": "NOT_FOUND"}]
    assert by_name["create again"].body["detail"] == "flow.id: Flow id already exists"
    assert by_name["validate task"].body.get("constraints") is None
    assert "cron" in by_name["validate trigger"].body["constraints"]
    assert by_name["import yaml"].body == [] and by_name["import zip"].body == []
    assert by_name["delete by ids"].body == {"count": 1}
    refused = by_name["kill finished by ids"].body
    assert refused["invalids"] == [
        {"invalidValue": by_name["create execution"].body["id"],
         "message": "execution already finished"},
        {"invalidValue": "nope", "message": "execution not found"}]
    assert by_name["labels by ids"].body == {"count": 1}
    assert by_name["unqueue"].body["state"]["current"] == "CANCELLED"
    assert by_name["force run"].body["state"]["current"] != "QUEUED"
    assert by_name["set task run state"].body["state"]["current"] == "RESTARTED"
    assert by_name["eval"].body == {"result": "hello"}
    assert {"tenantId": "main", "namespace": NS, "flowId": "slow", "running": 1} in \
        by_name["concurrency limits"].body["results"]
    updated = {f["id"]: f for f in by_name["bulk update"].body}
    assert updated["slow"]["concurrency"] == {"behavior": "QUEUE", "limit": 1}
    checked = {i["input"]["id"]: i for i in by_name["validate inputs"].body["inputs"]}
    assert checked["count"]["errors"] and checked["name"]["value"] == "Ada"
    assert by_name["validate resume"].body["inputs"][0]["value"] == "fine"
    [gate] = [i for i in by_name["triggers of a flow"].body["results"]
              if i["state"]["triggerId"] == "nightly"]
    assert gate["state"]["disabled"] is False and gate["state"]["nextEvaluationDate"]
    assert gate["triggerContext"]["triggerId"] == "nightly"
    assert by_name["get kv"].body["value"] == "hello"


#: `Allow` names every method a route serves on the path, as Micronaut does: a path that also
#: fits a templated route (`/executions/{executionId}`) names that route's methods too.
@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("PUT", "/triggers/search", "GET"),
    ("PUT", "/executions/search", "DELETE, GET"),
    ("POST", "/logs/search", "DELETE, GET"),
    ("POST", "/triggers/search", "GET"),
    ("GET", "/executions/kill/by-ids", "DELETE, POST"),
    ("PUT", "/kv", "GET"),
    ("DELETE", "/flows/bulk", "GET, POST"),
    ("PATCH", "/flows/search", "GET, POST"),
])
async def test_a_route_without_that_method_is_a_405(live: Any, method: str, path: str,
                                                    allowed: str) -> None:
    response = await live.client.request(method, "/api/v1/main" + path)
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allowed
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/method-not-allowed")


# -- Kestra's OpenAPI document -------------------------------------------------------------

SCHEMAS = yaml.safe_load((Path(__file__).parent / "kestra_openapi_subset.yml").read_text())
#: kestrapy model names → the document's schema names ("[X]" a list, "Paged[X]" a page).
DOCUMENT_NAMES = {
    "PagedResultsFlow": "Paged[Flow]", "Paged[Execution]": "Paged[ApiLightExecution]",
    "ExecutionControllerExecutionResponse": "ExecutionController.ExecutionResponse",
    "[ExecutionControllerLastExecutionResponse]": "[ExecutionController.LastExecutionResponse]",
    "CursorOrOffsetPagedResultsLogEntry": "Paged[LogEntry]",
    "PagedResultsApiTriggerAndState": "Paged[ApiTriggerAndState]",
    "KVControllerKvDetail": "KVController.KvDetail", "PagedResultsKVEntry": "Paged[KVEntry]",
    "MiscControllerEEConfiguration": "MiscController.Configuration",
    "ExecutionControllerApiValidateExecutionInputsResponse":
        "ExecutionController.ApiValidateExecutionInputsResponse",
}


@pytest.mark.asyncio(loop_scope="module")
async def test_every_answer_matches_kestras_openapi_schemas(calls: list[Call]) -> None:
    checker = openapi_check.Checker(openapi_check.relaxed(SCHEMAS))
    failures, checked = [], 0
    for call in calls:
        if call.model is None:
            continue
        name = DOCUMENT_NAMES.get(call.model, call.model)
        inner = name.strip("[]").removeprefix("Paged[")
        if inner not in SCHEMAS:
            continue
        checked += 1
        problems = checker.check(name, kestra_errata.with_state_getters(call.body))
        failures.extend(f"{call.name} as {name}: {p}" for p in problems)
    assert not failures, "\n".join(failures)
    assert checked >= 40
    # The checker does refuse: a missing required member, a wrong type, an unknown state.
    assert checker.check("Label", {"key": "k"}) == ["$: 'value' is required"]
    assert checker.check("BulkResponse", {"count": "1"}) == ["$.count: expected integer"]
    assert checker.check("State.History", {"state": "DONE", "date": "2025-01-01T00:00:00Z"})
