"""The public API over real HTTP (uvicorn on 127.0.0.1, a real engine): the spec's complete
example and the reject path in the spec's shapes, the first decision winning between the
deck's approvals API and this one, and a key seeing only its own executions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowdeck.core.public import iso_ms
from public.http_support import API, PublicServer, bearer, error_body, public_server
from public.support import AGENT, SPEC_ROW, customers, until_waiting

DISPLAY = ["customerId", "name", "phone", "generated_content", "compliance_status"]


async def execute(api: PublicServer, secret: str, rows: list[dict[str, Any]],
                  description: str | None = "Marketing campaign execution") -> str:
    answer = await api.client.post(f"{API}/agents/{AGENT}/execute", headers=bearer(secret),
                                   json={"input": {"csvData": rows},
                                         "description": description})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert list(body) == ["executionId", "status", "startedAt", "message"]
    assert body["status"] == "pending"
    assert body["message"] == "Execution started successfully"
    assert body["startedAt"].endswith("Z") and len(body["startedAt"]) == 24
    execution_id: str = body["executionId"]
    return execution_id


async def get(api: PublicServer, secret: str, execution_id: str, what: str) -> dict[str, Any]:
    answer = await api.client.get(f"{API}/executions/{execution_id}/{what}",
                                  headers=bearer(secret))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_the_spec_complete_example(tmp_path: Path) -> None:
    """execute → pending_approval → approve → completed → results, every body as the spec
    shows it, and the rate limit headers on each answer."""
    async with public_server(tmp_path) as api:
        secret = await api.key()
        execution_id = await execute(api, secret, customers(3))
        await until_waiting(api.engine, execution_id)

        status = await get(api, secret, execution_id, "status")
        assert status == {"id": execution_id, "status": "pending_approval",
                          "startedAt": status["startedAt"], "completedAt": None,
                          "error": None, "approvalStatus": None}
        assert list(status) == ["id", "status", "startedAt", "completedAt", "error",
                                "approvalStatus"]

        pending = await get(api, secret, execution_id, "pending-approval")
        assert list(pending) == ["id", "workflowId", "status", "approvalData", "startedAt"]
        assert (pending["id"], pending["workflowId"], pending["status"]) == (
            execution_id, AGENT, "pending_approval")
        data = pending["approvalData"]
        assert list(data) == ["rows", "metadata", "displayFields"]
        assert data["displayFields"] == DISPLAY
        assert [list(row) for row in data["rows"]] == [DISPLAY] * 3
        assert data["rows"][0]["customerId"] == "CUST001"
        assert data["rows"][0]["phone"] == SPEC_ROW["phone"]
        assert "John" in data["rows"][0]["generated_content"]
        assert data["rows"][0]["compliance_status"] == "passed"
        metadata = data["metadata"]
        assert list(metadata)[:5] == ["totalRows", "title", "description", "allowBulkApproval",
                                      "requireComment"]
        assert metadata["totalRows"] == 3
        assert metadata["title"] == "Review Generated WhatsApp Messages"
        assert metadata["allowBulkApproval"] is True and metadata["requireComment"] is False

        approve = await api.client.post(f"{API}/executions/{execution_id}/approve",
                                        headers=bearer(secret),
                                        json={"comment": "Content approved, looks good"})
        assert approve.status_code == 200, approve.text
        assert approve.json() == {"executionId": execution_id, "status": "approved",
                                  "message": "Execution approved and will continue"}
        final = await api.engine.wait_until_terminal(execution_id, timeout=20)

        status = await get(api, secret, execution_id, "status")
        assert status["status"] == "completed" and status["approvalStatus"] == "approved"
        assert status["completedAt"] == iso_ms(final.state.histories[-1].date)
        results = await get(api, secret, execution_id, "results")
        assert list(results) == ["id", "status", "output", "error", "startedAt", "completedAt"]
        assert results["status"] == "completed" and results["error"] is None
        output = results["output"]
        assert (output["successCount"], output["failedCount"]) == (3, 0)
        assert [r["customerId"] for r in output["results"]] == ["CUST001", "CUST002", "CUST003"]
        assert all(list(r) == ["customerId", "status", "messageId"] and r["status"] == "sent"
                   and r["messageId"] for r in output["results"])
        assert results["startedAt"] == status["startedAt"]
        assert results["completedAt"] == status["completedAt"]

        # the approval the deck shows is the one decided here, by this key
        approvals = (await api.client.get("/api/v1/main/approvals",
                                          params={"status": "all"})).json()
        mine = [a for a in approvals if a["executionId"] == execution_id]
        assert [(a["status"], a["decidedBy"], a["comment"]) for a in mine] == [
            ("approved", "API key website", "Content approved, looks good")]


async def test_the_reject_path_stops_the_execution(tmp_path: Path) -> None:
    async with public_server(tmp_path) as api:
        secret = await api.key()
        execution_id = await execute(api, secret, customers(2), description=None)
        await until_waiting(api.engine, execution_id)
        reject = await api.client.post(f"{API}/executions/{execution_id}/reject",
                                       headers=bearer(secret),
                                       json={"comment": "Content does not meet standards"})
        assert reject.status_code == 200, reject.text
        assert reject.json() == {"executionId": execution_id, "status": "rejected",
                                 "message": "Execution rejected and stopped"}
        await api.engine.wait_until_terminal(execution_id, timeout=20)
        status = await get(api, secret, execution_id, "status")
        assert (status["status"], status["approvalStatus"]) == ("cancelled", "rejected")
        assert status["completedAt"] is not None
        assert (await get(api, secret, execution_id, "results"))["output"] is None
        # nothing waits any more: 409 in the API's body, saying who decided and when
        again = await api.client.post(f"{API}/executions/{execution_id}/approve",
                                      headers=bearer(secret))
        message = error_body(again, 409)
        assert "rejected by API key website at " in message
        assert "rejected by API key website" in error_body(
            await api.client.get(f"{API}/executions/{execution_id}/pending-approval",
                                 headers=bearer(secret)), 409)
        assert await api.engine.public.list_messages(execution_id=execution_id) == ([], 0)


async def test_the_first_decision_wins_between_the_deck_and_the_api(tmp_path: Path) -> None:
    async with public_server(tmp_path) as api:
        secret = await api.key()
        execution_id = await execute(api, secret, customers(1))
        await until_waiting(api.engine, execution_id)
        pending = (await api.client.get("/api/v1/main/approvals",
                                        params={"executionId": execution_id})).json()
        assert len(pending) == 1
        # the reviewer in the deck (its approvals API, as the deck and the CLI use it) first
        deck = await api.client.post(f"/api/v1/main/approvals/{pending[0]['id']}/approve",
                                     json={"decidedBy": "alice", "comment": "fine"})
        assert deck.status_code == 200, deck.text
        decided_at = deck.json()["decidedAt"]
        late = await api.client.post(f"{API}/executions/{execution_id}/reject",
                                     headers=bearer(secret), json={"comment": "no"})
        message = error_body(late, 409)
        assert "approved by alice at" in message and decided_at[:19] in message
        await api.engine.wait_until_terminal(execution_id, timeout=20)
        status = await get(api, secret, execution_id, "status")
        assert (status["status"], status["approvalStatus"]) == ("completed", "approved")

        # and the other way round: the API first, the deck gets the 409
        second = await execute(api, secret, customers(1))
        await until_waiting(api.engine, second)
        waiting = (await api.client.get("/api/v1/main/approvals",
                                        params={"executionId": second})).json()
        first = await api.client.post(f"{API}/executions/{second}/approve",
                                      headers=bearer(secret))
        assert first.status_code == 200, first.text
        lost = await api.client.post(f"/api/v1/main/approvals/{waiting[0]['id']}/reject",
                                     json={"decidedBy": "alice"})
        assert lost.status_code == 409
        assert lost.json()["decidedBy"] == "API key website"


async def test_a_key_sees_only_the_executions_it_started(tmp_path: Path) -> None:
    async with public_server(tmp_path) as api:
        mine, theirs = await api.key("mine"), await api.key("theirs")
        execution_id = await execute(api, mine, customers(1))
        await until_waiting(api.engine, execution_id)
        for what in ("status", "results", "pending-approval"):
            answer = await api.client.get(f"{API}/executions/{execution_id}/{what}",
                                          headers=bearer(theirs))
            assert error_body(answer, 404) == "Execution not found"
        for action in ("approve", "reject"):
            answer = await api.client.post(f"{API}/executions/{execution_id}/{action}",
                                           headers=bearer(theirs))
            assert error_body(answer, 404) == "Execution not found"
        # an execution the deck started (no key at all), an unknown id, a malformed id
        other = await api.engine.create_execution("agents", AGENT,
                                                  inputs={"csvData": customers(1)})
        for unknown in (other.id, "0193a7e4-0000-7000-8000-000000000000", "not-an-id"):
            answer = await api.client.get(f"{API}/executions/{unknown}/status",
                                          headers=bearer(mine))
            assert error_body(answer, 404) == "Execution not found"
        # still waiting: the other key's attempts changed nothing
        assert (await get(api, mine, execution_id, "status"))["status"] == "pending_approval"


async def test_csv_data_is_cut_to_100_rows(tmp_path: Path) -> None:
    async with public_server(tmp_path) as api:
        secret = await api.key()
        execution_id = await execute(api, secret, customers(150))
        await until_waiting(api.engine, execution_id, timeout=30)
        data = (await get(api, secret, execution_id, "pending-approval"))["approvalData"]
        assert data["metadata"]["totalRows"] == 100 and len(data["rows"]) == 100
        assert data["rows"][-1]["customerId"] == "CUST100"
        execution = await api.engine.get_execution(execution_id)
        assert execution.label("system.csvTruncated") == "150 rows received, 100 kept"


async def test_serving_installs_the_bundled_agent_and_documents_the_api(
        tmp_path: Path) -> None:
    from flowdeck.server.dialects import DEFAULT_DIALECTS
    from flowdeck.server.serve import start_dialects
    from public.support import open_public_engine

    engine = await open_public_engine(tmp_path / "data", install=False)
    try:
        assert not engine.list_flows("agents")
        await start_dialects(engine, DEFAULT_DIALECTS)
        await start_dialects(engine, DEFAULT_DIALECTS)  # again: nothing changes
        agent = engine.get_flow("agents", AGENT)
        assert agent.revision == 1
    finally:
        await engine.close()
    async with public_server(tmp_path / "served") as api:
        paths = (await api.client.get("/openapi.json")).json()["paths"]
        assert {f"{API}/agents/{{workflow_id}}/execute",
                f"{API}/executions/{{execution_id}}/status",
                f"{API}/executions/{{execution_id}}/results",
                f"{API}/executions/{{execution_id}}/pending-approval",
                f"{API}/executions/{{execution_id}}/approve",
                f"{API}/executions/{{execution_id}}/reject"} <= set(paths)
