"""Webhook triggers over a real server: routing, trigger variables, wait, and key security."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdeck.engine import webhook_triggers as webhooks
from flowdeck.engine.engine import Engine, EngineSettings
from flowdeck.server.app import ServerOptions
from helpers import apply
from live_server import LiveServer, start_server, stop_server

API = "/api/v1/main"
NS = "acceptance.hooks"
KEY = "s3cr3tkey-4f9a0c"
WEBHOOK = "io.kestra.plugin.core.trigger.Webhook"

HOOK = f"""
id: hook
namespace: {NS}
labels:
  team: data
inputs:
  - id: client_name
    type: STRING
    defaults: nobody
  - id: env
    type: STRING
    defaults: production
triggers:
  - id: hook
    type: {WEBHOOK}
    key: {KEY}
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "hello {{{{ inputs.client_name }}}}"
"""

WAITING = f"""
id: waiting
namespace: {NS}
outputs:
  - id: result
    type: STRING
    value: "{{{{ outputs.ret.value }}}}"
triggers:
  - id: hook
    type: {WEBHOOK}
    key: wait-key
    wait: true
  - id: outputs-only
    type: {WEBHOOK}
    key: outputs-key
    wait: true
    returnOutputs: true
tasks:
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: "done for {{{{ trigger.body.who ?? 'anyone' }}}}"
"""

TEMPLATED = f"""
id: clone-staging-api
namespace: {NS}
inputs:
  - id: client_name
    type: STRING
  - id: source_environment
    type: STRING
    defaults: production
triggers:
  - id: hook
    type: {WEBHOOK}
    key: "{{{{ envs.hook_key }}}}"
    inputs:
      client_name: "{{{{ trigger.body.client_name }}}}"
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "clone for {{{{ inputs.client_name }}}} from {{{{ inputs.source_environment }}}}"
"""

UNSET_ENV = f"""
id: unset
namespace: {NS}
triggers:
  - id: hook
    type: {WEBHOOK}
    key: "{{{{ envs.staging_clone_key }}}}"
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: must never run
"""

DISABLED_FLOW = f"""
id: disabled-flow
namespace: {NS}
disabled: true
triggers:
  - id: hook
    type: {WEBHOOK}
    key: off-key
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: never
"""

TWO_TRIGGERS = f"""
id: two
namespace: {NS}
triggers:
  - id: old
    type: {WEBHOOK}
    key: old-key
    disabled: true
  - id: new
    type: {WEBHOOK}
    key: new-key
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


def hook_url(key: str = KEY, flow: str = "hook", ns: str = NS, prefix: str = API) -> str:
    return f"{prefix}/executions/webhook/{ns}/{flow}/{key}"


async def fetch_execution(live: LiveServer, execution_id: str) -> dict[str, Any]:
    """The execution as GET /executions/{id} serves it (the engine's document if that route
    is not mounted in this build)."""
    response = await live.client.get(f"{API}/executions/{execution_id}")
    if response.status_code == 404 and response.json()["detail"].startswith("no route"):
        return await live.engine.get_execution_doc(execution_id)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def labels(doc: dict[str, Any]) -> dict[str, str]:
    return {lbl["key"]: lbl["value"] for lbl in doc["labels"]}


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, envs: dict[str, str] | None = None,
                options: ServerOptions | None = None) -> AsyncIterator[LiveServer]:
    engine = await Engine.open(EngineSettings(data_dir=tmp_path / "own", scheduler=False,
                                              envs=envs or {}))
    server, task, url = await start_server(engine, options)
    client = httpx.AsyncClient(base_url=url, timeout=30)
    try:
        yield LiveServer(engine, url, client)
    finally:
        await client.aclose()
        await stop_server(server, task)
        await engine.close()


# -- a matched call ------------------------------------------------------------------------


