"""The public agent API at engine level, on a real engine and SQLite: the spec's complete
example, the reject path, truncation, key scoping, who decides first, and bad input."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from flowdeck.core.clock import ManualClock
from flowdeck.core.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from flowdeck.core.ids import is_uuid
from flowdeck.core.public import (
    API_KEY_LABEL,
    CSV_TRUNCATED_LABEL,
    InvalidApiKey,
    iso_ms,
    public_status,
)
from flowdeck.engine.engine import Engine
from flowdeck.engine.keys import TokenStore
from public.support import (
    AGENT,
    QUICK,
    SPEC_ROW,
    customers,
    new_key,
    open_public_engine,
    until_waiting,
)

DISPLAY = ["customerId", "name", "phone", "generated_content", "compliance_status"]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    eng = await open_public_engine(tmp_path / "data")
    try:
        yield eng
    finally:
        await eng.close()


async def test_the_spec_complete_example(engine: Engine) -> None:
    """execute → pending_approval → approve → completed → results, in the spec's shapes."""
    key, _ = await new_key(engine)
    rows = customers(3)
    started = await engine.public.execute(key, AGENT, {"csvData": rows},
                                          "Marketing campaign execution")
    body = started.to_dict()
    assert set(body) == {"executionId", "status", "startedAt", "message"}
    assert is_uuid(body["executionId"]) and body["status"] == "pending"
    assert body["message"] == "Execution started successfully"
    assert body["startedAt"].endswith("Z") and len(body["startedAt"]) == 24  # milliseconds

    await until_waiting(engine, started.execution_id)
    status = (await engine.public.status(key, started.execution_id)).to_dict()
    assert status == {"id": started.execution_id, "status": "pending_approval",
                      "startedAt": body["startedAt"], "completedAt": None, "error": None,
                      "approvalStatus": None}

    pending = (await engine.public.pending_approval(key, started.execution_id)).to_dict()
    assert pending["id"] == started.execution_id and pending["workflowId"] == AGENT
    assert pending["status"] == "pending_approval" and pending["startedAt"] == body["startedAt"]
    data = pending["approvalData"]
    assert data["displayFields"] == DISPLAY
    assert data["metadata"] == {"totalRows": 3, "title": "Review Generated WhatsApp Messages",
                                "description": data["metadata"]["description"],
                                "allowBulkApproval": True, "requireComment": False}
    assert [list(r) for r in data["rows"]] == [DISPLAY] * 3
    first = data["rows"][0]
    assert first["customerId"] == "CUST001" and first["name"] == "John Doe"
    assert first["phone"] == "+918610560986" and first["compliance_status"] == "passed"
    assert first["generated_content"].startswith("Dear John Doe,")
    assert "Mumbai" in first["generated_content"]
    assert first["generated_content"].endswith("Reply STOP to opt out.")

    approved = await engine.public.approve(key, started.execution_id,
                                           comment="Content approved, looks good", by="website")
    assert approved.to_dict() == {"executionId": started.execution_id, "status": "approved",
                                  "message": "Execution approved and will continue"}
    final = await engine.wait_until_terminal(started.execution_id, timeout=15)
    assert final.state.current == "SUCCESS"

    status = (await engine.public.status(key, started.execution_id)).to_dict()
    assert status["status"] == "completed" and status["approvalStatus"] == "approved"
    assert status["completedAt"] == iso_ms(final.state.histories[-1].date)
    results = (await engine.public.results(key, started.execution_id)).to_dict()
    assert set(results) == {"id", "status", "output", "error", "startedAt", "completedAt"}
    assert results["status"] == "completed" and results["error"] is None
    output = results["output"]
    assert output["successCount"] == 3 and output["failedCount"] == 0
    assert [r["customerId"] for r in output["results"]] == ["CUST001", "CUST002", "CUST003"]
    assert all(r["status"] == "sent" and r["messageId"] for r in output["results"])
    # delivered to the local outbox, which lists exactly these messages
    messages, total = await engine.public.list_messages(execution_id=started.execution_id)
    assert total == 3
    assert [m.message_id for m in messages] == [r["messageId"] for r in output["results"]]
    assert messages[0].recipient == "+918610560986" and messages[0].channel == "whatsapp"
    assert messages[0].content == first["generated_content"]
    # the deck's approval is the same one, decided by the API caller
    [approval] = await engine.approvals.list(None, execution_id=started.execution_id)
    assert approval.status == "approved" and approval.decided_by == "website"
    assert approval.comment == "Content approved, looks good"


