"""Authentication, authorization and request limits over a real loopback uvicorn server.

Every test drives `create_app` through `live_server.start_server` with real credentials: an
argon2id hash made by the same code `flowdeck passwd` uses, and API tokens stored by the
engine's token store. Only the password verifier is wrapped, to *count* argon2 computations
(it still verifies for real). Nothing may print a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import sqlite3
import statistics
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdeck.engine.engine import Engine
from flowdeck.engine.keys import Role, TokenStore
from flowdeck.engine.query import ExecutionQuery
from flowdeck.server import auth
from flowdeck.server.access import Access
from flowdeck.server.app import ServerOptions, create_app
from helpers import apply, open_engine, run_flow, wait_for_state
from live_server import start_server, stop_server

API = "/api/v1/main"
USER = "admin@example.com"
PASSWORD = "correct horse battery staple"
PASSWORD_HASH = auth.hash_password(PASSWORD)
CHALLENGE = 'Basic realm="Kestra"'
PROBLEM = "application/problem+json"
MIB = 1024 * 1024
HOOK_KEY = "hook-key-0123456789abcdef"

HELLO = """
id: hello
namespace: auth.test
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: hi
"""

HOOKED = f"""
id: hooked
namespace: auth.test
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: {HOOK_KEY}
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.body }}}}"
"""

GATED = """
id: gated
namespace: auth.test
tasks:
  - id: gate
    type: flowdeck.approval.Request
    title: Ship it?
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: shipped
"""

PAUSING = """
id: pausing
namespace: auth.test
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: resumed
"""

# A flow in a namespace literally named `webhook`: Kestra 2.0's open-URL bypass.
IN_WEBHOOK_NS = """
id: x
namespace: webhook
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: inside the webhook namespace
"""


@dataclass
class Live:
    engine: Engine
    url: str
    client: httpx.AsyncClient
    app: Any


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, name: str = "data", **options: Any) -> AsyncIterator[Live]:
    engine = await open_engine(tmp_path / name)
    server, task, url = await start_server(engine, ServerOptions(**options))
    client = httpx.AsyncClient(base_url=url, timeout=30)
    try:
        yield Live(engine, url, client, server.config.app)
    finally:
        await client.aclose()
        await stop_server(server, task)
        await engine.close()


def basic(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def with_basic(**extra: Any) -> dict[str, Any]:
    return {"basic_username": USER, "basic_password_hash": PASSWORD_HASH, **extra}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"].startswith("https://")
    assert body["title"] and body["detail"] and body["message"]
    assert "Traceback" not in response.text
    return body


def assert_unauthenticated(response: httpx.Response) -> dict[str, Any]:
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == CHALLENGE
    assert body["type"].endswith("/unauthenticated")
    return body


@pytest.fixture(autouse=True)
def no_tracebacks(capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    yield
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err, out + err


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every argon2 verification the server runs (still computed for real)."""
    calls: list[str] = []
    real = auth.verify_password

    def counting(encoded: str, password: str) -> bool:
        calls.append(encoded)
        return real(encoded, password)

    monkeypatch.setattr(auth, "verify_password", counting)
    return calls


# -- auth off / Basic ----------------------------------------------------------------------------


async def test_auth_is_off_on_loopback_without_credentials(tmp_path: Path) -> None:
    async with serving(tmp_path) as live:
        assert live.app.state.auth.required is False
        created = await live.client.post(f"{API}/flows", content=HELLO,
                                         headers={"Content-Type": "application/x-yaml"})
        assert created.status_code == 200, created.text
        listed = await live.client.get(f"{API}/flows/search")
        assert listed.status_code == 200 and listed.json()["total"] == 1
        assert "www-authenticate" not in listed.headers
        # A stray credential is not looked at when auth is off.
        assert (await live.client.get("/api/v1/configs", headers=basic(password="x"))
                ).status_code == 200


