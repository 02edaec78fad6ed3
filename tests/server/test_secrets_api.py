"""A SECRET input is never answered through any route, and webhook callers' credentials are
never echoed: every read route of the mounted dialects is swept over a real loopback server."""

from __future__ import annotations

import asyncio
import textwrap

from helpers import apply, wait_for_state
from live_server import LiveServer

API = "/api/v1/main"
SECRET = "s3cr3t-VALUE-7f4a"
AUTH_VALUE = "Bearer caller-credential-9c1e"
COOKIE_VALUE = "session=caller-cookie-2b7d"

GATED = textwrap.dedent("""
    id: secretive
    namespace: t.secrets
    inputs:
      - id: password
        type: SECRET
      - id: name
        type: STRING
        defaults: visible
    tasks:
      - id: say
        type: io.kestra.plugin.core.log.Log
        message: "the password is {{ inputs.password }} for {{ inputs.name }}"
      - id: out
        type: io.kestra.plugin.core.output.OutputValues
        values:
          echoed: "{{ inputs.password }}"
      - id: gate
        type: flowdeck.approval.Request
        title: "Approve {{ inputs.name }}"
    """)
HOOKED = textwrap.dedent("""
    id: hooked
    namespace: t.secrets
    tasks:
      - id: say
        type: io.kestra.plugin.core.log.Log
        message: "{{ trigger.headers }}"
      - id: out
        type: io.kestra.plugin.core.output.OutputValues
        values:
          headers: "{{ trigger.headers }}"
    outputs:
      - id: headers
        type: STRING
        value: "{{ outputs.out.values.headers }}"
    triggers:
      - id: web
        type: io.kestra.plugin.core.trigger.Webhook
        key: hook-key-for-secrets-test
        wait: true
        returnOutputs: true
    """)


async def test_a_secret_input_is_never_answered_by_any_read_route(live: LiveServer) -> None:
    await apply(live.engine, GATED)
    created = await live.client.post(f"{API}/executions/t.secrets/secretive",
                                      files={"password": (None, SECRET)})
    assert created.status_code == 200, created.text
    assert SECRET not in created.text
    execution_id = created.json()["id"]
    await wait_for_state(live.engine, execution_id, "PAUSED")
    (approval,) = await live.engine.approvals.list("pending", execution_id=execution_id)
    reads = [
        f"{API}/executions/{execution_id}", f"/api/v1/executions/{execution_id}",
        f"{API}/executions/search?namespace=t.secrets", f"{API}/executions?namespace=t.secrets"
        "&flowId=secretive",
        f"{API}/logs/{execution_id}", f"{API}/logs/{execution_id}/download",
        f"{API}/logs/search?namespace=t.secrets",
        f"{API}/approvals", f"{API}/approvals/{approval.id}",
        f"{API}/approvals?status=all&executionId={execution_id}",
        f"/api/v1/executions/t.secrets/secretive/{execution_id}",  # the staging shape
    ]
    for path in reads:
        response = await live.client.get(path)
        assert response.status_code == 200, (path, response.text)
        assert SECRET not in response.text, path
    async with live.client.stream("GET", f"{API}/executions/{execution_id}/follow") as stream:
        seen = b""
        async with asyncio.timeout(10):
            async for chunk in stream.aiter_bytes():
                seen += chunk
                if b"progress" in seen:
                    break
    assert SECRET.encode() not in seen
    async with live.client.stream("GET", f"{API}/logs/{execution_id}/follow") as stream:
        seen = b""
        async with asyncio.timeout(10):
            async for chunk in stream.aiter_bytes():
                seen += chunk
                if b"the password is" in seen:
                    break
    assert SECRET.encode() not in seen
    # The outputs of the task that echoed it are masked too.
    outputs = await live.client.get(f"{API}/executions/{execution_id}")
    assert "******" in outputs.text


async def test_a_webhook_call_never_echoes_the_callers_credentials(live: LiveServer) -> None:
    await apply(live.engine, HOOKED)
    response = await live.client.post(
        f"{API}/executions/webhook/t.secrets/hooked/hook-key-for-secrets-test",
        json={"x": 1}, headers={"Authorization": AUTH_VALUE, "Cookie": COOKIE_VALUE,
                                "X-Visible": "kept"})
    assert response.status_code == 200, response.text
    assert "kept" in response.text  # the outputs came back, with the other headers
    for value in (AUTH_VALUE, COOKIE_VALUE, "caller-credential", "caller-cookie"):
        assert value not in response.text
    executions = (await live.client.get(f"{API}/executions/search?namespace=t.secrets")).json()
    (execution,) = executions["results"]
    headers = execution["trigger"]["variables"]["headers"]
    assert "authorization" not in headers and "cookie" not in headers
    assert headers["x-visible"] == ["kept"]
    logs = (await live.client.get(f"{API}/logs/{execution['id']}")).text
    assert "caller-credential" not in logs and "caller-cookie" not in logs
