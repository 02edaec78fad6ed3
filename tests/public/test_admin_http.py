"""flowdeck's admin routes for the public API over real HTTP: API keys (create shows the secret
once, nothing else ever does), webhook deliveries (list, filter, redeliver; 409 while one is in
flight) and the messages agents delivered; each behind the role it declares."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from flowdeck.engine.engine import Engine
from flowdeck.engine.keys import TokenStore
from flowdeck.server.app import ServerOptions
from public.http_support import API, bearer, error_body, public_server
from public.support import AGENT, customers, until_waiting
from webhook_receiver import webhook_receiver

ADMIN_API = "/api/v1/main"
PRIVATE_OK = {"webhooks": {"allow_private_targets": True}}
HOOK_SECRET = "whsec-not-for-your-eyes"


async def tokens(engine: Engine) -> dict[str, dict[str, str]]:
    store = TokenStore(engine.store, engine.clock)
    out = {}
    for role in ("viewer", "operator", "admin"):
        out[role] = bearer((await store.create(role, role))[1])
    return out


def problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = answer.json()
    return body


async def test_api_keys_over_http_for_the_admin_only(tmp_path: Path) -> None:
    async with public_server(tmp_path, options=ServerOptions(auth_required=True)) as api:
        who = await tokens(api.engine)
        keys = f"{ADMIN_API}/api-keys"
        for role in ("viewer", "operator"):
            problem(await api.client.get(keys, headers=who[role]), 403)
            problem(await api.client.post(keys, headers=who[role], json={"name": "x"}), 403)
        problem(await api.client.get(keys), 401)

        created = await api.client.post(keys, headers=who["admin"], json={
            "name": "website", "workflows": [AGENT], "usageLimit": 50, "expiresIn": "P30D",
            "webhookUrl": "https://hooks.example.com/flowdeck",
            "webhookEvents": ["execution.completed"], "webhookSecret": HOOK_SECRET})
        assert created.status_code == 201, created.text
        new = created.json()
        secret = new["key"]
        assert len(secret) == 64 and int(secret, 16) >= 0
        assert new["prefix"] == secret[:8] and new["name"] == "website"
        assert (new["allowedWorkflows"], new["usageLimit"], new["status"]) == (
            [AGENT], 50, "active")
        assert new["webhookEvents"] == ["execution.completed"] and new["hasWebhookSecret"]

        listed = await api.client.get(keys, headers=who["admin"])
        shown = await api.client.get(f"{keys}/{new['id']}", headers=who["admin"])
        for answer in (listed, shown):
            assert answer.status_code == 200
            assert secret not in answer.text and secret[8:] not in answer.text
            assert HOOK_SECRET not in answer.text and '"key"' not in answer.text
        assert [k["id"] for k in listed.json()] == [new["id"]]
        assert shown.json() == {k: v for k, v in new.items() if k != "key"}

        # the key works on the public API until it is revoked
        execute = f"{API}/agents/{AGENT}/execute"
        body = {"input": {"csvData": customers(1)}}
        assert (await api.client.post(execute, headers=bearer(secret), json=body)
                ).status_code == 202
        revoked = await api.client.post(f"{keys}/{new['id']}/revoke", headers=who["admin"])
        assert revoked.status_code == 200
        assert (revoked.json()["status"], revoked.json()["usageCount"]) == ("inactive", 1)
        answer = await api.client.post(execute, headers=bearer(secret), json=body)
        assert error_body(answer, 403) == "API key is inactive"

        # refused input names the field; unknown ids are 404
        for bad, field in (({}, "name"), ({"name": "x", "expiresIn": "soon"}, "expiresIn"),
                           ({"name": "x", "expiresIn": "P99999D"}, "expiresIn"),
                           ({"name": "x", "usageLimit": "many"}, "usageLimit"),
                           ({"name": "x", "usageLimit": 0}, "usageLimit"),
                           ({"name": "x", "webhookUrl": "ftp://x"}, "webhookUrl"),
                           ({"name": "x", "webhookEvents": ["execution.done"]},
                            "webhookEvents"),
                           ({"name": "x", "workflows": ["no spaces"]}, "workflows"),
                           ({"name": "x", "secret": "mine"}, "secret")):
            answer = problem(await api.client.post(keys, headers=who["admin"], json=bad), 422)
            assert field in json.dumps(answer), (bad, answer)
        problem(await api.client.get(f"{keys}/nope", headers=who["admin"]), 404)
        problem(await api.client.post(f"{keys}/nope/revoke", headers=who["admin"]), 404)
        assert len((await api.client.get(keys, headers=who["admin"])).json()) == 1


async def until_delivery(api_client: httpx.AsyncClient, headers: dict[str, str],
                         status: str, count: int = 1) -> list[dict[str, Any]]:
    async with asyncio.timeout(20):
        while True:
            answer = await api_client.get(f"{ADMIN_API}/webhook-deliveries",
                                          params={"status": status}, headers=headers)
            assert answer.status_code == 200, answer.text
            found: list[dict[str, Any]] = answer.json()["results"]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)


async def test_webhook_deliveries_listed_and_redelivered(tmp_path: Path) -> None:
    async with webhook_receiver(hang=True) as receiver, public_server(
            tmp_path, options=ServerOptions(auth_required=True), extra=PRIVATE_OK) as api:
        who = await tokens(api.engine)
        deliveries = f"{ADMIN_API}/webhook-deliveries"
        problem(await api.client.get(deliveries, headers=who["operator"]), 403)
        secret = await api.key(webhook_url=receiver.url, webhook_secret=HOOK_SECRET,
                               webhook_events=["execution.started"])
        started = await api.client.post(f"{API}/agents/{AGENT}/execute", headers=bearer(secret),
                                        json={"input": {"csvData": customers(1)}})
        execution_id = started.json()["executionId"]
        await receiver.received(1)  # in flight: the receiver holds it
        [pending] = await until_delivery(api.client, who["admin"], "pending")
        assert (pending["event"], pending["executionId"], pending["url"]) == (
            "execution.started", execution_id, receiver.url)
        assert pending["target"].startswith("api-key:") and pending["source"] == "public"
        assert list(pending) == ["id", "eventSeq", "event", "source", "executionId", "target",
                                 "url", "status", "attempts", "nextAt", "lastStatus",
                                 "lastError", "created", "updated"]
        busy = problem(await api.client.post(f"{deliveries}/{pending['id']}/redeliver",
                                             headers=who["admin"]), 409)
        assert "already pending" in busy["detail"]
        receiver.released.set()
        [done] = await until_delivery(api.client, who["admin"], "delivered")
        assert (done["id"], done["attempts"], done["lastStatus"]) == (pending["id"], 1, 200)
        again = await api.client.post(f"{deliveries}/{done['id']}/redeliver",
                                      headers=who["admin"])
        assert again.status_code == 200 and again.json()["status"] == "pending"
        await receiver.received(2)
        second = receiver.requests[1]
        assert second.headers["webhook-id"] == done["id"]  # the same delivery, sent again
        assert HOOK_SECRET not in (await api.client.get(deliveries, headers=who["admin"])).text
        shown = await api.client.get(f"{deliveries}/{done['id']}", headers=who["admin"])
        assert shown.json()["id"] == done["id"]
        problem(await api.client.get(f"{deliveries}/nope", headers=who["admin"]), 404)
        problem(await api.client.get(deliveries, params={"status": "lost"},
                                     headers=who["admin"]), 400)
        await until_waiting(api.engine, execution_id)


async def test_a_private_target_is_refused_for_good_and_shown_dead(tmp_path: Path) -> None:
    async with public_server(tmp_path) as api:  # private targets not allowed (the default)
        secret = await api.key(webhook_url="http://127.0.0.1:9/hook")
        await api.client.post(f"{API}/agents/{AGENT}/execute", headers=bearer(secret),
                              json={"input": {"csvData": customers(1)}})
        for dead in await until_delivery(api.client, {}, "dead"):
            assert dead["attempts"] == 1 and dead["lastStatus"] is None
            assert "allow_private_targets" in dead["lastError"]
            assert dead["nextAt"] is None


async def test_agent_messages_for_viewers(tmp_path: Path) -> None:
    async with public_server(tmp_path, options=ServerOptions(auth_required=True)) as api:
        who = await tokens(api.engine)
        secret = await api.key()
        started = await api.client.post(f"{API}/agents/{AGENT}/execute", headers=bearer(secret),
                                        json={"input": {"csvData": customers(2)}})
        execution_id = started.json()["executionId"]
        await until_waiting(api.engine, execution_id)
        approve = await api.client.post(f"{API}/executions/{execution_id}/approve",
                                        headers=bearer(secret))
        assert approve.status_code == 200
        await api.engine.wait_until_terminal(execution_id, timeout=20)
        messages = f"{ADMIN_API}/agent-messages"
        problem(await api.client.get(messages), 401)
        answer = await api.client.get(messages, headers=who["viewer"],
                                      params={"executionId": execution_id})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["total"] == 2
        assert {m["customerId"] for m in body["results"]} == {"CUST001", "CUST002"}
        first = body["results"][0]
        assert (first["executionId"], first["workflowId"], first["status"],
                first["transport"]) == (execution_id, AGENT, "sent", "local")
        assert first["content"] and first["recipient"].startswith("+91")
        paged = await api.client.get(messages, headers=who["viewer"],
                                     params={"size": 1, "page": 2})
        assert paged.json()["total"] == 2 and len(paged.json()["results"]) == 1
        problem(await api.client.get(messages, headers=who["viewer"], params={"size": 0}), 400)