async def test_post_json_body_headers_params_land_in_trigger_variables(
        live: LiveServer) -> None:
    await apply(live.engine, HOOK)
    response = await live.client.post(
        hook_url(), params=[("a", "1"), ("a", "2"), ("b", "x")],
        json={"client_name": "acme", "n": [1, 2]}, headers={"X-Custom-Header": "Value"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"tenantId", "id", "namespace", "flowId", "flowRevision", "trigger",
                         "labels", "state", "url"}
    assert body["tenantId"] == "main" and body["namespace"] == NS and body["flowId"] == "hook"
    assert body["flowRevision"] == 1
    assert body["state"]["current"] == "CREATED"
    assert body["url"].endswith(f"/ui/main/executions/{NS}/hook/{body['id']}")
    trigger = body["trigger"]
    assert trigger["id"] == "hook" and trigger["type"] == WEBHOOK
    variables = trigger["variables"]
    assert variables["body"] == {"client_name": "acme", "n": [1, 2]}
    assert variables["headers"]["x-custom-header"] == ["Value"]
    assert variables["headers"]["content-type"] == ["application/json"]
    assert all(name == name.lower() for name in variables["headers"])
    assert variables["parameters"] == {"a": ["1", "2"], "b": ["x"]}

    doc = await fetch_execution(live, body["id"])
    assert doc["trigger"] == trigger
    assert labels(doc) == {"team": "data", "system.correlationId": body["id"],
                           "system.from": "trigger"}
    assert labels(body) == labels(doc)
    # Flow input defaults apply to webhook runs.
    assert doc["inputs"] == {"client_name": "nobody", "env": "production"}
    final = await live.engine.wait_until_terminal(body["id"], timeout=10)
    assert final.state.current == "SUCCESS"


@pytest.mark.parametrize(("method", "content", "content_type", "expected"), [
    ("POST", b"plain text body", "text/plain", "plain text body"),
    ("POST", b"{not json", "application/json", "{not json"),  # Kestra: raw string, no error
    ("POST", b"[1, 2, 3]", "application/json", [1, 2, 3]),
    ("POST", b"42", "application/json", "42"),  # neither an object nor an array: raw text
    ("POST", b"", None, None),
    ("PUT", b'{"k": "v"}', "application/json", {"k": "v"}),
    ("PUT", b"", None, None),
    ("GET", b"", None, None),
])
async def test_bodies_and_methods(live: LiveServer, method: str, content: bytes,
                                  content_type: str | None, expected: Any) -> None:
    await apply(live.engine, HOOK)
    headers = {"content-type": content_type} if content_type else {}
    response = await live.client.request(method, hook_url(), content=content, headers=headers,
                                         params={"via": method})
    assert response.status_code == 200, response.text
    variables = response.json()["trigger"]["variables"]
    assert variables["body"] == expected
    assert variables["parameters"] == {"via": [method]}
    doc = await fetch_execution(live, response.json()["id"])
    assert doc["trigger"]["variables"]["body"] == expected


async def test_path_suffix_and_tenantless_forms(live: LiveServer) -> None:
    await apply(live.engine, HOOK)
    for url in (hook_url() + "/some/extra/path", hook_url(prefix="/api/v1"),
                hook_url(prefix="/api/v1") + "/x"):
        for method in ("GET", "POST", "PUT"):
            response = await live.client.request(method, url)
            assert response.status_code == 200, (method, url, response.text)
            assert response.json()["flowId"] == "hook"
    assert (await live.client.delete(hook_url())).status_code == 405


async def test_wait_and_return_outputs(live: LiveServer) -> None:
    await apply(live.engine, WAITING)
    waited = await live.client.post(hook_url("wait-key", "waiting"), json={"who": "ops"})
    assert waited.status_code == 200
    body = waited.json()
    assert body["state"]["current"] == "SUCCESS"
    assert body["outputs"] == {"result": "done for ops"}
    assert body["trigger"]["variables"]["body"] == {"who": "ops"}

    outputs_only = await live.client.get(hook_url("outputs-key", "waiting"))
    assert outputs_only.status_code == 200
    assert outputs_only.json() == {"result": "done for anyone"}


async def test_env_templated_key_and_rendered_inputs(tmp_path: Path) -> None:
    key = "Zx81-staging-clone-key"
    async with serve(tmp_path, envs={"hook_key": key}) as live:
        await apply(live.engine, TEMPLATED)
        url = hook_url(key, "clone-staging-api")
        response = await live.client.post(url, json={"client_name": "demo-client"})
        assert response.status_code == 200, response.text
        doc = await fetch_execution(live, response.json()["id"])
        assert doc["inputs"] == {"client_name": "demo-client",
                                 "source_environment": "production"}
        final = await live.engine.wait_until_terminal(response.json()["id"], timeout=10)
        assert final.state.current == "SUCCESS"

        # The template itself, or anything but the rendered value, is not the key.
        for wrong in ("{{ envs.hook_key }}", "%7B%7B%20envs.hook_key%20%7D%7D", key.upper(),
                      key[:-1], key + "x"):
            assert (await live.client.post(hook_url(wrong, "clone-staging-api"),
                                           json={"client_name": "x"})).status_code == 401

        # The key matched, but the request lacks what the trigger's inputs need: 422, and the
        # error names the flow, never the URL with the key.
        missing = await live.client.post(url, json={"other": 1})
        assert missing.status_code == 422
        assert key not in missing.text
        assert missing.json()["instance"] == f"{API}/executions/webhook/{NS}/clone-staging-api"
        empty = await live.client.post(url, json={"client_name": ""})
        assert empty.status_code == 422
        assert empty.json()["errors"] == [{"path": "inputs.client_name",
                                           "detail": "is required"}]


@pytest.mark.parametrize("envs", [{}, {"staging_clone_key": ""}, {"staging_clone_key": "  "}])
async def test_unset_or_empty_env_key_accepts_nothing(tmp_path: Path,
                                                      envs: dict[str, str]) -> None:
    options = ServerOptions(extra={"webhook_failures_per_minute": 1000})
    async with serve(tmp_path, envs=envs, options=options) as live:
        await apply(live.engine, UNSET_ENV)
        for guess in ("None", "null", "undefined", "%20", "%20%20", "{{ envs.staging_clone_key }}",
                      "%7B%7B%20envs.staging_clone_key%20%7D%7D", "''", '""', "0", "false"):
            for method in ("GET", "POST"):
                response = await live.client.request(method, hook_url(guess, "unset"))
                assert response.status_code == 401, (guess, method)
        row = await live.engine.store.fetchone("SELECT COUNT(*) FROM executions")
        assert row is not None and row[0] == 0


# -- failures ------------------------------------------------------------------------------


async def test_every_failure_gets_the_same_401(live: LiveServer) -> None:
    await apply(live.engine, HOOK)
    await apply(live.engine, UNSET_ENV)
    await apply(live.engine, DISABLED_FLOW)
    await apply(live.engine, TWO_TRIGGERS)
    await apply(live.engine, HOOK.replace("id: hook\n", "id: gone\n", 1))
    await live.engine.delete_flow(NS, "gone")
    failures = {
        "deleted flow, right key": hook_url(KEY, flow="gone"),
        "wrong key": hook_url("wrong-key"),
        "key prefix": hook_url(KEY[:-1]),
        "unknown flow": hook_url(KEY, flow="nope"),
        "unknown namespace": hook_url(KEY, ns="no.such.ns"),
        "namespace named webhook": hook_url(KEY, ns="webhook"),
        "malformed key (long)": hook_url("k" * 3000),
        "malformed key (non-ascii)": hook_url("clé-✓"),
        "malformed key (control)": hook_url("%00%0a"),
        "unset env key": hook_url("None", flow="unset"),
        "disabled flow, wrong key": hook_url("wrong", flow="disabled-flow"),
        "disabled trigger": hook_url("old-key", flow="two"),
    }
    seen: dict[str, httpx.Response] = {}
    for name, url in failures.items():
        response = await live.client.post(url, json={"x": 1})
        assert response.status_code == 401, (name, response.text)
        seen[name] = response
    reference = seen["wrong key"]
    body = reference.json()
    assert body["status"] == 401 and body["detail"] == "invalid webhook key"
    assert body["instance"] == "/api/v1/main/executions/webhook"
    assert reference.headers["content-type"] == "application/problem+json"

    def shape(r: httpx.Response) -> list[tuple[str, str]]:
        return sorted((k, v) for k, v in r.headers.items() if k not in ("date",))

    for name, response in seen.items():
        assert response.content == reference.content, name
        assert shape(response) == shape(reference), name
        assert KEY not in response.text
    assert "www-authenticate" not in reference.headers
    assert (await live.client.post(hook_url("new-key", flow="two"))).status_code == 200
    # A GET failure has the same body as a POST failure.
    assert (await live.client.get(hook_url("nope"))).content == reference.content


async def test_disabled_flow_with_the_right_key_is_409(live: LiveServer) -> None:
    await apply(live.engine, DISABLED_FLOW)
    response = await live.client.post(hook_url("off-key", flow="disabled-flow"))
    assert response.status_code == 409
    assert "disabled" in response.json()["detail"] and "off-key" not in response.text


async def test_keys_are_compared_in_constant_time(live: LiveServer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    await apply(live.engine, TWO_TRIGGERS)
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert (await live.client.get(hook_url("new-key", flow="two"))).status_code == 200
    assert len(calls) == 2  # every trigger is compared, also after the match
    calls.clear()
    assert (await live.client.get(hook_url("guess", flow="two"))).status_code == 401
    assert len(calls) == 2
    calls.clear()
    assert (await live.client.get(hook_url("guess", flow="missing"))).status_code == 401
    assert len(calls) == 1  # a dummy compare for an unknown flow
    source = Path(webhooks.__file__).read_text()
    assert "key ==" not in source and "== key" not in source


async def test_repeated_failures_are_throttled(live: LiveServer) -> None:
    await apply(live.engine, HOOK)
    for _ in range(19):
        assert (await live.client.get(hook_url("bad"))).status_code == 401
    for _ in range(5):  # successes do not count
        assert (await live.client.get(hook_url())).status_code == 200
    assert (await live.client.get(hook_url("bad"))).status_code == 401  # the 20th failure
    throttled = await live.client.get(hook_url("bad"))
    assert throttled.status_code == 429
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert throttled.json()["status"] == 429
    assert throttled.json()["instance"] == "/api/v1/main/executions/webhook"
    # The guesser throttles its own guesses only: the right key, from the same address, still
    # starts the flow, and the failures of one flow do not throttle another's.
    right = await live.client.get(hook_url())
    assert right.status_code == 200, right.text
    assert (await live.client.get(hook_url("bad"))).status_code == 429
    unknown = await live.client.post(hook_url(KEY, flow="nope"))
    assert unknown.status_code == 401


async def test_throttle_is_configurable(tmp_path: Path) -> None:
    options = ServerOptions(extra={"webhook_failures_per_minute": 3})
    async with serve(tmp_path, options=options) as live:
        await apply(live.engine, HOOK)
        statuses = [(await live.client.get(hook_url("bad"))).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]


def test_failure_throttle_window() -> None:
    now = [1000.0]
    throttle = webhooks.FailureThrottle(window=60, clock=lambda: now[0], max_clients=2)
    for _ in range(3):
        assert throttle.retry_after("a", 3) is None
        throttle.record("a")
        now[0] += 10
    assert throttle.retry_after("a", 3) == 30  # the first failure leaves the window at 1060
    now[0] += 30
    assert throttle.retry_after("a", 3) is None
    assert throttle.retry_after("a", 0) is None  # 0 disables throttling
    throttle.record("b")
    throttle.record("c")  # only two clients are remembered; the oldest goes
    assert throttle.retry_after("a", 1) is None


async def test_the_key_is_never_logged(live: LiveServer, caplog: pytest.LogCaptureFixture
                                       ) -> None:
    caplog.set_level(logging.DEBUG)
    await apply(live.engine, HOOK)
    await apply(live.engine, WAITING)
    secret_guess = "canary-guess-8c1f2e"
    assert (await live.client.post(hook_url(secret_guess))).status_code == 401
    assert (await live.client.post(hook_url())).status_code == 200
    assert (await live.client.post(hook_url("wait-key", "waiting"))).status_code == 200
    for _ in range(25):
        await live.client.get(hook_url(secret_guess))
    assert "rejected" in caplog.text and "***" in caplog.text and "throttled" in caplog.text
    # Client-side lines (httpx, httpcore) name the URL they call, and aiosqlite's own DEBUG
    # lines echo SQL parameters (the stored flow source, key included); everything the
    # server side logs must be free of keys.
    client_side = ("aiosqlite", "httpx", "httpcore")
    text = "\n".join(r.getMessage() for r in caplog.records
                     if r.name.split(".")[0] not in client_side)
    for secret in (KEY, secret_guess, "wait-key"):
        assert secret not in text


async def test_webhook_with_kestrapy(live: LiveServer) -> None:
    pytest.importorskip("regex", reason="kestrapy 2.0.3 needs the undeclared 'regex' package")
    from kestrapy.kestra_client import KestraClient

    await apply(live.engine, HOOK)
    client = KestraClient(host=live.url, timeout=10)

    def scenario() -> tuple[Any, Any]:
        plain = client.executions.trigger_execution_by_get_webhook("main", NS, "hook", KEY)
        with_path = client.executions.trigger_execution_by_post_webhook_with_path(
            "main", NS, "hook", KEY, "extra")
        return plain, with_path

    plain, with_path = await asyncio.to_thread(scenario)
    assert plain.flow_id == "hook" and plain.namespace == NS and plain.id
    assert with_path.id != plain.id