async def test_a_network_host_without_credentials_fails_closed(tmp_path: Path) -> None:
    # `serve` refuses this outright; an app built for such a host anyway lets no one in.
    async with serving(tmp_path, host="0.0.0.0") as live:
        assert live.app.state.auth.required is True
        assert_unauthenticated(await live.client.get(f"{API}/flows/search"))
        assert_unauthenticated(await live.client.get(f"{API}/flows/search", headers=basic()))


async def test_basic_auth(tmp_path: Path, verifications: list[str]) -> None:
    async with serving(tmp_path, **with_basic()) as live:
        for path in (f"{API}/flows/search", "/api/v1/flows/search", "/api/v1/configs",
                     "/health", "/openapi.json", f"{API}/no/such/route"):
            body = assert_unauthenticated(await live.client.get(path))
            assert body["instance"] == path
        assert verifications == []  # no credentials, nothing hashed

        wrong = await live.client.get(f"{API}/flows/search", headers=basic(password="nope"))
        unknown = await live.client.get(f"{API}/flows/search", headers=basic(user="eve@x.io"))
        assert_unauthenticated(wrong)
        assert_unauthenticated(unknown)
        # Unknown user and wrong password are indistinguishable, and both cost one argon2
        # verification (a dummy one for the unknown user, with the same parameters).
        assert wrong.content == unknown.content
        assert len(verifications) == 2 and verifications[0] == PASSWORD_HASH
        assert verifications[1] != PASSWORD_HASH
        assert verifications[1].split("$")[3] == PASSWORD_HASH.split("$")[3]  # m, t, p

        for header in ("Basic", "Basic !!!notbase64", "Basic " + base64.b64encode(b"nocolon")
                       .decode(), "Digest x", "Token abc"):
            assert_unauthenticated(await live.client.get(
                f"{API}/flows/search", headers={"Authorization": header}))

        ok = await live.client.get(f"{API}/flows/search", headers=basic())
        assert ok.status_code == 200 and ok.json() == {"results": [], "total": 0}
        created = await live.client.post(f"{API}/flows", content=HELLO, headers={
            **basic(), "Content-Type": "application/x-yaml"})
        assert created.status_code == 200, created.text
        assert (await live.client.get(f"{API}/no/such/route", headers=basic())
                ).status_code == 404


async def test_a_verified_basic_header_is_cached(tmp_path: Path,
                                                 verifications: list[str]) -> None:
    async with serving(tmp_path, **with_basic()) as live:
        assert (await live.client.get("/api/v1/configs", headers=basic())).status_code == 200
        assert len(verifications) == 1
        timings = []
        for _ in range(30):
            started = time.perf_counter()
            response = await live.client.get("/api/v1/configs", headers=basic())
            timings.append(time.perf_counter() - started)
            assert response.status_code == 200
        assert len(verifications) == 1  # every later request hit the cache
        # A verification alone takes ~25 ms; a cached request is a plain loopback round trip.
        assert statistics.median(timings) < 0.015, timings
        # A different header (wrong password) is not served from the cache.
        assert_unauthenticated(await live.client.get("/api/v1/configs",
                                                     headers=basic(password="other")))
        assert len(verifications) == 2


# -- open routes ---------------------------------------------------------------------------------


