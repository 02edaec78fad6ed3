"""`flowdeck api-key`, `webhooks` and `agents messages` as real subprocesses: embedded (the data
dir's keys, beside a running server) and over `--url` against a real `flowdeck serve`
subprocess that requires tokens and may deliver to loopback because
`FLOWDECK_WEBHOOKS__ALLOW_PRIVATE_TARGETS=true` is in its environment."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from cli.test_cli_remote import clean_env, flowdeck_serve
from public.support import AGENT, customers, verify_webhook_signature
from webhook_receiver import webhook_receiver

API = "/api/v1/public"
HEX64 = re.compile(r"^[0-9a-f]{64}$", re.M)


@dataclass
class Served:
    root: Path
    url: str
    data: Path
    admin: str
    viewer: str

    def env(self, token: str | None = None, **extra: str) -> dict[str, str]:
        if token:
            extra["FLOWDECK_TOKEN"] = token
        return clean_env(self.root / "home", **extra)

    async def cli(self, *args: str, token: str | None = None, remote: bool = True,
                  data_dir: Path | None = None, **env: str) -> tuple[int, str, str]:
        """`flowdeck ...` as a subprocess, without blocking this loop (a receiver runs on
        it); over `--url` with `token`, or embedded on `data_dir` (the server's by default)."""
        argv = [sys.executable, "-m", "flowdeck.cli", "--data-dir",
                str(self.root / "unused" if remote else (data_dir or self.data))]
        if remote:
            argv += ["--url", self.url]
        proc = await asyncio.create_subprocess_exec(
            *argv, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=self.env(token, **env))
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def ok(self, *args: str, **kwargs: Any) -> str:
        code, out, err = await self.cli(*args, **kwargs)
        assert code == 0, (out, err)
        assert err == ""
        return out


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("public-cli")
    data = root / "server-data"
    env = clean_env(root / "home")

    def token(role: str) -> str:
        made = subprocess.run([sys.executable, "-m", "flowdeck.cli", "--data-dir", str(data),
                               "token", "create", "--role", role, "--json"],
                              capture_output=True, text=True, env=env, timeout=60, check=True)
        secret: str = json.loads(made.stdout)["token"]
        return secret

    admin, viewer = token("admin"), token("viewer")
    with flowdeck_serve(root, clean_env(root / "home",
                                        FLOWDECK_WEBHOOKS__ALLOW_PRIVATE_TARGETS="true")) as url:
        yield Served(root, url, data, admin, viewer)


async def execute(url: str, secret: str, rows: int = 1) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        answer = await client.post(f"{API}/agents/{AGENT}/execute",
                                   headers={"Authorization": f"Bearer {secret}"},
                                   json={"input": {"csvData": customers(rows)}})
    assert answer.status_code == 202, answer.text
    execution_id: str = answer.json()["executionId"]
    return execution_id


async def public_call(url: str, secret: str, method: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return await client.request(method, f"{API}{path}",
                                    headers={"Authorization": f"Bearer {secret}"})


async def test_api_keys_over_url_for_the_admin(served: Served) -> None:
    made = json.loads(await served.ok(
        "api-key", "create", "--name", "website", "--workflow", AGENT, "--usage-limit", "5",
        "--expires-in", "P30D", "--json", token=served.admin))
    assert HEX64.match(made["key"]) and made["name"] == "website"
    assert (made["allowedWorkflows"], made["usageLimit"]) == ([AGENT], 5)
    listing = await served.ok("api-key", "list", token=served.admin)
    assert listing.splitlines()[0].split() == ["ID", "NAME", "PREFIX", "STATUS", "WORKFLOWS",
                                               "USAGE", "EXPIRES", "WEBHOOK", "LAST", "USED"]
    assert made["id"] in listing and made["key"] not in listing
    assert made["key"][8:] not in await served.ok("api-key", "list", "--json",
                                                  token=served.admin)
    shown = await served.ok("api-key", "show", made["id"][-8:], token=served.admin)
    assert re.search(r"^usage\s+0 of 5 this month", shown, re.M)
    assert re.search(r"^workflows\s+" + AGENT, shown, re.M)

    # a viewer may not manage keys; bad input is refused before anything is made
    code, _, err = await served.cli("api-key", "list", token=served.viewer)
    assert code == 2 and "permission denied" in err and err.count("\n") == 1
    code, _, err = await served.cli("api-key", "create", "--name", "x", "--usage-limit", "0",
                                    token=served.admin)
    assert code == 2 and "usageLimit" in err
    code, _, err = await served.cli("api-key", "create", "--name", "x", "--webhook-secret",
                                    "s", token=served.admin)
    assert code == 2 and "need --webhook-url" in err

    revoked = await served.ok("api-key", "revoke", made["id"], token=served.admin)
    assert revoked.startswith(f"API key {made['id']} (website) revoked at ")
    refused = await public_call(served.url, made["key"], "GET",
                                "/executions/0193a7e4-0000-7000-8000-000000000000/status")
    assert refused.status_code == 403 and refused.json()["message"] == "API key is inactive"


async def test_keys_made_beside_the_running_server_work_at_once(served: Served) -> None:
    out = await served.ok("api-key", "create", "--name", "beside", remote=False)
    secret = HEX64.search(out)
    assert secret, out
    assert "it is shown only this once" in out
    execution_id = await execute(served.url, secret.group())
    assert execution_id
    key_id = out.split()[2]
    assert "revoked" in await served.ok("api-key", "revoke", key_id, remote=False)
    refused = await public_call(served.url, secret.group(), "GET",
                                f"/executions/{execution_id}/status")
    assert refused.status_code == 403
    code, _, err = await served.cli("api-key", "show", "ffffffff", remote=False)
    assert code == 2 and "no API key" in err


async def test_webhooks_and_messages_over_url(served: Served) -> None:
    async with webhook_receiver([200, 503]) as receiver:
        made = json.loads(await served.ok(
            "api-key", "create", "--name", "hooked", "--webhook-url", receiver.url,
            "--webhook-events", "execution.pending_approval", "--webhook-secret", "s3cret",
            "--json", token=served.admin))
        assert made["webhookEvents"] == ["execution.pending_approval"]
        execution_id = await execute(served.url, made["key"], rows=2)
        [first] = await receiver.received(1, timeout=20)
        assert json.loads(first.body)["event"] == "execution.pending_approval"
        # signed by the served process with the key's secret, both ways
        assert verify_webhook_signature(first.body, first.headers["x-webhook-signature"],
                                        "s3cret")
        assert not verify_webhook_signature(first.body, first.headers["x-webhook-signature"],
                                            "other")
        Webhook(base64.b64encode(b"s3cret").decode()).verify(first.body, first.headers)
        assert first.headers["x-webhook-execution-id"] == execution_id

        async with asyncio.timeout(20):
            while True:
                listed = json.loads(await served.ok("webhooks", "list", "--status", "delivered",
                                                    "--json", token=served.admin))
                mine = [d for d in listed if d["executionId"] == execution_id]
                if mine:
                    break
                await asyncio.sleep(0.2)
        delivery = mine[0]
        table = await served.ok("webhooks", "list", token=served.admin)
        assert table.splitlines()[0].split() == ["ID", "EVENT", "TARGET", "STATUS", "TRIES",
                                                 "LAST", "NEXT", "RETRY", "EXECUTION"]
        assert delivery["id"] in table and "s3cret" not in table

        # sent again: the receiver answers 503 this time, so the command says it failed
        code, out, err = await served.cli("webhooks", "redeliver", delivery["id"][:8],
                                          token=served.admin)
        assert code == 1, (out, err)
        assert "failed: HTTP 503; next retry at " in out
        assert receiver.requests[1].headers["webhook-id"] == delivery["id"]
        code, _, err = await served.cli("webhooks", "redeliver", delivery["id"],
                                        token=served.viewer)
        assert code == 2 and "permission denied" in err

        approved = await public_call(served.url, made["key"], "POST",
                                     f"/executions/{execution_id}/approve")
        assert approved.status_code == 200
        async with asyncio.timeout(20):
            while True:
                found = json.loads(await served.ok("agents", "messages", "--execution",
                                                   execution_id[-8:], "--json",
                                                   token=served.viewer))
                if len(found) == 2:
                    break
                await asyncio.sleep(0.2)
        assert {m["customerId"] for m in found} == {"CUST001", "CUST002"}
        table = await served.ok("agents", "messages", "--execution", execution_id,
                                token=served.viewer)
        assert table.splitlines()[0].split()[:3] == ["SENT", "EXECUTION", "AGENT"]
        assert "CUST002" in table


async def test_embedded_reads_beside_the_server_and_redelivery_needs_it(
        served: Served) -> None:
    listed = json.loads(await served.ok("webhooks", "list", "--json", remote=False))
    assert isinstance(listed, list)
    if listed:
        code, _, err = await served.cli("webhooks", "redeliver", listed[0]["id"],
                                        remote=False)
        assert code == 2 and "--url" in err  # the server holds the data dir: go through it
    code, out, _ = await served.cli("agents", "messages", remote=False)
    assert code == 0 and out.splitlines()[0].startswith("SENT")


async def test_embedded_redelivery_starts_the_engine_and_sends(tmp_path: Path) -> None:
    from public.support import open_public_engine, until_waiting

    data = tmp_path / "data"
    async with webhook_receiver() as receiver:
        engine = await open_public_engine(data, extra={
            "webhooks": {"allow_private_targets": True}})
        try:
            made = await engine.public.create_key(
                "solo", webhook_url=receiver.url, webhook_events=["execution.started"])
            started = await engine.public.execute(
                await engine.public.authenticate(made.secret), AGENT,
                {"csvData": customers(1)})
            await until_waiting(engine, started.execution_id)
            await receiver.received(1)
            async with asyncio.timeout(10):
                while not (await engine.outbox.deliveries(status="delivered"))[1]:
                    await asyncio.sleep(0.05)
            [delivery], _ = await engine.outbox.deliveries()
        finally:
            await engine.close()
        served = Served(tmp_path, "", data, "", "")
        refused = await served.cli("webhooks", "redeliver", delivery.id, "--json",
                                   remote=False)
        assert refused[0] == 1 and "allow_private_targets" in json.loads(refused[1])[
            "lastError"]  # loopback is refused unless the configuration allows it
        code, out, err = await served.cli(
            "webhooks", "redeliver", delivery.id, "--json", remote=False,
            FLOWDECK_WEBHOOKS__ALLOW_PRIVATE_TARGETS="true")
        assert code == 0, (out, err)
        assert json.loads(out)["status"] == "delivered"
        assert json.loads(out)["attempts"] == 1
        assert len(receiver.requests) == 2
        assert receiver.requests[1].headers["webhook-id"] == delivery.id
