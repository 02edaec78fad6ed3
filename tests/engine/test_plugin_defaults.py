"""Kestra's `pluginDefaults`: values given to every task of a type (or type prefix); a task's
own value wins unless the default is forced; the source is kept as written."""

from __future__ import annotations

import pytest

from flowdeck.core.errors import InvalidFlowError
from flowdeck.engine.engine import Engine
from flowdeck.engine.flows import parse_flow
from helpers import apply, run_flow

LOG = "io.kestra.plugin.core.log.Log"
FLOW = f"""
id: defaulted
namespace: t.defaults
tasks:
  - id: plain
    type: {LOG}
  - id: own
    type: {LOG}
    message: mine
  - id: group
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: nested
        type: {LOG}
pluginDefaults:
  - type: {LOG}
    values:
      message: from defaults
  - type: io.kestra.plugin.core.log
    forced: true
    values:
      level: WARN
"""


async def test_defaults_fill_tasks_of_their_type(engine: Engine) -> None:
    await apply(engine, FLOW)
    done = await run_flow(engine, "t.defaults", "defaulted")
    assert done.state.current == "SUCCESS"
    lines = {(e.task_id, e.level, e.message) for e in await engine.logs_for(done.id)}
    assert ("plain", "WARN", "from defaults") in lines
    assert ("own", "WARN", "mine") in lines
    assert ("nested", "WARN", "from defaults") in lines
    flow = engine.get_flow("t.defaults", "defaulted")
    assert "message: from defaults" in flow.source and "message" not in flow.raw["tasks"][0]


def test_a_malformed_default_is_named() -> None:
    source = f"id: x\nnamespace: t.d\ntasks:\n  - {{id: a, type: {LOG}, message: m}}\n"
    with pytest.raises(InvalidFlowError, match=r"pluginDefaults\[0\]"):
        parse_flow(source + "pluginDefaults:\n  - values: {message: m}\n")
    flow = parse_flow(source + f"taskDefaults:\n  - {{type: {LOG}, values: {{level: ERROR}}}}\n")
    assert getattr(flow.tasks[0], "level", None) == "ERROR"