async def test_webhooks_and_ping_are_open_but_only_on_their_exact_routes(
        tmp_path: Path, verifications: list[str]) -> None:
    async with serving(tmp_path, **with_basic()) as live:
        await apply(live.engine, HOOKED)
        await apply(live.engine, IN_WEBHOOK_NS)
        ping = await live.client.get("/ping")
        assert ping.status_code == 200 and ping.text == "pong"
        for prefix in (API, "/api/v1"):
            hook = await live.client.post(f"{prefix}/executions/webhook/auth.test/hooked/"
                                          f"{HOOK_KEY}", json={"n": 1})
            assert hook.status_code == 200, hook.text
            assert hook.json()["flowId"] == "hooked"
            extra = await live.client.get(f"{prefix}/executions/webhook/auth.test/hooked/"
                                          f"{HOOK_KEY}/some/sub/path")
            assert extra.status_code == 200, extra.text
            # A wrong key is the webhook's own refusal, not the login challenge.
            refused = await live.client.post(f"{prefix}/executions/webhook/auth.test/hooked/"
                                             "wrong-key")
            assert refused.status_code == 401 and "www-authenticate" not in refused.headers

        # The namespace `webhook` exposes nothing: each of these needs credentials.
        bypasses = [
            ("GET", f"{API}/flows/webhook/x"),
            ("GET", f"{API}/flows/webhook"),
            ("POST", f"{API}/executions/webhook/x"),  # create an execution of webhook.x
            ("POST", "/api/v1/executions/webhook/x"),
            ("GET", f"{API}/executions/webhook"),
            ("DELETE", f"{API}/executions/webhook/auth.test/hooked/{HOOK_KEY}"),
            ("GET", f"{API}/namespaces/webhook/kv"),
            ("GET", f"{API}/executions/search?namespace=webhook"),
            ("GET", "/pingx"),
            ("GET", "/ping/"),
            ("POST", "/ping"),
            ("GET", f"{API}/x/executions/webhook/auth.test/hooked/{HOOK_KEY}"),
        ]
        for method, path in bypasses:
            refused = await live.client.request(method, path)
            assert_unauthenticated(refused)
            assert HOOK_KEY not in refused.text  # error bodies never echo a webhook key
        assert verifications == []
        executions = (await live.client.get(
            f"{API}/executions/search?filters[namespace][EQUALS]=webhook", headers=basic()))
        assert executions.json()["total"] == 0
        # With credentials the same URL is what it looks like: a create in namespace webhook.
        created = await live.client.post(f"{API}/executions/webhook/x", headers=basic())
        assert created.status_code == 200, created.text
        assert created.json()["namespace"] == "webhook"


async def test_a_route_shadowing_the_webhook_shape_is_still_refused(tmp_path: Path) -> None:
    """The second line: a request let in as open must reach an open endpoint."""
    async with serving(tmp_path, **with_basic()) as live:
        @live.app.get(f"{API}/executions/{{ns}}/{{a}}/{{b}}/{{c}}")
        async def shadow(ns: str, a: str, b: str, c: str) -> dict[str, str]:
            return {"leaked": "yes"}

        routes = live.app.router.routes
        routes.insert(0, routes.pop())
        response = await live.client.get(f"{API}/executions/webhook/a/b/c")
        assert_unauthenticated(response)
        assert "leaked" not in response.text
        # It fails closed: credentials are never looked at on an open-shaped path.
        assert_unauthenticated(await live.client.get(f"{API}/executions/webhook/a/b/c",
                                                     headers=basic()))


async def test_route_rules(tmp_path: Path) -> None:
    """What each route declares, read from the app the way the router matches requests."""
    engine = await open_engine(tmp_path / "data")
    try:
        app = create_app(engine)
        host = app.state.host

        def rules(method: str, path: str) -> tuple[Access, ...]:
            route = host.route_for(app, method, path)
            return host.declared(route) if route is not None else ()

        def is_open(method: str, path: str) -> bool:
            return any(rule.open for rule in rules(method, path))

        def required_role(method: str, path: str) -> str:
            needed = [min(rule.roles, key=list(Role).index) for rule in rules(method, path)]
            return str(max(needed, key=list(Role).index))

        assert is_open("GET", "/ping") and is_open("HEAD", "/ping")
        assert is_open("PUT", "/api/v1/executions/webhook/ns/flow/key")
        assert is_open("POST", "/api/v1/main/executions/webhook/ns/flow/key/a/b")
        assert not is_open("DELETE", "/api/v1/main/executions/webhook/ns/flow/key")
        assert not is_open("POST", "/api/v1/main/executions/webhook/ns/flow")
        assert not is_open("POST", "/api/v1/main/executions/webhook/ns/flow/")
        assert not is_open("GET", "/api/v1/other/executions/webhook/ns/flow/key")
        assert not is_open("GET", "/x/api/v1/executions/webhook/ns/flow/key")
        assert required_role("GET", f"{API}/executions/search") == "viewer"
        assert required_role("GET", f"{API}/flows/a/b") == "viewer"
        for method, path in [("POST", f"{API}/executions/ns/f"), ("DELETE", f"{API}/flows/a/b"),
                             ("POST", f"{API}/executions/1/actions/restart"),
                             ("PUT", f"{API}/namespaces/n/kv/k"),
                             ("DELETE", "/api/v1/executions/1/kill")]:
            assert required_role(method, path) == "operator", path
        assert required_role("POST", f"{API}/approvals/1/approve") == "approver"
        assert required_role("GET", f"{API}/approvals") == "viewer"
        assert required_role("GET", "/api/v1/tokens") == "admin"
        assert required_role("DELETE", f"{API}/tokens/1") == "admin"
    finally:
        await engine.close()
    assert auth.is_loopback("127.0.0.1") and auth.is_loopback("127.8.9.10")
    assert auth.is_loopback("::1") and auth.is_loopback("[::1]")
    assert auth.is_loopback("localhost") and auth.is_loopback("LOCALHOST")
    for host_name in ("0.0.0.0", "::", "192.168.1.4", "10.0.0.1", "example.com",
                      "localhost.evil"):
        assert not auth.is_loopback(host_name), host_name


