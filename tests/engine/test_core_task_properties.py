"""Kestra's core task properties on every task: runIf, allowWarning, logLevel and the ones
accepted without effect here (workerGroup, taskCache, logToFile, version, description)."""

from __future__ import annotations

import pytest

from flowdeck.core.errors import InvalidFlowError
from flowdeck.engine.engine import Engine
from flowdeck.engine.flows import parse_flow
from flowdeck.engine.task_properties import is_truthy
from helpers import apply, run_flow, states

LOG = "io.kestra.plugin.core.log.Log"


async def test_run_if_false_skips_the_task_run(engine: Engine) -> None:
    await apply(engine, f"""
        id: gated
        namespace: t.props
        inputs:
          - {{id: go, type: BOOLEAN, defaults: false}}
        tasks:
          - id: first
            type: {LOG}
            message: first
          - id: maybe
            type: {LOG}
            runIf: "{{{{ inputs.go }}}}"
            message: ran
          - id: block
            type: io.kestra.plugin.core.flow.Sequential
            runIf: false
            tasks:
              - {{id: inner, type: {LOG}, message: never}}
          - id: last
            type: {LOG}
            message: last
        """)
    skipped = await run_flow(engine, "t.props", "gated")
    assert skipped.state.current == "SUCCESS"
    assert states(skipped) == {"first": "SUCCESS", "maybe": "SKIPPED", "block": "SKIPPED",
                               "last": "SUCCESS"}
    maybe = next(tr for tr in skipped.task_runs if tr.task_id == "maybe")
    assert [h.state for h in maybe.state.histories] == ["CREATED", "SKIPPED"]
    assert maybe.attempts == []
    messages = [e.message for e in await engine.logs.fetch(skipped.id)]
    assert "task 'maybe' skipped: runIf is false" in messages and "ran" not in messages
    ran = await run_flow(engine, "t.props", "gated", inputs={"go": "true"})
    assert states(ran)["maybe"] == "SUCCESS"


async def test_a_run_if_that_cannot_render_fails_the_task(engine: Engine) -> None:
    await apply(engine, f"""
        id: broken
        namespace: t.props
        tasks:
          - id: check
            type: {LOG}
            runIf: "{{{{ nope.missing }}}}"
            message: x
        """)
    final = await run_flow(engine, "t.props", "broken")
    assert final.state.current == "FAILED" and states(final) == {"check": "FAILED"}
    [line] = [e.message for e in await engine.logs.fetch(final.id)]
    assert line.startswith("task 'check': runIf '{{ nope.missing }}'")


async def test_allow_warning_log_level_and_ignored_properties(engine: Engine) -> None:
    await apply(engine, f"""
        id: props
        namespace: t.props
        tasks:
          - id: warned
            type: io.kestra.plugin.scripts.shell.Commands
            allowFailure: true
            allowWarning: true
            commands: ["exit 3"]
          - id: quiet
            type: {LOG}
            logLevel: WARN
            message: [kept?, dropped]
            level: INFO
          - id: loud
            type: {LOG}
            logLevel: WARN
            level: ERROR
            message: kept
            description: documented
            version: "1.2.3"
            workerGroup: {{key: gpu}}
            taskCache: {{enabled: true}}
            logToFile: true
        """)
    final = await run_flow(engine, "t.props", "props")
    assert states(final) == {"warned": "SUCCESS", "quiet": "SUCCESS", "loud": "SUCCESS"}
    assert final.state.current == "SUCCESS"
    lines = [(e.task_id, e.level, e.message) for e in await engine.logs.fetch(final.id)]
    assert not [line for line in lines if line[0] == "quiet"]  # INFO < its logLevel WARN
    assert ("loud", "ERROR", "kept") in lines
    notes = [m for t, _, m in lines if t == "loud" and "ignored" in m]
    assert notes == ["task 'loud': workerGroup ignored: one flowdeck engine runs every task",
                     "task 'loud': taskCache ignored: flowdeck keeps no task output cache",
                     "task 'loud': logToFile ignored: flowdeck stores every log line and "
                     "serves them one by one"]


def test_every_core_property_is_accepted_and_a_bad_one_named() -> None:
    source = f"""id: f
namespace: n
tasks:
  - id: a
    type: {LOG}
    message: hi
    runIf: "{{{{ true }}}}"
    allowWarning: false
    allowFailure: false
    logLevel: DEBUG
    logToFile: false
    workerGroup: {{key: default, fallback: WAIT}}
    description: text
    version: "0.1"
    taskCache: {{enabled: false, ttl: PT1H}}
    disabled: false
    timeout: PT1M
"""
    parse_flow(source)
    with pytest.raises(InvalidFlowError) as bad:
        parse_flow(source.replace("logLevel: DEBUG", "logLevel: LOUD"))
    assert bad.value.problems[0][0] == "tasks[0].logLevel"


@pytest.mark.parametrize(("value", "truthy"), [
    (True, True), (False, False), (None, False), ("true", True), ("false", False),
    (" FALSE ", False), ("0", False), ("-0", False), ("", False), ("1", True), ("no", True),
    (0, False), (2, True),
])
def test_truthiness_is_kestras(value: object, truthy: bool) -> None:
    assert is_truthy(value) is truthy
