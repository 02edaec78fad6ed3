"""Kestra's `dependsOn` on inputs: an input is asked for, and required, only while its
condition renders truthy with the inputs declared before it."""

from __future__ import annotations

import pytest

from flowdeck.core.errors import InvalidInputsError
from flowdeck.engine.engine import Engine
from helpers import apply

FLOW = """
id: ordered
namespace: t.inputs
inputs:
  - {id: kind, type: SELECT, values: [car, bike], defaults: bike}
  - id: doors
    type: INT
    dependsOn: {inputs: [kind], condition: "{{ inputs.kind == 'car' }}"}
  - id: broken
    type: STRING
    required: false
    dependsOn: {inputs: [kind], condition: "{{ inputs.kind | nosuchfilter }}"}
tasks:
  - {id: log, type: io.kestra.plugin.core.log.Log, message: "{{ inputs }}"}
"""


async def test_an_input_is_only_required_while_its_condition_holds(engine: Engine) -> None:
    await apply(engine, FLOW.replace("  - id: broken\n", "  - id: unused\n").replace(
        "inputs.kind | nosuchfilter", "false"))
    bike = await engine.create_execution("t.inputs", "ordered", inputs={"doors": "4"})
    assert bike.inputs == {"kind": "bike"}  # doors not asked for: not kept either
    car = await engine.create_execution("t.inputs", "ordered",
                                        inputs={"kind": "car", "doors": "4"})
    assert car.inputs == {"kind": "car", "doors": 4}
    with pytest.raises(InvalidInputsError, match=r"inputs\.doors: is required"):
        await engine.create_execution("t.inputs", "ordered", inputs={"kind": "car"})


async def test_a_condition_that_cannot_render_is_the_inputs_problem(engine: Engine) -> None:
    await apply(engine, FLOW)
    with pytest.raises(InvalidInputsError, match=r"inputs\.broken: dependsOn"):
        await engine.create_execution("t.inputs", "ordered")