async def test_reject_stops_the_execution_cancelled(engine: Engine) -> None:
    key, _ = await new_key(engine)
    started = await engine.public.execute(key, AGENT, {"csvData": customers(2)})
    await until_waiting(engine, started.execution_id)
    rejected = await engine.public.reject(key, started.execution_id,
                                          comment="Content does not meet standards", by="website")
    assert rejected.to_dict() == {"executionId": started.execution_id, "status": "rejected",
                                  "message": "Execution rejected and stopped"}
    final = await engine.wait_until_terminal(started.execution_id, timeout=15)
    assert final.state.current == "CANCELLED"
    status = (await engine.public.status(key, started.execution_id)).to_dict()
    assert status["status"] == "cancelled" and status["approvalStatus"] == "rejected"
    assert status["completedAt"] is not None and status["error"] is None
    results = await engine.public.results(key, started.execution_id)
    assert results.output is None
    assert (await engine.public.list_messages())[1] == 0  # nothing was delivered
    with pytest.raises(ConflictError, match="already rejected by website"):
        await engine.public.pending_approval(key, started.execution_id)


async def test_compliance_failures_are_shown_and_not_sent(engine: Engine) -> None:
    key, _ = await new_key(engine)
    rows = customers(3)
    rows[1]["phone"] = "12345"  # not E.164
    started = await engine.public.execute(key, AGENT, {"csvData": rows})
    await until_waiting(engine, started.execution_id)
    data = (await engine.public.pending_approval(key, started.execution_id)).approval_data
    assert [r["compliance_status"] for r in data.rows] == ["passed", "failed", "passed"]
    await engine.public.approve(key, started.execution_id, by="website")
    await engine.wait_until_terminal(started.execution_id, timeout=15)
    output = (await engine.public.results(key, started.execution_id)).output
    assert output is not None
    assert (output["successCount"], output["failedCount"]) == (2, 1)
    assert output["results"][1] == {"customerId": "CUST002", "status": "blocked",
                                    "messageId": None}


async def test_150_rows_become_100_and_the_execution_says_so(engine: Engine) -> None:
    key, _ = await new_key(engine)
    started = await engine.public.execute(key, AGENT, {"csvData": customers(150)}, "big")
    assert (started.csv_rows_received, started.csv_rows_kept) == (150, 100)
    execution = await engine.get_execution(started.execution_id)
    assert len(execution.inputs["csvData"]) == 100
    assert execution.inputs["csvData"][-1]["customerId"] == "CUST100"
    assert execution.label(CSV_TRUNCATED_LABEL) == "150 rows received, 100 kept"
    assert execution.label(API_KEY_LABEL) == key.id
    assert execution.label("system.from") == "public-api"
    assert execution.variables == {"apiKey": key.id, "apiKeyName": key.name,
                                   "description": "big"}
    await until_waiting(engine, started.execution_id)
    pending = await engine.public.pending_approval(key, started.execution_id)
    assert pending.to_dict()["approvalData"]["metadata"]["totalRows"] == 100
    # 100 rows exactly are kept as they are, and say nothing about truncation
    exact = await engine.public.execute(key, AGENT, {"csvData": customers(100)})
    assert (await engine.get_execution(exact.execution_id)).label(CSV_TRUNCATED_LABEL) is None
    # a JSON text of rows is rows too
    text = await engine.public.execute(key, AGENT, {"csvData": json.dumps(customers(101))})
    assert text.csv_rows_kept == 100
    for execution_id in (started.execution_id, exact.execution_id, text.execution_id):
        await until_waiting(engine, execution_id)
        await engine.public.reject(key, execution_id, by="website")


