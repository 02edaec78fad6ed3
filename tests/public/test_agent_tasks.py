"""The agent task types on a real engine: messages from a template (data never evaluated),
compliance rules written in the flow, delivery to the local outbox or a real HTTP gateway
(token, Idempotency-Key, failures reported) and never twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flowdeck.core.errors import InvalidFlowError
from flowdeck.engine.engine import Engine
from flowdeck.engine.tasks.agents import ComplianceRules
from helpers import run_flow
from public.support import customers, gateway, open_public_engine

PIPELINE = """
id: pipeline
namespace: t.agents
inputs:
  - id: rows
    type: JSON
tasks:
  - id: write
    type: flowdeck.agents.Personalise
    rows: "{{ inputs.rows }}"
    template: "Hi {{ row.name }} ({{ index }}). Reply STOP to opt out."
  - id: check
    type: flowdeck.agents.CheckCompliance
    rows: "{{ outputs.write.rows }}"
    rules:
      maxLength: 60
      requiredText: [Reply STOP to opt out]
      forbiddenPhrases: [risk-free]
      phonePattern: '\\+[1-9][0-9]{7,14}'
  - id: send
    type: flowdeck.agents.Deliver
    rows: "{{ outputs.check.rows }}"
    channel: sms
"""
RULES = ComplianceRules(maxLength=40, minLength=12, requiredText=["Reply STOP"],
                        forbiddenPhrases=["Risk-Free"], phonePattern=r"\+[1-9][0-9]{7,14}")


@pytest.mark.parametrize(("content", "phone", "problem"), [
    ("Offer! Reply STOP", "+918610560986", None),
    ("Offer! reply stop", "+918610560986", None),  # case-insensitive unless asked
    ("x" * 41 + " Reply STOP", "+918610560986", "longer than 40 characters"),
    ("Reply STOP", "+918610560986", "shorter than 12 characters"),
    ("Great offer for you", "+918610560986", "missing required text 'Reply STOP'"),
    ("A risk-free offer. Reply STOP", "+918610560986", "forbidden phrase 'Risk-Free'"),
    ("Offer! Reply STOP", "8610560986", "not in the expected format"),
    ("Offer! Reply STOP", "+91 8610 560986", "not in the expected format"),
    ("Offer! Reply STOP", "+" + "1" * 5000, "not in the expected format"),
    ("Offer! Reply STOP", None, "no phone number"),
])
def test_each_compliance_rule(content: str, phone: str | None, problem: str | None) -> None:
    found = RULES.problems(content, phone)
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and problem in found[0], found


async def test_bad_rules_are_refused_when_the_flow_is_created(engine: Engine) -> None:
    with pytest.raises(InvalidFlowError, match="invalid regular expression"):
        await engine.apply_flow(PIPELINE.replace("'\\+[1-9][0-9]{7,14}'", "'(['"))
    with pytest.raises(InvalidFlowError, match="maxLenght"):
        await engine.apply_flow(PIPELINE.replace("maxLength: 60", "maxLenght: 60"))


def outputs_of(execution: Any, task_id: str) -> dict[str, Any]:
    [task_run] = [tr for tr in execution.task_runs if tr.task_id == task_id]
    return dict(task_run.outputs or {})


async def test_messages_are_written_checked_and_kept_in_the_local_outbox(
        engine: Engine) -> None:
    await engine.apply_flow(PIPELINE)
    rows: list[dict[str, Any]] = customers(3)
    rows[1]["name"] = "{{ envs }} {% raw %}"  # data is never evaluated as a template
    rows[2]["name"] = "Ann, a very long name indeed that breaks the limit"
    done = await run_flow(engine, "t.agents", "pipeline", inputs={"rows": rows})
    assert done.state.current == "SUCCESS"
    written = outputs_of(done, "write")["rows"]
    assert written[0] == {"customerId": "CUST001", "name": "John Doe",
                          "phone": "+918610560986",
                          "generated_content": "Hi John Doe (0). Reply STOP to opt out."}
    assert written[1]["generated_content"] == "Hi {{ envs }} {% raw %} (1). Reply STOP to opt out."
    checked = outputs_of(done, "check")
    assert [r["compliance_status"] for r in checked["rows"]] == ["passed", "passed", "failed"]
    assert checked["findings"][0]["row"] == 3
    assert "longer than 60" in checked["findings"][0]["problems"][0]
    sent = outputs_of(done, "send")
    assert (sent["successCount"], sent["failedCount"]) == (2, 1)
    assert [r["status"] for r in sent["results"]] == ["sent", "sent", "blocked"]
    messages, total = await engine.public.list_messages()
    assert total == 2
    assert {m.customer_id for m in messages} == {"CUST001", "CUST002"}
    assert all(m.transport == "local" and m.channel == "sms" for m in messages)
    assert (await engine.public.messages.get(messages[0].id)).content == messages[0].content


async def test_a_template_error_names_the_row(engine: Engine) -> None:
    await engine.apply_flow(PIPELINE.replace("{{ row.name }}", "{{ row.name.first }}"))
    done = await run_flow(engine, "t.agents", "pipeline", inputs={"rows": [{"name": "x"}]})
    assert done.state.current == "FAILED"
    errors = [e.message for e in await engine.logs_for(done.id, min_level="ERROR")]
    assert any("row 1:" in message for message in errors), errors


async def test_http_delivery_with_token_and_idempotency_key_never_twice(
        tmp_path: Path) -> None:
    async with gateway([200, 503, 200]) as gw:
        engine = await open_public_engine(tmp_path / "data", install=False, extra={
            "public": {"delivery": {"url": gw.url, "token_env": "GATEWAY_TOKEN"}}})
        try:
            engine.environ["GATEWAY_TOKEN"] = "tok-123"
            await engine.apply_flow(PIPELINE)
            done = await run_flow(engine, "t.agents", "pipeline",
                                  inputs={"rows": customers(2)})
            assert done.state.current == "WARNING"  # one message could not be delivered
            assert len(gw.requests) == 2
            for headers, body in gw.requests:
                assert headers["authorization"] == "Bearer tok-123"
                assert headers["idempotency-key"] == body["messageId"]
                assert body["channel"] == "sms" and body["executionId"] == done.id
            by_customer = {body["customerId"]: (headers, body) for headers, body in gw.requests}
            sent = outputs_of(done, "send")
            assert (sent["successCount"], sent["failedCount"]) == (1, 1)
            statuses = {r["customerId"]: r for r in sent["results"]}
            good = next(c for c, r in statuses.items() if r["status"] == "sent")
            bad = next(c for c, r in statuses.items() if r["status"] == "failed")
            assert statuses[good]["messageId"] == f"wa_{good}"  # the gateway's own id
            messages, _ = await engine.public.list_messages(execution_id=done.id)
            assert {m.customer_id: m.status for m in messages} == {good: "sent", bad: "failed"}
            assert next(m for m in messages if m.status == "failed").error == "HTTP 503"

            # delivering again (restart from the task) sends only what was not sent, with
            # the same Idempotency-Key
            [send_run] = [tr for tr in done.task_runs if tr.task_id == "send"]
            await engine.restart(done.id, send_run.id)
            again = await engine.wait_until_terminal(done.id, timeout=15)
            assert again.state.current == "SUCCESS"
            assert len(gw.requests) == 3
            retry_headers, retry_body = gw.requests[2]
            assert retry_body["customerId"] == bad
            assert retry_headers["idempotency-key"] == by_customer[bad][0]["idempotency-key"]
            final = outputs_of(again, "send")
            assert (final["successCount"], final["failedCount"]) == (2, 0)
        finally:
            await engine.close()


async def test_an_unreachable_gateway_fails_each_message_with_the_reason(
        tmp_path: Path) -> None:
    async with gateway() as gw:
        url = gw.url
    engine = await open_public_engine(tmp_path / "data", install=False, extra={
        "public": {"delivery": {"url": url, "timeout": 2}}})
    try:
        await engine.apply_flow(PIPELINE)
        done = await run_flow(engine, "t.agents", "pipeline", inputs={"rows": customers(1)})
        assert done.state.current == "WARNING"
        [message] = (await engine.public.list_messages())[0]
        assert message.status == "failed" and message.error
        assert "ConnectError" in message.error
    finally:
        await engine.close()
