"""Every error under `/v1` in the document's body, from wherever it comes: the auth layer
(401 without or with a bad token, Basic refused), roles (403), unrouted paths (404), methods
(405), the body limit (413), the rate limit (429 with Retry-After), hostile input (400), and a
bug (500), while Kestra's paths keep problem+json."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path

from fastapi import APIRouter

from flowdeck.server.access import VIEWER
from flowdeck.server.app import ServerOptions
from flowdeck.server.dialect import ApiError, DialectContext, Routes
from flowdeck.server.dialects import DEFAULT_DIALECTS, forge
from forge.api_support import SHA, error_of, forge_api, install


async def test_authentication_and_roles(tmp_path: Path) -> None:
    async with forge_api(tmp_path) as api:
        for headers in ({}, {"Authorization": "Bearer " + "0" * 64},
                        {"Authorization": "Bearer"}, {"Authorization": "Token abc"}):
            answer = await api.client.get("/v1/runs?repository=acme/shop", headers=headers)
            error_of(answer, 401, "authentication_failed")
            assert answer.headers["www-authenticate"] == 'Bearer realm="forge"'
        basic = base64.b64encode(b"admin:secret").decode()
        error_of(await api.client.get("/v1/projects", headers={
            "Authorization": f"Basic {basic}"}), 401, "authentication_failed")
        # unrouted: who asks first, then what is there
        error_of(await api.client.get("/v1/nowhere"), 401, "authentication_failed")
        missing = await api.call("GET", "/v1/nowhere", "vic")
        assert "no route" in error_of(missing, 404, "resource_not_found")["message"]
        refused = await api.call("POST", "/v1/releases", "vic", json={})
        assert "'operator'" in error_of(refused, 403, "authorization_failed")["message"]
        not_allowed = await api.call("PATCH", "/v1/runs", "vic")
        error = error_of(not_allowed, 405, "invalid_request")
        assert set(error["details"]["allowed_methods"]) <= {"GET", "POST"}
        assert error["details"]["allowed_methods"]
        # Kestra's API beside it keeps its own errors
        kestra = await api.client.get("/api/v1/main/flows/search")
        assert kestra.status_code == 401
        assert kestra.headers["content-type"] == "application/problem+json"


async def test_hostile_input_is_a_400_naming_the_field(tmp_path: Path) -> None:
    async with forge_api(tmp_path) as api:
        await install(api.engine)
        cases = {
            b'{"repository": "acme/shop", "branch": "main", "commit_sha": "\\ud800abc"}':
                "commit_sha",
            b'{"repository": "acme/shop", "branch": 12345678901234567890123, '
            b'"commit_sha": "abc1234"}': "branch",
            b'[' * 100_000 + b']' * 100_000: "body",
            b'\xff\xfe not utf-8': "body",
            b'"a string"': "body",
            b'{"repository": "../../etc", "branch": "main", "commit_sha": "abc1234"}':
                "repository",
            b'{"repository": "acme/shop", "branch": "ma..in", "commit_sha": "abc1234"}':
                "branch",
            b'{"repository": "acme/shop", "branch": "main", "commit_sha": "abc1234", '
            b'"trigger_type": "cron"}': "trigger_type",
        }
        for raw, field in cases.items():
            answer = await api.call("POST", "/v1/runs", content=raw,
                                    headers={"Content-Type": "application/json"})
            error = error_of(answer, 400, "invalid_request")
            assert error["details"]["field"] == field, (raw[:60], error)
            assert field in error["message"]
        for query, field in (("limit=0", "limit"), ("limit=99999999999999", "limit"),
                             ("offset=-1", "offset"), ("limit=1e3", "limit")):
            answer = await api.call("GET", f"/v1/releases/acme/shop/api?{query}")
            assert error_of(answer, 400, "invalid_request")["details"]["field"] == field
        huge = await api.call("POST", "/v1/releases", json={
            "repository": "acme/shop", "project": "api", "commit_sha": SHA,
            "artifacts": [{"name": "x", "type": "container"}] * 101})
        assert error_of(huge, 400, "invalid_request")["details"]["field"] == "artifacts"


async def test_body_limit_and_rate_limit(tmp_path: Path) -> None:
    async with forge_api(tmp_path, extra={"forge_rate_limit": 5},
                         max_body_bytes=64 * 1024) as api:
        big = await api.call("POST", "/v1/releases", "bob", content=b"x" * (64 * 1024 + 1),
                             headers={"Content-Type": "application/json"})
        assert "limit" in error_of(big, 413, "invalid_request")["message"]
        answers = [await api.call("GET", "/v1/projects", "vic") for _ in range(6)]
        assert [a.status_code for a in answers] == [200] * 5 + [429]
        error = error_of(answers[-1], 429, "rate_limit_exceeded")
        retry = int(answers[-1].headers["retry-after"])
        assert 1 <= retry <= 60 and error["details"]["retry_after_seconds"] == retry
        assert answers[0].headers["x-ratelimit-limit"] == "5"
        # per caller: another token still has its own allowance
        assert (await api.call("GET", "/v1/projects", "carol")).status_code == 200


def test_the_documents_limit_is_1000_a_minute_per_caller() -> None:
    policy = forge.rate_limit(ServerOptions())
    assert policy.key == "user"
    limiter = policy.limiter
    assert (limiter.limit, limiter.window_s) == (1000, 60.0)  # type: ignore[attr-defined]


def boom_routes(context: DialectContext) -> list[Routes]:
    router = APIRouter()

    @router.get("/v1/boom", dependencies=VIEWER)
    async def boom() -> None:
        raise RuntimeError("a bug with a secret inside")

    return [*forge.routes(context), Routes(router)]


async def test_a_bug_is_a_500_internal_error_without_details(tmp_path: Path) -> None:
    buggy = dataclasses.replace(forge.DIALECT, routes=boom_routes)
    dialects = [d for d in DEFAULT_DIALECTS if d.name != "forge"] + [buggy]
    async with forge_api(tmp_path, dialects=dialects) as api:
        answer = await api.call("GET", "/v1/boom", "vic")
        error = error_of(answer, 500, "internal_error")
        assert "secret" not in answer.text and error["details"] == {}


def test_the_renderer_maps_each_status_to_the_documents_code() -> None:
    from flowdeck.server.dialects.forge.errors import render

    expected = {400: "invalid_request", 401: "authentication_failed",
                403: "authorization_failed", 404: "resource_not_found",
                409: "resource_conflict", 422: "invalid_request", 429: "rate_limit_exceeded",
                500: "internal_error", 503: "internal_error"}
    for status, code in expected.items():
        response = render(ApiError(status, "why", "/v1/x", (("field", "bad"),)))
        assert response.status_code == (400 if status == 422 else status)
        assert code in bytes(response.body).decode()