async def test_a_key_sees_only_its_own_executions(engine: Engine) -> None:
    mine, _ = await new_key(engine, "mine")
    theirs, _ = await new_key(engine, "theirs")
    started = await engine.public.execute(mine, AGENT, {"csvData": [SPEC_ROW]})
    for call in (engine.public.status, engine.public.results, engine.public.pending_approval):
        with pytest.raises(NotFoundError, match=r"^Execution not found$"):
            await call(theirs, started.execution_id)
    with pytest.raises(NotFoundError, match=r"^Execution not found$"):
        await engine.public.approve(theirs, started.execution_id, by="theirs")
    # an execution nobody started through the API is not found either, nor a malformed id
    await engine.apply_flow(QUICK)
    direct = await engine.create_execution("agents", "quick")
    for execution_id in (direct.id, "nope", "../../etc", "\ud800", "0" * 5000):
        with pytest.raises(NotFoundError, match=r"^Execution not found$"):
            await engine.public.status(mine, execution_id)
    # a flow whose own labels name a key does not make its executions that key's
    await engine.apply_flow(QUICK.replace("tasks:", f"labels:\n  system.apiKey: {mine.id}\n"
                                                   "tasks:"))
    forged = await engine.create_execution("agents", "quick")
    assert forged.label(API_KEY_LABEL) == mine.id
    with pytest.raises(NotFoundError, match=r"^Execution not found$"):
        await engine.public.status(mine, forged.id)
    await engine.wait_until_terminal(forged.id, timeout=15)
    assert [e for e in await engine.event_reader.after(0, source="public")
            if e.execution_id == forged.id] == []
    await until_waiting(engine, started.execution_id)
    assert (await engine.public.status(mine, started.execution_id)).status == "pending_approval"
    await engine.public.reject(mine, started.execution_id, by="mine")


async def test_allowed_workflows_inactive_expired_and_disabled(tmp_path: Path) -> None:
    clock = ManualClock()
    engine = await open_public_engine(tmp_path / "data", clock=clock)
    try:
        await engine.apply_flow(QUICK)
        only_quick, _ = await new_key(engine, "only-quick", workflows=["quick"])
        with pytest.raises(PermissionDenied, match="may not execute workflow"):
            await engine.public.execute(only_quick, AGENT, {"csvData": [SPEC_ROW]})
        assert (await engine.public.execute(only_quick, "quick")).status == "pending"
        # a workflow outside the key's list is refused whether it exists or not
        with pytest.raises(PermissionDenied, match="may not execute workflow"):
            await engine.public.execute(only_quick, "nope")

        anyone, _ = await new_key(engine, "anyone")
        with pytest.raises(NotFoundError, match=r"^Workflow not found$"):
            await engine.public.execute(anyone, "missing")
        with pytest.raises(NotFoundError, match=r"^Workflow not found$"):
            await engine.public.execute(anyone, "../secret\u202e")
        # a flow outside the agents' namespace is no agent
        await engine.apply_flow(QUICK.replace("namespace: agents", "namespace: other"))
        await engine.apply_flow(QUICK.replace("id: quick", "id: elsewhere")
                                .replace("namespace: agents", "namespace: other"))
        with pytest.raises(NotFoundError):
            await engine.public.execute(anyone, "elsewhere")

        await engine.apply_flow(QUICK + "disabled: true\n")
        with pytest.raises(PermissionDenied, match=r"^Workflow is inactive$"):
            await engine.public.execute(anyone, "quick")

        expiring, _ = await new_key(engine, "expiring", expires_in=timedelta(hours=1))
        clock.advance(timedelta(hours=2))
        with pytest.raises(PermissionDenied, match=r"^API key has expired$"):
            await engine.public.execute(expiring, AGENT, {"csvData": [SPEC_ROW]})
        with pytest.raises(PermissionDenied, match=r"^API key has expired$"):
            await engine.public.status(expiring, "01a24326-a1ae-74cd-9ff2-cd970a2e6da1")

        revoked = await engine.public.revoke_key(anyone.id)
        assert revoked.status(clock.now()) == "inactive"
        stale = await engine.public.authenticate((await engine.public.create_key("x")).secret)
        await engine.public.revoke_key(stale.id)
        with pytest.raises(PermissionDenied, match=r"^API key is inactive$"):
            await engine.public.execute(stale, AGENT, {"csvData": [SPEC_ROW]})
        # a key revoked after it authenticated is refused where the execution is written
        with pytest.raises(PermissionDenied, match=r"^API key is inactive$"):
            await engine.public.execute(anyone, AGENT, {"csvData": [SPEC_ROW]})
    finally:
        await engine.close()


