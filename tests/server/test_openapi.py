"""/openapi.json describes the routes the server really has."""

from __future__ import annotations

from live_server import LiveServer


async def test_openapi_lists_the_kestra_routes(live: LiveServer) -> None:
    response = await live.client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    paths = spec["paths"]
    expected = {
        "/api/v1/main/flows": {"post"},
        "/api/v1/main/flows/search": {"get"},
        "/api/v1/main/executions/search": {"get"},
        "/api/v1/main/logs/{execution_id}/follow": {"get"},
        "/api/v1/configs": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
    assert any(p.endswith("/actions/kill") for p in paths)
    assert any("/kv/" in p for p in paths)
    assert any("/executions/webhook/" in p for p in paths)
    # Every documented GET path is really routed: no "no route" answer for any of them.
    import re

    for path, operations in paths.items():
        if "get" not in operations or path.endswith("/follow"):
            continue
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        answer = await live.client.get(concrete)
        assert "no route for" not in answer.text, path


async def test_openapi_declares_bodies_queries_and_errors_in_the_dialects_body(
        live: LiveServer) -> None:
    paths = (await live.client.get("/openapi.json")).json()["paths"]

    def params(path: str, method: str) -> set[str]:
        return {p["name"] for p in paths[path][method].get("parameters", [])}

    assert {"minLevel", "page", "size", "filters[level][GREATER_THAN_OR_EQUAL_TO]"} <= params(
        "/api/v1/main/logs/search", "get")
    assert {"wait", "labels"} <= params("/api/v1/main/executions/{namespace}/{flow_id}", "post")
    assert "afterSequence" in params("/api/v1/main/logs/{execution_id}", "get")
    flows = paths["/api/v1/main/flows"]["post"]
    assert "application/x-yaml" in flows["requestBody"]["content"]
    create = paths["/api/v1/main/executions/{namespace}/{flow_id}"]["post"]
    assert "multipart/form-data" in create["requestBody"]["content"]
    approve = paths["/api/v1/main/approvals/{approval_id}/approve"]["post"]
    assert "comment" in approve["requestBody"]["content"]["application/json"]["schema"][
        "properties"]
    kv = paths["/api/v1/main/namespaces/{namespace}/kv/{key}"]["put"]
    assert "text/plain" in kv["requestBody"]["content"]
    got = paths["/api/v1/main/executions/{execution_id}"]["get"]["responses"]
    for status in ("400", "401", "403", "404", "429", "500"):
        problem = got[status]["content"]["application/problem+json"]
        assert {"type", "title", "status", "detail"} <= set(problem["schema"]["properties"])
    assert {"413", "422", "409"} <= set(flows["responses"])
    assert "HTTPValidationError" not in str(flows["responses"]["422"])
    hook = paths["/api/v1/main/executions/webhook/{namespace}/{flow_id}/{key}"]["post"]
    assert "application/json" in hook["requestBody"]["content"]