# -- bearer tokens -------------------------------------------------------------------------------


async def test_bearer_tokens_and_roles(tmp_path: Path, verifications: list[str]) -> None:
    async with serving(tmp_path, auth_required=True) as live:
        tokens = TokenStore(live.engine.store, live.engine.clock)
        secrets = {}
        for role in ("viewer", "operator", "approver", "admin"):
            _, secret = await tokens.create(role, name=f"{role}-bot")
            assert len(secret) == 64 and int(secret, 16) >= 0
            secrets[role] = secret
        await apply(live.engine, HELLO)
        execution = await run_flow(live.engine, "auth.test", "hello")

        for role, secret in secrets.items():
            h = bearer(secret)
            assert (await live.client.get(f"{API}/flows/search", headers=h)).status_code == 200
            assert (await live.client.get(f"{API}/executions/{execution.id}", headers=h)
                    ).status_code == 200
            create = await live.client.post(f"{API}/executions/auth.test/hello", headers=h)
            labels = await live.client.post(f"{API}/executions/{execution.id}/actions/labels",
                                            json=[{"key": "by", "value": role}], headers=h)
            tokens_route = await live.client.get(f"{API}/tokens", headers=h)
            if role == "viewer":
                for refused in (create, labels):
                    body = assert_problem(refused, 403)
                    assert body["type"].endswith("/forbidden")
                    assert "viewer" in body["detail"] and "operator" in body["detail"]
            else:
                assert create.status_code == 200, create.text
                assert labels.status_code == 200, labels.text
            if role == "admin":
                assert tokens_route.status_code == 404  # allowed; no such route yet
            else:
                assert_problem(tokens_route, 403)

        viewer = await tokens.get((await tokens.list_all())[0].id)
        assert viewer.role == "viewer" and viewer.last_used_at is not None

        # Revoked, expired, unknown and malformed all get the same 401.
        revoked, revoked_secret = await tokens.create("admin", name="gone")
        assert (await live.client.get(f"{API}/flows/search", headers=bearer(revoked_secret))
                ).status_code == 200
        await tokens.revoke(revoked.id)
        _, expired_secret = await tokens.create("admin", expires_in=timedelta(milliseconds=1))
        await asyncio.sleep(0.01)
        answers = [await live.client.get(f"{API}/flows/search", headers=bearer(s)) for s in (
            revoked_secret, expired_secret, "f" * 64, secrets["admin"][:63],
            secrets["admin"].upper(), "not-hex-" * 8, "x")]
        for answer in answers:
            assert_unauthenticated(answer)
        assert len({a.content for a in answers[:-1]}) == 1
        assert verifications == []  # tokens never touch argon2

        # The database holds digests and 8-character prefixes, never a secret.
        with sqlite3.connect(live.engine.data_dir / "flowdeck.db") as conn:
            dump = "\n".join(conn.iterdump())
            rows = conn.execute("SELECT sha256, prefix FROM api_tokens").fetchall()
        for secret in [*secrets.values(), revoked_secret, expired_secret]:
            assert secret not in dump
            assert (hashlib.sha256(secret.encode()).hexdigest(), secret[:8]) in rows