async def test_keys_are_hashed_shown_once_and_separate_from_tokens(engine: Engine) -> None:
    created = await engine.public.create_key(
        "website", workflows=[AGENT], usage_limit=10, webhook_url="https://example.com/hook",
        webhook_secret="s3cret")
    secret = created.secret
    assert len(secret) == 64 and all(c in "0123456789abcdef" for c in secret)
    shown = created.to_dict(engine.clock.now())
    assert shown["key"] == secret and shown["id"] == created.key.id
    listed = [k.to_dict(engine.clock.now()) for k in await engine.public.list_keys()]
    assert listed[0]["webhookEvents"] == ["execution.started", "execution.completed",
                                          "execution.failed", "execution.pending_approval"]
    assert listed[0]["hasWebhookSecret"] is True and listed[0]["usageLimit"] == 10
    text = repr(listed) + repr(await engine.public.get_key(created.key.id))
    assert secret not in text and "s3cret" not in text
    rows = await engine.store.fetchall("SELECT sha256, kind FROM api_tokens")
    assert [tuple(r) for r in rows] == [(hashlib.sha256(secret.encode()).hexdigest(),
                                         "public")]
    # the same key in upper case is the same key; anything else is "Invalid API key"
    assert (await engine.public.authenticate(secret.upper())).id == created.key.id
    for bad in (None, "", "x" * 64, secret[:-1], secret + "0", "é" * 64, "\ud800" * 64):
        with pytest.raises(InvalidApiKey, match=r"^Invalid API key$"):
            await engine.public.authenticate(bad)
    # a public key is no Kestra API token, and a token is no public key
    tokens = TokenStore(engine.store, engine.clock)
    assert await tokens.authenticate(secret) is None
    assert await tokens.list_all() == [] and await tokens.count_active() == 0
    with pytest.raises(NotFoundError):
        await tokens.revoke(created.key.id)
    _, token_secret = await tokens.create("admin", "ops")
    with pytest.raises(InvalidApiKey):
        await engine.public.authenticate(token_secret)
    assert [k.id for k in await engine.public.list_keys()] == [created.key.id]


@pytest.mark.parametrize(("options", "field"), [
    ({"name": ""}, "name"),
    ({"name": "a\nb"}, "name"),
    ({"name": "x", "usage_limit": 0}, "usageLimit"),
    ({"name": "x", "usage_limit": True}, "usageLimit"),
    ({"name": "x", "workflows": ["a b"]}, "workflows[0]"),
    ({"name": "x", "webhook_url": "ftp://example.com"}, "webhookUrl"),
    ({"name": "x", "webhook_url": "https://u:p@example.com/"}, "webhookUrl"),
    ({"name": "x", "webhook_events": ["execution.started"]}, "webhookEvents"),
    ({"name": "x", "webhook_url": "https://example.com", "webhook_events": ["nope"]},
     "webhookEvents[0]"),
    ({"name": "x", "expires_in": timedelta(0)}, "expiresIn"),
])
async def test_bad_key_fields_are_named(engine: Engine, options: dict[str, object],
                                        field: str) -> None:
    name = options.pop("name")
    with pytest.raises(ValidationError) as caught:
        await engine.public.create_key(name, **options)  # type: ignore[arg-type]
    assert caught.value.problems[0][0] == field


async def test_the_first_decision_wins_whoever_makes_it(engine: Engine) -> None:
    key, _ = await new_key(engine)
    started = await engine.public.execute(key, AGENT, {"csvData": [SPEC_ROW]})
    await until_waiting(engine, started.execution_id)
    # the reviewer in the deck decides first; the API caller hears who and when
    pending = await engine.public.pending_approval(key, started.execution_id)
    await engine.approvals.decide(pending.approval_id, approve=True, by="alice")
    with pytest.raises(ConflictError, match="already approved by alice at ") as caught:
        await engine.public.reject(key, started.execution_id, by="website")
    assert caught.value.details["decidedBy"] == "alice"
    await engine.wait_until_terminal(started.execution_id, timeout=15)

    # two API callers at once: exactly one wins, the other is told who won
    second = await engine.public.execute(key, AGENT, {"csvData": [SPEC_ROW]})
    await until_waiting(engine, second.execution_id)
    outcomes = await asyncio.gather(
        engine.public.approve(key, second.execution_id, by="one"),
        engine.public.reject(key, second.execution_id, by="two"),
        return_exceptions=True)
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(won) == 1 and len(lost) == 1 and isinstance(lost[0], ConflictError)
    assert f"by {won[0].decided_by} at" in str(lost[0])
    final = await engine.wait_until_terminal(second.execution_id, timeout=15)
    assert final.state.current == ("SUCCESS" if won[0].status == "approved" else "CANCELLED")


