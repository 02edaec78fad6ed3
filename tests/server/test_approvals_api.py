"""flowdeck's approvals over HTTP, against a real loopback server over a real engine.

Raw httpx requests (no flowdeck client), so the wire shapes are what is tested: Approval JSON,
problem+json errors with who/when on a conflict, and the `/approvals/follow` event stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdeck.engine.engine import Engine
from flowdeck.server.app import ServerOptions
from helpers import apply, open_engine, wait_for_state
from live_server import LiveServer, start_server, stop_server

API = "/api/v1/main"

RELEASE = """
    id: release
    namespace: t.api
    inputs:
      - id: version
        type: STRING
        defaults: "1.0"
    tasks:
      - id: review
        type: flowdeck.approval.Request
        title: "Ship {{ inputs.version }}?"
        description: two services
        displayFields: [service]
        allowBulkApproval: true
        rows:
          - {service: api}
          - {service: web}
      - id: ship
        type: io.kestra.plugin.core.log.Log
        message: "shipped by {{ outputs.review.decidedBy }}"
    """
STRICT = """
    id: strict
    namespace: t.api
    tasks:
      - id: review
        type: flowdeck.approval.Request
        title: careful
        requireComment: true
    """


async def pending_approval(live: LiveServer, flow_id: str = "release",
                           inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    execution = await live.engine.create_execution("t.api", flow_id, inputs=inputs)
    await wait_for_state(live.engine, execution.id, "PAUSED")
    response = await live.client.get(f"{API}/approvals",
                                     params={"executionId": execution.id})
    assert response.status_code == 200
    [approval] = response.json()
    return approval  # type: ignore[no-any-return]


@pytest.fixture
async def flows(live: LiveServer) -> LiveServer:
    await apply(live.engine, RELEASE)
    await apply(live.engine, STRICT)
    return live


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["detail"] and body["message"]
    return body


async def test_list_get_and_approve(flows: LiveServer) -> None:
    live = flows
    approval = await pending_approval(live, inputs={"version": "2.1"})
    assert approval["title"] == "Ship 2.1?"
    assert approval["rows"] == [{"service": "api"}, {"service": "web"}]
    assert approval["displayFields"] == ["service"]
    assert approval["status"] == "pending" and approval["decidedBy"] is None
    assert approval["createdAt"].endswith("Z")
    listed = (await live.client.get(f"{API}/approvals")).json()
    assert [a["id"] for a in listed] == [approval["id"]]
    one = await live.client.get(f"{API}/approvals/{approval['id']}")
    assert one.json() == approval
    tenantless = await live.client.get(f"/api/v1/approvals/{approval['id']}")
    assert tenantless.json() == approval

    decided = await live.client.post(f"{API}/approvals/{approval['id']}/approve",
                                     json={"comment": "go", "decidedBy": "ada"})
    assert decided.status_code == 200
    body = decided.json()
    assert (body["status"], body["decidedBy"], body["comment"]) == ("approved", "ada", "go")
    assert body["decidedAt"].endswith("Z")
    final = await live.engine.wait_until_terminal(approval["executionId"], 10)
    assert final.state.current == "SUCCESS"
    assert (await live.client.get(f"{API}/approvals")).json() == []
    for status, count in (("approved", 1), ("rejected", 0), ("all", 1), ("pending", 0)):
        got = await live.client.get(f"{API}/approvals", params={"status": status})
        assert len(got.json()) == count, status


async def test_a_second_decision_is_a_conflict_naming_who_and_when(flows: LiveServer) -> None:
    live = flows
    approval = await pending_approval(live)
    path = f"{API}/approvals/{approval['id']}"
    first = await live.client.post(f"{path}/reject", json={"comment": "no", "decidedBy": "bob"})
    assert first.json()["status"] == "rejected"
    late = await live.client.post(f"{path}/approve", json={"decidedBy": "ada"})
    body = assert_problem(late, 409)
    assert body["decidedBy"] == "bob"
    assert body["decidedAt"] == first.json()["decidedAt"]
    assert "bob" in body["detail"] and "rejected" in body["detail"]
    final = await live.engine.wait_until_terminal(approval["executionId"], 10)
    assert final.state.current == "CANCELLED"


async def test_decided_by_defaults_to_api_and_the_body_is_optional(flows: LiveServer) -> None:
    live = flows
    approval = await pending_approval(live)
    answer = await live.client.post(f"{API}/approvals/{approval['id']}/approve")
    assert answer.status_code == 200
    assert answer.json()["decidedBy"] == "api"


async def test_bad_requests_are_clear_4xx(flows: LiveServer) -> None:
    live = flows
    assert_problem(await live.client.get(f"{API}/approvals/nope"), 404)
    assert_problem(await live.client.post(f"{API}/approvals/nope/approve", json={}), 404)
    bad_status = assert_problem(await live.client.get(f"{API}/approvals",
                                                      params={"status": "maybe"}), 400)
    assert "maybe" in bad_status["detail"]
    strict = await pending_approval(live, "strict")
    path = f"{API}/approvals/{strict['id']}"
    missing = assert_problem(await live.client.post(f"{path}/approve", json={}), 422)
    assert "comment" in missing["detail"]
    assert_problem(await live.client.post(f"{path}/approve", content=b"{not json",
                                          headers={"content-type": "application/json"}), 422)
    assert_problem(await live.client.post(f"{path}/approve", json=["a"]), 422)
    assert_problem(await live.client.post(f"{path}/approve", json={"comment": 3}), 422)
    ok = await live.client.post(f"{path}/approve", json={"comment": "checked"})
    assert ok.json()["status"] == "approved"


async def test_bulk_approve(flows: LiveServer) -> None:
    live = flows
    first = await pending_approval(live, inputs={"version": "1"})
    second = await pending_approval(live, inputs={"version": "2"})
    answer = await live.client.post(f"{API}/approvals/bulk-approve", json={
        "ids": [first["id"], second["id"]], "comment": "batch", "decidedBy": "carol"})
    assert answer.status_code == 200
    assert [(a["id"], a["status"], a["decidedBy"]) for a in answer.json()] == [
        (first["id"], "approved", "carol"), (second["id"], "approved", "carol")]
    for approval in (first, second):
        final = await live.engine.wait_until_terminal(approval["executionId"], 10)
        assert final.state.current == "SUCCESS"

    strict = await pending_approval(live, "strict")  # does not allow bulk approval
    third = await pending_approval(live, inputs={"version": "3"})
    refused = assert_problem(await live.client.post(f"{API}/approvals/bulk-approve", json={
        "ids": [third["id"], strict["id"]]}), 422)
    assert strict["id"] in refused["detail"]
    still = (await live.client.get(f"{API}/approvals/{third['id']}")).json()
    assert still["status"] == "pending"  # none of them was decided
    bodies: list[dict[str, Any]] = [{}, {"ids": []}, {"ids": "x"}, {"ids": [1]}]
    for body in bodies:
        assert_problem(await live.client.post(f"{API}/approvals/bulk-approve", json=body), 422)


class Frames:
    def __init__(self, response: httpx.Response) -> None:
        self.chunks = response.aiter_bytes()
        self.buffer = b""

    async def next_event(self) -> tuple[str, Any]:
        while True:
            while b"\n\n" not in self.buffer:
                self.buffer += await anext(self.chunks)
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            text = block.decode()
            if text.startswith(":"):
                continue
            id_line, data_line = text.split("\n")
            assert id_line.startswith("id: ") and data_line.startswith("data: ")
            return id_line[4:], json.loads(data_line[6:])


async def test_follow_streams_created_and_decided(flows: LiveServer) -> None:
    live = flows
    async with live.client.stream("GET", f"{API}/approvals/follow",
                                  headers={"Accept": "text/event-stream"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = Frames(response)
        async with asyncio.timeout(10):
            while not live.engine._bus._by_topic.get("approval"):
                await asyncio.sleep(0.01)
            approval = await pending_approval(live)
            kind, data = await frames.next_event()
            assert kind == "created" and data["kind"] == "created"
            assert data["approval"]["id"] == approval["id"]
            await live.client.post(f"{API}/approvals/{approval['id']}/approve",
                                   json={"decidedBy": "ada"})
            kind, data = await frames.next_event()
            assert (kind, data["approval"]["status"], data["approval"]["decidedBy"]) == (
                "decided", "approved", "ada")


@contextlib.asynccontextmanager
async def authenticated(tmp_path: Path) -> AsyncIterator[tuple[Engine, httpx.AsyncClient]]:
    from flowdeck.server.auth import hash_password

    engine = await open_engine(tmp_path / "data")
    options = ServerOptions(basic_username="root@example.com",
                            basic_password_hash=hash_password("s3cret-pass"))
    server, task, url = await start_server(engine, options)
    client = httpx.AsyncClient(base_url=url, timeout=30,
                               auth=httpx.BasicAuth("root@example.com", "s3cret-pass"))
    try:
        yield engine, client
    finally:
        await client.aclose()
        await stop_server(server, task)
        await engine.close()


async def test_an_authenticated_user_is_who_decided(tmp_path: Path) -> None:
    async with authenticated(tmp_path) as (engine, client):
        await apply(engine, RELEASE)
        execution = await engine.create_execution("t.api", "release")
        await wait_for_state(engine, execution.id, "PAUSED")
        [approval] = (await client.get(f"{API}/approvals")).json()
        answer = await client.post(f"{API}/approvals/{approval['id']}/approve",
                                   json={"decidedBy": "someone-else"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["decidedBy"] == "root@example.com"
        anonymous = httpx.AsyncClient(base_url=str(client.base_url))
        try:
            assert (await anonymous.get(f"{API}/approvals")).status_code == 401
        finally:
            await anonymous.aclose()


async def test_approvals_appear_in_openapi(live: LiveServer) -> None:
    paths = (await live.client.get("/openapi.json")).json()["paths"]
    for path in ("/api/v1/main/approvals", "/api/v1/main/approvals/{approval_id}",
                 "/api/v1/main/approvals/{approval_id}/approve",
                 "/api/v1/main/approvals/bulk-approve", "/api/v1/main/approvals/follow"):
        assert path in paths, path


async def test_a_decision_on_a_killed_run_is_a_conflict_naming_what_ended_it(
        flows: LiveServer) -> None:
    live = flows
    approval = await pending_approval(live)
    killed = await live.client.delete(f"{API}/executions/{approval['executionId']}/kill")
    assert killed.status_code == 202
    await live.engine.wait_until_terminal(approval["executionId"], 10)
    late = await live.client.post(f"{API}/approvals/{approval['id']}/approve",
                                  json={"decidedBy": "ada"})
    body = assert_problem(late, 409)
    assert body["approvalStatus"] == "expired" and body["decidedBy"] is None
    assert body["reason"] and "kill" in body["reason"].lower()
    assert "expired" in body["detail"] and body["decidedAt"].endswith("Z")
    stored = (await live.client.get(f"{API}/approvals/{approval['id']}")).json()
    assert stored["status"] == "expired"
