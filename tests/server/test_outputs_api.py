"""Flow and task-run outputs: Kestra 2.0's `/outputs/...` and spec 001's task-run route."""

from __future__ import annotations

from helpers import apply, run_flow
from live_server import LiveServer

API = "/api/v1/main"

FLOW = """
id: outs
namespace: acceptance.outputs
inputs:
  - id: who
    type: STRING
    defaults: world
outputs:
  - id: greeting
    type: STRING
    value: "{{ outputs.hello.value }}"
tasks:
  - id: hello
    type: io.kestra.plugin.core.debug.Return
    format: "hello {{ inputs.who }}"
  - id: quiet
    type: io.kestra.plugin.core.log.Log
    message: no outputs here
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b"]
    tasks:
      - id: item
        type: io.kestra.plugin.core.output.OutputValues
        values:
          letter: "{{ taskrun.value }}"
"""


async def test_outputs_routes(live: LiveServer) -> None:
    await apply(live.engine, FLOW)
    execution = await run_flow(live.engine, "acceptance.outputs", "outs")
    assert execution.state.current == "SUCCESS"
    by_task = {(tr.task_id, tr.value): tr for tr in execution.task_runs}
    hello = by_task[("hello", None)]

    for prefix in (API, "/api/v1"):
        flow_outputs = await live.client.get(f"{prefix}/outputs/executions/{execution.id}")
        assert flow_outputs.status_code == 200
        assert flow_outputs.json() == {"greeting": "hello world"}

        info = await live.client.get(f"{prefix}/outputs/tasks/{execution.id}")
        assert info.status_code == 200
        rows = info.json()
        assert {"taskId": "hello", "taskRunId": hello.id, "inline": True} in rows
        assert all(r["taskId"] != "quiet" for r in rows)  # no outputs, not listed
        items = sorted((r for r in rows if r["taskId"] == "item"), key=lambda r: r["value"])
        assert [(r["value"], r["iteration"]) for r in items] == [("a", 0), ("b", 1)]
        assert all(set(r) <= {"taskId", "taskRunId", "value", "iteration", "inline"}
                   for r in rows)

        one = await live.client.get(f"{prefix}/outputs/tasks/{execution.id}/{hello.id}")
        assert one.status_code == 200 and one.json() == {"value": "hello world"}
        spec = await live.client.get(
            f"{prefix}/executions/{execution.id}/taskruns/{hello.id}/outputs")
        assert spec.status_code == 200 and spec.json() == {"value": "hello world"}
        item_a = next(r for r in items if r["value"] == "a")
        item_outputs = await live.client.get(
            f"{prefix}/executions/{execution.id}/taskruns/{item_a['taskRunId']}/outputs")
        assert item_outputs.json() == {"values": {"letter": "a"}}
        quiet = by_task[("quiet", None)]
        empty = await live.client.get(f"{prefix}/outputs/tasks/{execution.id}/{quiet.id}")
        assert empty.status_code == 200 and empty.json() == {}


async def test_outputs_unknown_ids_are_404(live: LiveServer) -> None:
    await apply(live.engine, FLOW)
    execution = await run_flow(live.engine, "acceptance.outputs", "outs")
    for path in ("/outputs/executions/nope", "/outputs/tasks/nope", "/outputs/tasks/nope/x",
                 f"/outputs/tasks/{execution.id}/nope",
                 "/executions/nope/taskruns/x/outputs",
                 f"/executions/{execution.id}/taskruns/nope/outputs"):
        response = await live.client.get(API + path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 404


async def test_execution_without_flow_outputs(live: LiveServer) -> None:
    await apply(live.engine, """
        id: plain
        namespace: acceptance.outputs
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: hi
    """)
    execution = await run_flow(live.engine, "acceptance.outputs", "plain")
    assert (await live.client.get(f"{API}/outputs/executions/{execution.id}")).json() == {}
    assert (await live.client.get(f"{API}/outputs/tasks/{execution.id}")).json() == []