async def test_resuming_past_an_approval_needs_the_approver_role(tmp_path: Path) -> None:
    async with serving(tmp_path, auth_required=True) as live:
        tokens = TokenStore(live.engine.store, live.engine.clock)
        _, operator = await tokens.create("operator")
        _, approver = await tokens.create("approver", name="release-manager")
        await apply(live.engine, GATED)
        await apply(live.engine, PAUSING)
        gated = await live.engine.create_execution("auth.test", "gated")
        paused = await live.engine.create_execution("auth.test", "pausing")
        for execution in (gated, paused):
            await wait_for_state(live.engine, execution.id, "PAUSED")

        for path in (f"{API}/executions/{gated.id}/actions/resume",
                     f"/api/v1/executions/{gated.id}/resume"):
            refused = await live.client.post(path, headers=bearer(operator))
            assert "approver" in assert_problem(refused, 403)["detail"]
        assert [a.status for a in await live.engine.approvals.list(
            None, execution_id=gated.id)] == ["pending"]
        # A plain pause is an operator's to resume.
        resumed = await live.client.post(f"{API}/executions/{paused.id}/actions/resume",
                                         headers=bearer(operator))
        assert resumed.status_code == 200, resumed.text
        approved = await live.client.post(f"{API}/executions/{gated.id}/actions/resume",
                                          headers=bearer(approver))
        assert approved.status_code == 200, approved.text
        (decision,) = await live.engine.approvals.list(None, execution_id=gated.id)
        assert decision.status == "approved"
        # On the approvals API: operators may look, approvers decide, as the token's name.
        again = await live.engine.create_execution("auth.test", "gated")
        await wait_for_state(live.engine, again.id, "PAUSED")
        (pending,) = await live.engine.approvals.list("pending", execution_id=again.id)
        listed = await live.client.get(f"{API}/approvals", headers=bearer(operator))
        assert [a["id"] for a in listed.json()] == [pending.id]
        assert_problem(await live.client.post(f"{API}/approvals/{pending.id}/approve",
                                              headers=bearer(operator)), 403)
        decided = await live.client.post(f"{API}/approvals/{pending.id}/approve",
                                         json={"decidedBy": "someone-else"},
                                         headers=bearer(approver))
        assert decided.status_code == 200, decided.text
        assert (await live.engine.approvals.get(pending.id)).decided_by == "release-manager"


# -- brute force ---------------------------------------------------------------------------------


async def make_token(live: Live, role: Role = Role.VIEWER) -> str:
    tokens = TokenStore(live.engine.store, live.engine.clock)
    _, secret = await tokens.create(role.value, "ci")
    return secret


async def test_ten_failures_lock_that_user_out_from_that_address_before_any_hashing(
        tmp_path: Path, verifications: list[str]) -> None:
    async with serving(tmp_path, **with_basic()) as live:
        token = await make_token(live)
        for _ in range(10):
            assert_unauthenticated(await live.client.get(f"{API}/flows/search",
                                                         headers=basic(password="guess")))
        assert len(verifications) == 10
        started = time.perf_counter()
        for headers in (basic(password="guess"), basic()):
            locked = await live.client.get(f"{API}/flows/search", headers=headers)
            body = assert_problem(locked, 429)
            assert body["type"].endswith("/too-many-requests")
            assert 1790 <= int(locked.headers["retry-after"]) <= 1800
        assert time.perf_counter() - started < 0.5
        assert len(verifications) == 10  # the right password too: refused without hashing
        # Everyone else from the same address goes on: a valid token, another user name (a
        # wrong one here, so a 401), a request without credentials, open routes.
        assert (await live.client.get(f"{API}/flows/search",
                                      headers=bearer(token))).status_code == 200
        assert_unauthenticated(await live.client.get(
            f"{API}/flows/search", headers=basic(user="someone-else", password="x")))
        assert_unauthenticated(await live.client.get(f"{API}/flows/search"))
        assert (await live.client.get("/ping")).status_code == 200


