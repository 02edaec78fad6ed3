"""Every error under `/api/v1/public` in the API's body `{message, error, statusCode}`, over real
HTTP: 400 and 422 naming what is wrong (hostile bodies included), 401 "Invalid API key" for
every way of not having one, 403 with the four documented reasons (and a key limited to other
workflows), 404, 405, 413, 500, and paths nothing serves; Kestra's paths keep problem+json, and
neither API's credentials open the other."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flowdeck.core.clock import ManualClock
from flowdeck.engine.keys import TokenStore
from flowdeck.server.app import ServerOptions
from public.http_support import API, bearer, error_body, public_server
from public.support import AGENT, QUICK, customers

#: Enough room for every call of one test (the rate limit has its own tests).
ROOMY = ServerOptions(extra={"public_rate_burst": 1000})


async def test_401_for_every_way_of_not_having_a_key(tmp_path: Path) -> None:
    async with public_server(tmp_path, options=ROOMY) as api:
        secret = await api.key()
        kestra_token = (await TokenStore(api.engine.store, api.engine.clock).create(
            "admin", "ops"))[1]
        path = f"{API}/agents/{AGENT}/execute"
        headers: dict[str, Any]
        for headers in ({}, {"Authorization": ""}, {"Authorization": "Bearer"},
                        {"Authorization": f"Basic {secret}"},
                        {"Authorization": f"Token {secret}"},
                        bearer(secret[:-1]), bearer(secret + "0"), bearer("0" * 64),
                        bearer(kestra_token), {"Authorization": b"Bearer " + b"\xff" * 64}):
            answer = await api.client.post(path, headers=headers, json={})
            assert error_body(answer, 401) == "Invalid API key", headers
            assert answer.headers["www-authenticate"].startswith("Bearer")
        # upper case is the same key; the route then answers for it
        upper = await api.client.post(path, headers=bearer(secret.upper()),
                                      json={"input": {"csvData": customers(1)}})
        assert upper.status_code == 202, upper.text
        # a public key opens nothing of Kestra's API (auth is off on loopback, so ask a
        # server that requires it)
    async with public_server(tmp_path / "auth", options=ServerOptions(
            auth_required=True)) as api:
        secret = await api.key()
        refused = await api.client.get("/api/v1/main/flows/agents/" + AGENT,
                                       headers=bearer(secret))
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"


async def test_403_with_the_four_documented_reasons(tmp_path: Path) -> None:
    clock = ManualClock()
    async with public_server(tmp_path, clock=clock, options=ROOMY) as api:
        path = f"{API}/agents/{AGENT}/execute"
        body = {"input": {"csvData": customers(1)}}

        revoked = await api.engine.public.create_key("old")
        await api.engine.public.revoke_key(revoked.key.id)
        answer = await api.client.post(path, headers=bearer(revoked.secret), json=body)
        assert error_body(answer, 403) == "API key is inactive"

        expiring = await api.key("brief", expires_in=timedelta(hours=1))
        assert (await api.client.post(path, headers=bearer(expiring), json=body)
                ).status_code == 202
        clock.advance(timedelta(hours=2))
        answer = await api.client.post(path, headers=bearer(expiring), json=body)
        assert error_body(answer, 403) == "API key has expired"

        once = await api.key("once", usage_limit=1)
        assert (await api.client.post(path, headers=bearer(once), json=body)
                ).status_code == 202
        answer = await api.client.post(path, headers=bearer(once), json=body)
        assert error_body(answer, 403) == "API key usage limit exceeded"

        await api.engine.apply_flow(QUICK.replace("id: quick", "id: quick\ndisabled: true"))
        secret = await api.key()
        answer = await api.client.post(f"{API}/agents/quick/execute", headers=bearer(secret),
                                       json={})
        assert error_body(answer, 403) == "Workflow is inactive"

        narrow = await api.key("narrow", workflows=["quick"])
        answer = await api.client.post(path, headers=bearer(narrow), json=body)
        assert "may not execute workflow" in error_body(answer, 403)

        # an inactive key may not read its executions either
        started = await api.engine.public.create_key("reader")
        created = await api.client.post(path, headers=bearer(started.secret), json=body)
        execution_id = created.json()["executionId"]
        await api.engine.public.revoke_key(started.key.id)
        answer = await api.client.get(f"{API}/executions/{execution_id}/status",
                                      headers=bearer(started.secret))
        assert error_body(answer, 403) == "API key is inactive"


@pytest.mark.parametrize(("content", "wanted"), [
    (b"{", "Request body is not valid JSON"),
    (b"[1, 2]", "Request body must be a JSON object"),
    (b'"text"', "Request body must be a JSON object"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[" * 100_000, "Request body is not valid JSON"),
    (b'{"input": {"csvData": ' + b"9" * 5000 + b"}}", "a number is too long"),
])
async def test_400_for_a_body_that_is_not_a_json_object(tmp_path: Path, content: bytes,
                                                        wanted: str) -> None:
    async with public_server(tmp_path) as api:
        secret = await api.key()
        answer = await api.client.post(f"{API}/agents/{AGENT}/execute", content=content,
                                       headers={**bearer(secret),
                                                "Content-Type": "application/json"})
        assert wanted in error_body(answer, 400)


async def test_422_names_the_field(tmp_path: Path) -> None:
    cases: list[tuple[str, Any, str]] = [
        ("execute", {"input": 3}, "input: must be an object"),
        ("execute", {"input": {"csvData": customers(1)}, "description": 7},
         "description: must be text"),
        ("execute", {"input": {"csvData": customers(1)}, "description": "x" * 2001},
         "description: at most 2000 characters"),
        ("execute", {"input": {"csvData": [{"name": "\ud800"}]}},
         "input.csvData[0].name: is not valid text"),
        ("execute", {"input": {"csvData": "not rows"}}, "input.csvData: invalid JSON"),
        ("approve", {"comment": ["a"]}, "comment: must be text"),
        ("reject", {"comment": "x" * 5001}, "comment: at most 5000 characters"),
    ]
    async with public_server(tmp_path, options=ROOMY) as api:
        secret = await api.key()
        started = await api.client.post(f"{API}/agents/{AGENT}/execute", headers=bearer(secret),
                                        json={"input": {"csvData": customers(1)}})
        execution_id = started.json()["executionId"]
        for action, body, wanted in cases:
            path = (f"{API}/agents/{AGENT}/execute" if action == "execute"
                    else f"{API}/executions/{execution_id}/{action}")
            answer = await api.client.post(path, content=json.dumps(body).encode(), headers={
                **bearer(secret), "Content-Type": "application/json"})  # \ud800 escaped
            assert wanted in error_body(answer, 422), (action, body)
        nan = await api.client.post(f"{API}/agents/{AGENT}/execute", headers={
            **bearer(secret), "Content-Type": "application/json"},
            content=b'{"input": {"csvData": [{"age": NaN}]}}')
        assert "input.csvData[0].age: must be a finite number" in error_body(nan, 422)


async def test_404_405_413_500_and_unrouted_paths(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    options = ServerOptions(max_body_bytes=4096, extra={"public_rate_burst": 1000})
    async with public_server(tmp_path, options=options) as api:
        secret = await api.key()
        headers = bearer(secret)
        answer = await api.client.post(f"{API}/agents/no_such_agent/execute", headers=headers)
        assert error_body(answer, 404) == "Workflow not found"
        answer = await api.client.get(f"{API}/executions/0193a7e4-0000-7000-8000-000000000000"
                                      "/results", headers=headers)
        assert error_body(answer, 404) == "Execution not found"
        for path in (f"{API}/nowhere", f"{API}/agents/{AGENT}", f"{API}/executions/x/y/z",
                     API, f"{API}/"):
            assert error_body(await api.client.get(path, headers=headers), 404)
            assert error_body(await api.client.get(path), 401) == "Invalid API key"
        answer = await api.client.put(f"{API}/executions/x/status", headers=headers)
        error_body(answer, 405)
        assert "GET" in answer.headers["allow"]
        error_body(await api.client.get(f"{API}/agents/{AGENT}/execute", headers=headers), 405)
        error_body(await api.client.delete(f"{API}/executions/x/approve", headers=headers), 405)
        big = await api.client.post(f"{API}/agents/{AGENT}/execute", headers=headers,
                                    json={"input": {"csvData": customers(100)}})
        assert "larger than the 4096 bytes limit" in error_body(big, 413)

        async def broken(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("disk on fire")  # a fault injected below the route

        monkeypatch.setattr(api.engine.public, "status", broken)
        answer = await api.client.get(f"{API}/executions/x/status", headers=headers)
        message = error_body(answer, 500)
        assert "disk on fire" not in message and "unexpected" in message

        # Kestra's own paths keep their problem+json
        kestra = await api.client.get("/api/v1/main/flows/agents/none")
        assert kestra.status_code == 404
        assert kestra.headers["content-type"] == "application/problem+json"
