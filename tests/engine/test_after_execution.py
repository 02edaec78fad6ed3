"""Kestra's `afterExecution` tasks run once the execution has ended: they see its final
state, and their own outcome does not change it."""

from __future__ import annotations

from flowdeck.engine.engine import Engine
from helpers import apply

LOG = "io.kestra.plugin.core.log.Log"
FLOW = f"""
id: notified
namespace: t.after
inputs:
  - {{id: fail, type: BOOLEAN, defaults: false}}
tasks:
  - id: work
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{{{ inputs.fail }}}}"
afterExecution:
  - id: notify
    type: {LOG}
    message: "ended {{{{ execution.state }}}}"
  - id: broken
    type: {LOG}
    message: "{{{{ outputs.nothing.here }}}}"
"""


async def test_after_execution_sees_the_final_state_and_leaves_it(engine: Engine) -> None:
    await apply(engine, FLOW)
    for fail, state in (("false", "SUCCESS"), ("true", "FAILED")):
        execution = await engine.create_execution("t.after", "notified", inputs={"fail": fail})
        await engine.wait_until_terminal(execution.id, timeout=15)
        done = await engine.settled(execution.id)  # afterExecution has run by then
        assert done.state.current == state
        runs = {tr.task_id: tr.state.current for tr in done.task_runs}
        assert runs == {"work": state, "notify": "SUCCESS", "broken": "FAILED"}
        messages = [e.message for e in await engine.logs_for(execution.id)]
        assert f"ended {state}" in messages
        assert [h.state for h in done.state.histories][-1] == state
