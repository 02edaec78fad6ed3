"""YAML from flows and YAML-typed inputs is parsed within bounds: aliases may not expand past a
node budget, nesting and size are capped, and big documents are parsed off the event loop."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowdeck.core.errors import InvalidFlowError, InvalidInputsError, ValidationError
from flowdeck.engine.engine import Engine
from flowdeck.engine.flows import parse_flow
from flowdeck.engine.inputs import InputDef, resolve_inputs
from helpers import apply, cpu_time

LAUGHS = "\n".join(
    [
        "id: bomb",
        "namespace: t.yaml",
        'variables:',
        '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(f"  {n}: &{n} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]"
          for p, n in zip("abcdefgh", "bcdefghi", strict=True)),
        "tasks:",
        "  - id: t",
        "    type: io.kestra.plugin.core.log.Log",
        "    message: '{{ vars.i }}'",
    ]) + "\n"
SMALL_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
     *(f"{n}: &{n} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]"
       for p, n in zip("abcdefg", "bcdefgh", strict=True))]) + "\n"
YAML_INPUT = InputDef(id="doc", type="YAML")


def test_the_bombs_are_as_small_as_the_ones_reported() -> None:
    assert len(LAUGHS.encode()) <= 600
    assert len(SMALL_LAUGHS.encode()) <= 400


def test_a_billion_laughs_flow_is_refused_at_once() -> None:
    with cpu_time() as spent, pytest.raises(InvalidFlowError,
                                            match="aliases expand to more than"):
        parse_flow(LAUGHS)
    assert spent.seconds < 0.1


def test_a_billion_laughs_yaml_input_is_refused_at_once() -> None:
    with cpu_time() as spent, pytest.raises(InvalidInputsError) as info:
        resolve_inputs([YAML_INPUT], {"doc": SMALL_LAUGHS})
    assert spent.seconds < 0.1
    assert info.value.problems[0][0] == "inputs.doc"
    assert "aliases expand to more than" in info.value.problems[0][1]


@pytest.mark.parametrize(("document", "problem"), [
    ("a: &a [*a]\n", "refers to itself"),
    ("x: " + "[" * 200 + "]" * 200 + "\n", r"nested too deeply \(more than 100 levels\)"),
    ("x: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ("x: &x [[[[[[[[[[1]]]]]]]]]]\n" + "".join(
        f"x{i}: &x{i} [*{'x' if i == 0 else f'x{i - 1}'}]\n" for i in range(120)),
     "nested too deeply"),
    ("x: 'y'\n" + "# padding\n" * 30_000, "characters long"),
], ids=["self", "deep", "very-deep", "deep-through-aliases", "long"])
def test_self_reference_depth_and_size_are_capped(document: str, problem: str) -> None:
    with cpu_time() as spent, pytest.raises(InvalidInputsError, match=problem):
        resolve_inputs([YAML_INPUT], {"doc": document})
    assert spent.seconds < 0.2


def test_anchors_that_stay_small_still_work() -> None:
    flow = parse_flow("""
id: merged
namespace: t.yaml
variables:
  defaults: &defaults {retries: 2, region: eu}
  api: {<<: *defaults, name: api}
  web: {<<: *defaults, region: us}
  both: [*defaults, *defaults]
tasks:
  - id: t
    type: io.kestra.plugin.core.log.Log
    message: hi
""")
    assert flow.variables["api"] == {"retries": 2, "region": "eu", "name": "api"}
    assert flow.variables["web"] == {"retries": 2, "region": "us"}
    assert flow.variables["both"] == [{"retries": 2, "region": "eu"}] * 2
    value = resolve_inputs([YAML_INPUT], {"doc": "a: &x [1, 2]\nb: *x\n"})
    assert value == {"doc": {"a": [1, 2], "b": [1, 2]}}


async def test_async_validation_refuses_bombs_and_keeps_the_loop_free(engine: Engine) -> None:
    with cpu_time() as spent, pytest.raises(InvalidFlowError):
        await engine.validate_flow_async(LAUGHS)
    assert spent.seconds < 0.1
    # A big but honest flow costs a few hundred ms of CPU to read...
    tasks = "".join(f"  - id: t{i}\n    type: io.kestra.plugin.core.log.Log\n"
                    f"    message: 'line {i} {'x' * 40}'\n" for i in range(8_000))
    source = f"id: big\nnamespace: t.yaml\ntasks:\n{tasks}"
    with cpu_time() as inline:
        parse_flow(source)
    assert inline.seconds > 0.15
    # ...which the event loop's thread does not pay: a worker thread reads it.
    with cpu_time() as on_loop:
        flow = await engine.validate_flow_async(source)
        created = await engine.create_flow(source)
    assert len(flow.tasks) == len(created.tasks) == 8_000
    assert on_loop.seconds < inline.seconds / 3, (on_loop.seconds, inline.seconds)


async def test_flow_changes_and_executions_refuse_bombs(engine: Engine) -> None:
    for call in (engine.create_flow, engine.apply_flow):
        with pytest.raises(InvalidFlowError):
            await call(LAUGHS)
    await apply(engine, """
        id: takes-yaml
        namespace: t.yaml
        inputs:
          - id: doc
            type: YAML
        tasks:
          - id: t
            type: io.kestra.plugin.core.log.Log
            message: "{{ inputs.doc }}"
        """)
    with cpu_time() as spent, pytest.raises(ValidationError):
        await engine.create_execution("t.yaml", "takes-yaml", inputs={"doc": SMALL_LAUGHS})
    assert spent.seconds < 0.1
    big = "items:\n" + "".join(f"  - {{n: {i}, text: 'item {i}'}}\n" for i in range(6_000))
    execution = await engine.create_execution("t.yaml", "takes-yaml", inputs={"doc": big})
    assert len(execution.inputs["doc"]["items"]) == 6_000


yamlish = st.lists(st.sampled_from([*"&*[]{}:,-!|>'\"#\n\tabc01 ", "<<", "!!", "&a", "*a"]),
                   max_size=120).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(yamlish, st.text(max_size=200)))
def test_any_text_is_a_flow_or_an_invalid_flow_quickly(text: str) -> None:
    with cpu_time() as spent, contextlib.suppress(InvalidFlowError):
        parse_flow(text)
    assert spent.seconds < 0.5


@settings(max_examples=300, deadline=None)
@given(st.one_of(yamlish, st.text(max_size=200)))
def test_any_text_is_a_yaml_input_or_an_invalid_one_quickly(text: str) -> None:
    with cpu_time() as spent, contextlib.suppress(InvalidInputsError):
        resolve_inputs([YAML_INPUT], {"doc": text})
    assert spent.seconds < 0.5


def test_peeking_at_a_flow_s_identity_is_bounded_too() -> None:
    """The CLI and the HTTP client read a flow's namespace and id before sending it; a bomb
    reads as "no identity" (the engine then says what is wrong), never as a stall."""
    from flowdeck.core.yamlsafe import flow_identity

    with cpu_time() as spent:
        assert flow_identity(LAUGHS) is None
    assert spent.seconds < 0.5
    assert flow_identity("id: x\nnamespace: team.a\ntasks: []\n") == ("team.a", "x")
    assert flow_identity("not: [valid") is None
