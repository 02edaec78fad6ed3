"""Kestra's task-run state change over a real server: `POST /executions/{id}/actions/state`
(2.x) and `/executions/{id}/state` (1.x) end a task run in the state given and let the
finished execution go on from there, as its next attempt."""

from __future__ import annotations

import httpx

from helpers import apply, run_flow, wait_for_state
from live_server import LiveServer

EX = "/api/v1/main/executions"
FLAKY = """
id: flaky
namespace: acme.ops
tasks:
  - id: first
    type: io.kestra.plugin.core.log.Log
    message: first
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: broken
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: after
errors:
  - id: alert
    type: io.kestra.plugin.core.log.Log
    message: alert
"""
GATE = """
id: gate
namespace: acme.ops
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
"""


def states(execution: dict) -> dict[str, str]:
    return {tr["taskId"]: tr["state"]["current"] for tr in execution["taskRunList"]}


async def test_a_failed_task_run_set_to_success_lets_the_execution_go_on(
        live: LiveServer) -> None:
    await apply(live.engine, FLAKY)
    failed = await run_flow(live.engine, "acme.ops", "flaky")
    assert failed.state.current == "FAILED"
    boom = next(tr for tr in failed.task_runs if tr.task_id == "boom")

    answer = await live.client.post(f"{EX}/{failed.id}/actions/state",
                                    json={"taskRunId": boom.id, "state": "SUCCESS"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["id"] == failed.id and body["state"]["current"] == "RESTARTED"
    assert body["metadata"]["attemptNumber"] == 2
    assert states(body) == {"first": "SUCCESS", "boom": "SUCCESS"}  # the handler run is gone

    done = (await live.engine.wait_until_terminal(failed.id, timeout=15)).to_dict(
        live.engine.clock.now())
    assert done["state"]["current"] == "SUCCESS"
    assert states(done) == {"first": "SUCCESS", "boom": "SUCCESS", "after": "SUCCESS"}
    boom_run = next(tr for tr in done["taskRunList"] if tr["id"] == boom.id)
    assert boom_run["attempts"][-1]["state"]["current"] == "SUCCESS"


async def test_the_1x_path_and_a_successful_run_set_to_failed(live: LiveServer) -> None:
    await apply(live.engine, FLAKY.replace(
        "io.kestra.plugin.core.execution.Fail", "io.kestra.plugin.core.log.Log").replace(
        "errorMessage", "message"))
    ok = await run_flow(live.engine, "acme.ops", "flaky")
    assert ok.state.current == "SUCCESS"
    first = next(tr for tr in ok.task_runs if tr.task_id == "first")

    answer = await live.client.post(f"{EX}/{ok.id}/state",
                                    json={"taskRunId": first.id, "state": "failed"})
    assert answer.status_code == 200, answer.text
    done = (await live.engine.wait_until_terminal(ok.id, timeout=15)).to_dict(
        live.engine.clock.now())
    assert done["state"]["current"] == "FAILED"
    assert states(done) == {"first": "FAILED", "alert": "SUCCESS"}  # goes on: to the handler


async def test_refusals(live: LiveServer) -> None:
    await apply(live.engine, FLAKY)
    await apply(live.engine, GATE)
    failed = await run_flow(live.engine, "acme.ops", "flaky")
    alert = next(tr for tr in failed.task_runs if tr.task_id == "alert")
    paused = await live.engine.create_execution("acme.ops", "gate")
    await wait_for_state(live.engine, paused.id, "PAUSED")
    wait = (await live.engine.get_execution(paused.id)).task_runs[0]

    async def post(execution_id: str, body: object) -> httpx.Response:
        return await live.client.post(f"{EX}/{execution_id}/actions/state", json=body)

    cases = [
        (paused.id, {"taskRunId": wait.id, "state": "SUCCESS"}, 409, "only a finished"),
        (failed.id, {"taskRunId": "nope", "state": "SUCCESS"}, 404, "nope"),
        (failed.id, {"taskRunId": alert.id, "state": "SUCCESS"}, 409, "error or finally"),
        (failed.id, {"taskRunId": alert.id, "state": "RUNNING"}, 422, "RUNNING"),
        (failed.id, {"taskRunId": alert.id}, 422, "taskRunId"),
        (failed.id, ["not", "an", "object"], 422, "taskRunId"),
        ("missing", {"taskRunId": alert.id, "state": "SUCCESS"}, 404, "missing"),
    ]
    for execution_id, body, status, detail in cases:
        answer = await post(execution_id, body)
        assert answer.status_code == status, (body, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert detail in answer.text, answer.text
    assert (await live.engine.get_execution(failed.id)).state.current == "FAILED"
    await live.engine.kill_and_wait(paused.id)


async def test_resume_from_breakpoint_is_always_refused(live: LiveServer) -> None:
    await apply(live.engine, FLAKY)
    failed = await run_flow(live.engine, "acme.ops", "flaky")
    for path in (f"{EX}/{failed.id}/actions/resume-from-breakpoint",
                 f"{EX}/{failed.id}/resume-from-breakpoint"):
        answer = await live.client.post(path)
        assert answer.status_code == 409, answer.text
        assert "breakpoint" in answer.json()["detail"]
    missing = await live.client.post(f"{EX}/missing/actions/resume-from-breakpoint")
    assert missing.status_code == 404