async def test_a_verified_user_is_let_through_while_a_guesser_is_locked_out(
        tmp_path: Path, verifications: list[str]) -> None:
    async with serving(tmp_path, **with_basic()) as live:
        assert (await live.client.get(f"{API}/flows/search", headers=basic())).status_code == 200
        for _ in range(12):  # a guesser of the same user, from the same address (a proxy)
            await live.client.get(f"{API}/flows/search", headers=basic(password="guess"))
        assert_problem(await live.client.get(f"{API}/flows/search",
                                             headers=basic(password="guess")), 429)
        # The user whose header was verified lately goes on, without hashing again.
        before = len(verifications)
        ok = await live.client.get(f"{API}/flows/search", headers=basic())
        assert ok.status_code == 200, ok.text
        assert len(verifications) == before


async def test_rotating_user_names_runs_into_the_address_budget(tmp_path: Path) -> None:
    options = with_basic(extra={"auth_max_failures": 2})
    async with serving(tmp_path, **options) as live:
        token = await make_token(live)
        statuses = [(await live.client.get(
            f"{API}/flows/search", headers=basic(user=f"user{i}", password="x"))).status_code
            for i in range(25)]
        assert statuses[:20] == [401] * 20  # 2 x 10 failures across names
        assert set(statuses[20:]) == {429}
        assert (await live.client.get(f"{API}/flows/search",
                                      headers=bearer(token))).status_code == 200


async def test_the_lockout_ends_and_token_failures_count_per_prefix(tmp_path: Path) -> None:
    options = with_basic(extra={"auth_max_failures": 3, "auth_lockout": 0.5})
    async with serving(tmp_path, **options) as live:
        token = await make_token(live)
        for _ in range(3):
            assert_unauthenticated(await live.client.get("/api/v1/configs",
                                                         headers=bearer("b" * 64)))
        assert_problem(await live.client.get("/api/v1/configs", headers=bearer("b" * 64)), 429)
        assert_unauthenticated(await live.client.get("/api/v1/configs",
                                                     headers=bearer("c" * 64)))
        assert (await live.client.get("/api/v1/configs", headers=bearer(token))).status_code \
            == 200
        for _ in range(3):
            await live.client.get("/api/v1/configs", headers=basic(password="guess"))
        assert (await live.client.get("/api/v1/configs", headers=basic())).status_code == 429
        await asyncio.sleep(0.6)
        assert (await live.client.get("/api/v1/configs", headers=basic())).status_code == 200
        assert (await live.client.get("/api/v1/configs",
                                      headers=bearer("b" * 64))).status_code == 401


async def test_x_forwarded_for_is_believed_only_from_trusted_proxies(tmp_path: Path) -> None:
    options = with_basic(extra={"auth_max_failures": 2}, trusted_proxies=("127.0.0.2",))
    async with serving(tmp_path, **options) as live:
        port = int(live.url.rsplit(":", 1)[1])
        async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}",
                transport=httpx.AsyncHTTPTransport(local_address="127.0.0.2")) as proxy:
            for _ in range(2):  # through the proxy, for 203.0.113.7
                assert_unauthenticated(await proxy.get(f"{API}/flows/search", headers={
                    **basic(password="guess"), "X-Forwarded-For": "203.0.113.7"}))
            assert_problem(await proxy.get(f"{API}/flows/search", headers={
                **basic(), "X-Forwarded-For": "198.51.100.1, 203.0.113.7"}), 429)
            # Another client behind the same proxy is not locked out.
            assert (await proxy.get(f"{API}/flows/search", headers={
                **basic(), "X-Forwarded-For": "203.0.113.8"})).status_code == 200
        # A peer that is not a trusted proxy cannot choose its address with the header.
        for _ in range(2):
            assert_unauthenticated(await live.client.get(f"{API}/flows/search", headers={
                **basic(password="guess"), "X-Forwarded-For": "203.0.113.99"}))
        assert_problem(await live.client.get(f"{API}/flows/search", headers={
            **basic(password="guess"), "X-Forwarded-For": "203.0.113.100"}), 429)