async def test_nothing_waiting_is_a_conflict(engine: Engine) -> None:
    await engine.apply_flow(QUICK)
    key, _ = await new_key(engine)
    started = await engine.public.execute(key, "quick")
    await engine.wait_until_terminal(started.execution_id, timeout=15)
    with pytest.raises(ConflictError, match=r"not waiting for approval \(status: completed\)"):
        await engine.public.pending_approval(key, started.execution_id)
    with pytest.raises(ConflictError, match="not waiting for approval"):
        await engine.public.approve(key, started.execution_id, by="website")
    results = (await engine.public.results(key, started.execution_id)).to_dict()
    assert results["output"] == {"answer": 42}  # typed as the flow declares it


@pytest.mark.parametrize(("body", "description", "field"), [
    ([1, 2], None, "input"),
    ({"csvData": [{"name": "\ud800"}]}, None, "input.csvData[0].name"),
    ({"csvData": float("nan")}, None, "input.csvData"),
    ({"x": {"y": object()}}, None, "input.x.y"),
    ({"csvData": [{"n": 10 ** 400}]}, None, "input.csvData[0].n"),
    ({}, "d" * 2001, "description"),
    ({}, 42, "description"),
    ({}, "\udfff", "description"),
])
async def test_bad_input_is_named_and_costs_nothing(engine: Engine, body: object,
                                                    description: object, field: str) -> None:
    key, _ = await new_key(engine, usage_limit=1)
    with pytest.raises(ValidationError) as caught:
        await engine.public.execute(key, AGENT, body, description)
    assert caught.value.problems[0][0] == field
    assert (await engine.public.get_key(key.id)).usage_this_month(engine.clock.now()) == 0


async def test_deep_json_is_refused_quickly(engine: Engine) -> None:
    key, _ = await new_key(engine)
    deep: object = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValidationError, match="nests deeper than 32 levels"):
        await engine.public.execute(key, AGENT, {"csvData": deep})
    # a missing csvData is the flow's own input error, named as the request names it
    with pytest.raises(ValidationError, match=r"^input\.csvData: is required$"):
        await engine.public.execute(key, AGENT, {})


def test_every_state_has_a_public_status() -> None:
    assert public_status("CREATED") == "pending"
    assert public_status("QUEUED") == "pending"
    assert public_status("RUNNING") == "running"
    assert public_status("PAUSED") == "pending_approval"
    assert public_status("SUCCESS") == "completed"
    assert public_status("WARNING") == "completed"
    assert public_status("FAILED") == "failed"
    assert public_status("KILLED") == "cancelled"
    assert public_status("CANCELLED") == "cancelled"
    assert public_status("SOMETHING_NEW") == "running"


async def test_agents_live_in_the_configured_namespace(tmp_path: Path) -> None:
    engine = await open_public_engine(tmp_path / "data", extra={"public": {"namespace": "bots"}})
    try:
        assert [f.id for f in engine.list_flows("bots")] == [AGENT]
        assert engine.list_flows("agents") == []
        again = await engine.public.install_bundled_agents()
        assert [how for _, how in again] == ["unchanged"]
        key, _ = await new_key(engine)
        started = await engine.public.execute(key, AGENT, {"csvData": [SPEC_ROW]})
        assert (await engine.get_execution(started.execution_id)).namespace == "bots"
        await until_waiting(engine, started.execution_id)
        await engine.public.reject(key, started.execution_id, by="website")
    finally:
        await engine.close()


async def test_a_waiting_agent_survives_a_restart_of_flowdeck(tmp_path: Path) -> None:
    engine = await open_public_engine(tmp_path / "data")
    try:
        key, secret = await new_key(engine)
        started = await engine.public.execute(key, AGENT, {"csvData": customers(2)})
        await until_waiting(engine, started.execution_id)
    finally:
        await engine.close()
    engine = await open_public_engine(tmp_path / "data")
    try:
        key = await engine.public.authenticate(secret)
        assert (await engine.public.status(key, started.execution_id)).status == \
            "pending_approval"
        pending = await engine.public.pending_approval(key, started.execution_id)
        assert len(pending.approval_data.rows) == 2
        await engine.public.approve(key, started.execution_id, by="website")
        final = await engine.wait_until_terminal(started.execution_id, timeout=15)
        assert final.state.current == "SUCCESS"
        output = (await engine.public.results(key, started.execution_id)).output
        assert output is not None and output["successCount"] == 2
        kinds = [e.kind for e in await engine.event_reader.after(0, source="public")]
        assert kinds == ["execution.started", "execution.pending_approval",
                         "execution.completed"]
    finally:
        await engine.close()
