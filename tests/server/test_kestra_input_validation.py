"""Kestra's input validation over a real server: a new execution's inputs (`POST
/executions/{ns}/{id}/validate`) and a paused execution's `onResume` inputs (`…/actions/resume/
validate`, 1.x `…/resume/validate`) are checked, every problem at once, nothing created or
resumed."""

from __future__ import annotations

import textwrap
from typing import Any

from helpers import apply, wait_for_state
from live_server import LiveServer

EX = "/api/v1/main/executions"
FORM = textwrap.dedent("""\
    id: form
    namespace: acme.forms
    inputs:
      - {id: name, type: STRING, defaults: world}
      - {id: count, type: INT, min: 1}
      - {id: flag, type: BOOLEAN, defaults: false}
      - {id: token, type: SECRET, required: false}
      - id: detail
        type: STRING
        dependsOn: {inputs: [flag], condition: "{{ inputs.flag }}"}
    tasks:
      - id: gate
        type: io.kestra.plugin.core.flow.Pause
        onResume:
          - {id: reason, type: STRING}
          - {id: level, type: INT, defaults: 2}
    """)


def by_id(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["input"]["id"]: item for item in body["inputs"]}


async def test_a_new_executions_inputs_are_checked_and_nothing_is_created(
        live: LiveServer) -> None:
    await apply(live.engine, FORM)
    answer = await live.client.post(f"{EX}/acme.forms/form/validate",
                                    data={"count": "0", "token": "s3cret"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["id"], body["namespace"], body["checks"]) == ("form", "acme.forms", [])
    inputs = by_id(body)
    assert list(inputs) == ["name", "count", "flag", "token", "detail"]
    assert inputs["detail"]["enabled"] is False and inputs["detail"]["errors"] == []
    assert inputs["name"] == {"input": {"id": "name", "type": "STRING", "defaults": "world",
                                        "required": True},
                              "value": "world", "enabled": True, "isDefault": True, "errors": []}
    assert inputs["count"]["errors"] and "value" not in inputs["count"]
    assert "1" in inputs["count"]["errors"][0]["message"]
    assert inputs["flag"]["value"] is False and inputs["flag"]["input"]["defaults"] == "false"
    assert inputs["token"]["value"] == "******" and inputs["token"]["isDefault"] is False

    fine = by_id((await live.client.post(f"{EX}/acme.forms/form/validate",
                                         data={"count": "3", "name": "Ada"})).json())
    assert all(not item["errors"] for item in fine.values())
    asked = by_id((await live.client.post(f"{EX}/acme.forms/form/validate",
                                          data={"count": "3", "flag": "true"})).json())
    assert asked["detail"]["enabled"] is True
    assert asked["detail"]["errors"] == [{"message": "is required"}]
    assert (fine["name"]["value"], fine["name"]["isDefault"]) == ("Ada", False)
    assert fine["count"]["value"] == 3
    page = (await live.client.get(f"{EX}/search")).json()
    assert page["total"] == 0

    missing = await live.client.post(f"{EX}/acme.forms/nope/validate")
    assert missing.status_code == 404
    bad_label = await live.client.post(f"{EX}/acme.forms/form/validate",
                                       params={"labels": "nocolon"})
    assert bad_label.status_code == 400


async def test_a_paused_executions_resume_inputs_are_checked(live: LiveServer) -> None:
    await apply(live.engine, FORM)
    execution = await live.engine.create_execution("acme.forms", "form", inputs={"count": "1"})
    await wait_for_state(live.engine, execution.id, "PAUSED")
    for path in (f"{EX}/{execution.id}/actions/resume/validate",
                 f"{EX}/{execution.id}/resume/validate"):
        answer = await live.client.post(path, data={"level": "high"})
        assert answer.status_code == 200, answer.text
        inputs = by_id(answer.json())
        assert answer.json()["id"] == "form"
        assert inputs["reason"]["errors"] == [{"message": "is required"}]
        assert inputs["level"]["errors"] and "value" not in inputs["level"]
    still = await live.engine.get_execution(execution.id)
    assert still.state.current == "PAUSED"

    await live.engine.kill_and_wait(execution.id)
    done = await live.client.post(f"{EX}/{execution.id}/actions/resume/validate")
    assert done.status_code == 409, done.text
    assert (await live.client.post(f"{EX}/missing/actions/resume/validate")).status_code == 404