def test_the_client_behind_trusted_proxies() -> None:
    proxies = auth.TrustedProxies(["10.0.0.0/8", "::1"])
    assert proxies.client("10.1.1.1", "203.0.113.7") == "203.0.113.7"
    assert proxies.client("10.1.1.1", "6.6.6.6, 203.0.113.7, 10.2.2.2") == "203.0.113.7"
    assert proxies.client("192.0.2.1", "203.0.113.7") == "192.0.2.1"
    assert proxies.client("10.1.1.1", "not-an-ip") == "10.1.1.1"
    assert proxies.client("10.1.1.1", "10.3.3.3") == "10.1.1.1"
    assert proxies.client("::1", "2001:db8::1") == "2001:db8::1"
    assert auth.TrustedProxies().client("10.1.1.1", "203.0.113.7") == "10.1.1.1"


async def test_a_burst_cannot_start_more_verifications_than_the_limit(
        tmp_path: Path, verifications: list[str]) -> None:
    async with serving(tmp_path, **with_basic()) as live:
        answers = await asyncio.gather(*[
            live.client.get(f"{API}/flows/search", headers=basic(password=f"guess{i}"))
            for i in range(40)])
        statuses = sorted(a.status_code for a in answers)
        assert set(statuses) == {401, 429}, statuses
        assert statuses.count(401) == 10
        assert len(verifications) == 10


# -- limits and headers --------------------------------------------------------------------------


async def test_bodies_over_10_mib_get_413_problem_json(tmp_path: Path) -> None:
    async with serving(tmp_path, **with_basic()) as live:
        await apply(live.engine, HOOKED)
        big = b"x" * (11 * MIB)

        def chunked(size: int) -> Callable[[], AsyncIterator[bytes]]:
            async def body() -> AsyncIterator[bytes]:
                sent = 0
                while sent < size:
                    n = min(256 * 1024, size - sent)
                    sent += n
                    yield b"x" * n
            return body

        targets = [
            (f"{API}/flows", basic()),  # reads its body
            (f"{API}/executions/nope/actions/pause", basic()),  # never reads it
            (f"{API}/executions/webhook/auth.test/hooked/{HOOK_KEY}", {}),  # open route
            (f"{API}/flows", {}),  # no credentials: the size is checked first
        ]
        for path, headers in targets:
            sized = await live.client.post(path, content=big, headers=headers)
            body = assert_problem(sized, 413)
            assert body["type"].endswith("/payload-too-large") and "10 MiB" in body["detail"]
            streamed = await live.client.post(path, content=chunked(11 * MIB)(),
                                              headers=headers)
            if "pause" in path:  # a route that never reads its body answers as it would
                assert_problem(streamed, 404)
            elif headers or "webhook" in path:
                assert_problem(streamed, 413)
            else:  # unauthenticated: refused before the body is read
                assert_unauthenticated(streamed)

        # Exactly 10 MiB is accepted, by Content-Length and chunked.
        for i, content in enumerate((b"y" * (10 * MIB), chunked(10 * MIB)())):
            stored = await live.client.post(f"{API}/namespaces/auth.test/files",
                                            params={"path": f"/big{i}.bin"}, content=content,
                                            headers={**basic(),
                                                     "Content-Type": "application/octet-stream"})
            assert stored.status_code == 200, stored.text
        _, started = await live.engine.search_executions(ExecutionQuery(namespace="auth.test"))
        assert started == 0  # no oversized webhook call started an execution


async def test_security_headers_on_every_response(tmp_path: Path) -> None:
    async with serving(tmp_path, **with_basic()) as live:
        await apply(live.engine, HELLO)
        execution = await run_flow(live.engine, "auth.test", "hello")
        responses = [
            await live.client.get("/ping"),
            await live.client.get(f"{API}/flows/search", headers=basic()),
            await live.client.get(f"{API}/flows/search"),
            await live.client.get(f"{API}/executions/nope", headers=basic()),
            await live.client.get("/docs", headers=basic()),
        ]
        async with live.client.stream("GET", f"{API}/executions/{execution.id}/follow",
                                      headers=basic()) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["cache-control"] == "no-cache"  # its own policy stays
            responses.append(stream)
        for response in responses:
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["referrer-policy"] == "no-referrer"
        for response in responses[:4]:
            assert response.headers["cache-control"] == "no-store"


