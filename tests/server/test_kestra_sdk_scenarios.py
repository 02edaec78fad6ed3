"""The scenarios of Kestra's own Python-SDK end-to-end tests (kestra-io/client-sdk,
`python-sdk/test_python_sdk/`), driven with kestrapy 2.0.3 against a live server: the flow of
`test_crud_complete_flow.py` (Pebble's ternary, `render()`, `runIf`, `tasks.<id>.state`, flow
outputs, afterExecution, BOOL inputs and inputs that depend on others) created, read, revised,
updated, deleted and run; a trigger validated; the execute-follow-replay-search round of
`test_execute_flow.py`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from live_server import LiveServer

COMPLEX = (Path(__file__).parent / "kestra_sdk" / "complex_flow.yml").read_text()
FLOW_ID, NS = "sdk-complex-flow", "company.team"
EXECUTE = """
id: create-execution
namespace: main
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: Hello from the SDK! 👋
  - id: hello3
    type: io.kestra.plugin.core.log.Log
    message: Bye from the SDK! 👋
"""


def client_for(url: str) -> Any:
    pytest.importorskip("regex", reason="kestrapy 2.0.3 needs the undeclared 'regex' package")
    from kestrapy import KestraClient

    return KestraClient(host=url, timeout=15)


async def test_crud_complete_flow(live: LiveServer) -> None:
    client = client_for(live.url)

    def scenario() -> tuple[Any, ...]:
        created = client.flows.create_flow("main", COMPLEX)
        fetched = client.flows.flow(NS, FLOW_ID, "main", source=False, allow_deleted=False)
        updated = client.flows.update_flow(NS, FLOW_ID, "main",
                                           COMPLEX.replace("- id: hello\n", "- id: hello-up\n"))
        revisions = client.flows.list_flow_revisions(NS, FLOW_ID, "main")
        trigger = client.flows.validate_trigger("main", {
            "id": "schedule", "type": "io.kestra.plugin.core.trigger.Schedule",
            "cron": "*/15 * * * *"})
        return created, fetched, updated, revisions, trigger

    created, fetched, updated, revisions, trigger = await asyncio.to_thread(scenario)
    assert created.id == FLOW_ID and fetched.revision == 1 and updated.revision == 2
    assert [r.revision for r in revisions] == [1, 2]
    assert {i.actual_instance.id if hasattr(i, "actual_instance") else i.id
            for i in fetched.inputs} == {"user", "run_task", "pokemon", "bird"}
    assert trigger.constraints is None

    # `pokemon` is asked for only while run_task is true, `bird` while user is Kestrel
    # (their dependsOn conditions): otherwise neither is required nor kept.
    for inputs, output in (({"run_task": "true", "pokemon": ["Pikachu"], "bird": "Merlin"},
                            "Hello World!"),
                           ({"run_task": "false", "user": "Ada", "pokemon": ["Mewtwo"]},
                            "fallback output")):
        run_task = inputs["run_task"]
        execution = await live.engine.create_execution(NS, FLOW_ID, inputs=inputs)
        await live.engine.wait_until_terminal(execution.id, timeout=20)
        done = await live.engine.settled(execution.id)  # afterExecution has run
        assert done.state.current == "SUCCESS", await live.engine.logs_for(execution.id)
        assert done.outputs == {"flow_output": output}
        states = {tr.task_id: tr.state.current for tr in done.task_runs}
        assert states["run_if_true"] == ("SUCCESS" if run_task == "true" else "SKIPPED")
        assert ("pokemon" in done.inputs) is (run_task == "true")
        assert ("bird" in done.inputs) is (run_task == "true")
        lines = [e.message for e in await live.engine.logs_for(execution.id)]
        assert any("1 < 2" in line and inputs.get("user", "Kestrel") in line
                   for line in lines), lines
        assert states["finally_log"] == states["afterExecution_log"] == "SUCCESS"
        assert lines[-1].endswith("flow execution is complete. Execution SUCCESS"), lines

    await asyncio.to_thread(client.flows.delete_flow, NS, FLOW_ID, "main")
    assert (await live.client.get(f"/api/v1/main/flows/{NS}/{FLOW_ID}")).status_code == 404


async def test_execute_follow_replay_and_search(live: LiveServer) -> None:
    client = client_for(live.url)

    def scenario() -> tuple[Any, ...]:
        client.flows.create_flow("main", EXECUTE)
        created = client.executions.create_execution("main", "main", "create-execution",
                                                     wait=False)
        fetched = client.executions.execution(created.id, "main")
        states = [event.state.current for event in client.executions.follow_execution(
            created.id, "main") if getattr(event, "state", None) is not None]
        replayed = client.executions.replay_execution(created.id, "main")
        found = client.executions.search_executions_by_flow_id(
            "main", "main", "create-execution", page=1, size=10)
        namespaces = client.flows.list_distinct_namespaces("main")
        return created, fetched, states, replayed, found, namespaces

    created, fetched, states, replayed, found, namespaces = await asyncio.to_thread(scenario)
    assert fetched.id == created.id and str(states[-1]).endswith("SUCCESS")
    assert replayed.id != created.id and replayed.original_id == created.id
    assert found["total"] == 2 and "main" in namespaces
