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