async def test_event_streams_are_capped_in_total_and_end_at_shutdown(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path / "data")
    await apply(engine, HELLO)
    execution = await run_flow(engine, "auth.test", "hello")
    server, task, url = await start_server(engine, ServerOptions(sse_per_client=2,
                                                                 sse_total=3))
    app = server.config.app
    path = f"{API}/logs/{execution.id}/follow"
    other = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    try:
        async with (httpx.AsyncClient(base_url=url, timeout=10) as a,
                    httpx.AsyncClient(base_url=url, timeout=10, transport=other) as b,
                    contextlib.AsyncExitStack() as stack):
            opened = [await stack.enter_async_context(a.stream("GET", path)) for _ in range(2)]
            opened.append(await stack.enter_async_context(b.stream("GET", path)))
            assert all(s.status_code == 200 for s in opened)
            assert app.state.streams.open == {"127.0.0.1": 2, "127.0.0.2": 1}
            assert_problem(await a.get(path), 429)  # this client's cap
            assert_problem(await b.get(path), 503)  # the server is at its cap
            # Stopping the server ends open streams at once instead of waiting them out.
            started = time.perf_counter()
            app.state.auth.shutdown.set()
            for stream in opened:
                async with asyncio.timeout(5):
                    async for _ in stream.aiter_bytes():
                        pass
            assert time.perf_counter() - started < 2
        async with asyncio.timeout(5):
            while app.state.streams.open:
                await asyncio.sleep(0.01)
    finally:
        await stop_server(server, task)
        await engine.close()


def test_password_hashes_use_the_owasp_argon2id_profile() -> None:
    assert PASSWORD_HASH.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert auth.verify_password(PASSWORD_HASH, PASSWORD)
    assert not auth.verify_password(PASSWORD_HASH, PASSWORD + " ")
    assert not auth.verify_password("not a hash", PASSWORD)
    with pytest.raises(ValueError):
        auth.Authenticator(required=True, username=USER, password_hash="$argon2i$nope")



async def refused_chunked_upload(url: str, path: str, headers: str = "") -> tuple[bytes, bool]:
    """Stream a chunked body that never ends; (the answer's head, whether the server closed the
    connection instead of reading on). Bounded: at most 32 MiB are offered."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n"
                 f"Content-Type: application/x-yaml\r\n{headers}\r\n".encode())
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"x" * 64 * 1024)
    head = b""
    closed = False
    try:
        async with asyncio.timeout(20):
            for _ in range(512):
                writer.write(chunk)
                await writer.drain()
                if not head and b"\r\n\r\n" in (peek := await _peek(reader)):
                    head = peek
                if head and reader.at_eof():
                    closed = True
                    break
            if head and not closed:
                closed = await _closes(reader)
    except (ConnectionResetError, BrokenPipeError):
        closed = True
    finally:
        writer.close()
    return head, closed


async def _peek(reader: asyncio.StreamReader) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(65536), 0.01)
    except TimeoutError:
        return b""


async def _closes(reader: asyncio.StreamReader) -> bool:
    try:
        while True:
            data = await asyncio.wait_for(reader.read(65536), 2)
            if not data:
                return True
    except TimeoutError:
        return False


async def test_a_refused_chunked_body_is_not_read_on(tmp_path: Path) -> None:
    async with serving(tmp_path, **with_basic()) as live:
        head, closed = await refused_chunked_upload(live.url, f"{API}/flows")
        assert head.startswith(b"HTTP/1.1 401"), head[:200]
        assert b"connection: close" in head.lower()
        assert closed
        # A body read to its end keeps the connection.
        response = await live.client.post(f"{API}/flows", content=b"x", headers={
            **basic(), "Content-Type": "application/x-yaml"})
        assert response.headers.get("connection") != "close"
