"""Kestra's expression evaluation over a real server: an expression rendered with what an
execution's tasks see (`…/actions/eval`), or one task run (`…/actions/eval/{taskRunId}`,
1.x `…/eval/{taskRunId}`); a broken one answers its error; a SECRET input is never shown."""

from __future__ import annotations

from helpers import apply, run_flow
from live_server import LiveServer

EX = "/api/v1/main/executions"
FLOW = """
id: evaluated
namespace: acme.eval
inputs:
  - {id: name, type: STRING, defaults: Ada}
  - {id: token, type: SECRET, defaults: s3cret-value}
variables:
  greeting: "hello {{ inputs.name }}"
tasks:
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: "{{ vars.greeting }}"
"""


async def test_expressions_render_with_the_executions_variables(live: LiveServer) -> None:
    await apply(live.engine, FLOW)
    done = await run_flow(live.engine, "acme.eval", "evaluated")
    assert done.state.current == "SUCCESS"
    task_run = done.task_runs[0]

    async def evaluate(path: str, expression: str) -> dict:
        answer = await live.client.post(path, content=expression.encode(),
                                        headers={"Content-Type": "text/plain"})
        assert answer.status_code == 200, answer.text
        return answer.json()

    assert await evaluate(f"{EX}/{done.id}/actions/eval",
                          "{{ outputs.ret.value }} / {{ execution.state }}") == {
        "result": "hello Ada / SUCCESS"}
    for path in (f"{EX}/{done.id}/actions/eval/{task_run.id}",
                 f"{EX}/{done.id}/eval/{task_run.id}"):
        assert await evaluate(path, "{{ task.id }}:{{ taskrun.id }}") == {
            "result": f"ret:{task_run.id}"}
    broken = await evaluate(f"{EX}/{done.id}/actions/eval", "{{ outputs.nope.value }}")
    assert set(broken) == {"error"} and "nope" in broken["error"]
    secret = await evaluate(f"{EX}/{done.id}/actions/eval", "{{ inputs.token }}")
    assert "s3cret" not in str(secret) and secret == {"result": "******"}

    unknown = await live.client.post(f"{EX}/{done.id}/actions/eval/nope", content=b"x")
    assert unknown.status_code == 404, unknown.text
    assert (await live.client.post(f"{EX}/missing/actions/eval", content=b"x")).status_code \
        == 404
    bad = await live.client.post(f"{EX}/{done.id}/actions/eval", content=b"\xff\xfe")
    assert bad.status_code == 422, bad.text
