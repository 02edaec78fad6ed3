"""Submitting a workflow: refused with a message naming the tasks, or written as a flow."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from flowctl.flowctl_helpers import generic, workflow
from flowdeck.core.errors import ValidationError
from flowdeck.engine.engine import Engine
from flowdeck.engine.flowctl import definition as definition_module
from flowdeck.engine.flowctl.definition import flow_source, parse_definition
from flowdeck.engine.flowctl.settings import CommandType, FlowctlSettings
from flowdeck.engine.flows import parse_flow

NO_ML = FlowctlSettings()


def refusal(definition: Any, settings: FlowctlSettings = NO_ML) -> str:
    with pytest.raises(ValidationError) as caught:
        parse_definition(definition, settings)
    return str(caught.value)


def test_a_cycle_names_its_tasks() -> None:
    message = refusal(workflow(generic("a", "true", dependencies=["c"]),
                               generic("b", "true", dependencies=["a"]),
                               generic("c", "true", dependencies=["b"])))
    assert "cycle" in message
    assert all(f"'{name}'" in message for name in "abc")


def test_an_unknown_dependency_names_both_tasks() -> None:
    message = refusal(workflow(generic("load", "true", dependencies=["extract"])))
    assert message == "tasks[0].dependencies: task 'load' depends on unknown task 'extract'"


def test_an_unknown_type_names_the_task_and_the_type() -> None:
    message = refusal(workflow({"name": "train", "type": "quantum", "payload": {}}))
    assert "task 'train' has unknown type 'quantum'" in message
    assert "generic, ci, etl, ml_training" in message


def test_missing_name_and_type() -> None:
    message = refusal(workflow(generic("ok", "true"), {"type": "generic",
                                                       "payload": {"command": "true"}},
                               {"name": "typeless"}))
    assert "tasks[1].name: name is required" in message
    assert "tasks[2].type: task 'typeless': type is required" in message
    assert refusal({"tasks": [generic("a", "true")]}) == "name: name is required"


def test_duplicate_names_and_self_dependencies() -> None:
    message = refusal(workflow(generic("a", "true"), generic("a", "true"),
                               generic("b", "true", dependencies=["b"])))
    assert "duplicate task name 'a' (also tasks[0])" in message
    assert "task 'b' depends on itself" in message


def test_payloads_are_checked_per_type() -> None:
    message = refusal(workflow(
        {"name": "g", "type": "generic", "payload": {"args": ["x"]}},
        {"name": "c", "type": "ci", "payload": {"command": "make"}},
        {"name": "e", "type": "etl", "payload": {"source_url": "file:///a",
                                                 "target_url": "file:///b",
                                                 "format": "parquet"}},
        {"name": "v", "type": "generic", "payload": {"command": "x",
                                                     "environment": {"1BAD": "v"}}}))
    assert "task 'g': payload.command is required" in message
    assert "task 'c': payload.repo_url is required" in message
    assert "task 'e': format must be json or csv, not 'parquet'" in message
    assert "task 'v': '1BAD' is not a variable name" in message


def test_ml_training_needs_its_command_configured() -> None:
    ml = workflow({"name": "train", "type": "ml_training", "payload": {"model_name": "m"}})
    message = refusal(ml)
    assert "task 'train'" in message and "[flowctl.task_types.ml_training]" in message
    configured = FlowctlSettings(task_types={"ml_training": CommandType("python3 train.py")})
    assert parse_definition(ml, configured).tasks[0].type == "ml_training"


def test_config_is_checked_and_defaults_filled() -> None:
    message = refusal(workflow(generic("a", "true"), max_concurrency=0, timeout="1 hour",
                               retry_policy={"initial_delay": "10s", "max_delay": "1s",
                                             "backoff_factor": 0.5, "jitter": True}))
    assert "config.max_concurrency: must be an integer from 1 to 1000" in message
    assert "config.timeout: unknown unit ' hour' in duration '1 hour'" in message
    assert "config.retry_policy.backoff_factor" in message
    assert "config.retry_policy.jitter: unknown property" in message
    assert "config.retry_policy.max_delay: '1s' is shorter than initial_delay '10s'" in message
    spec = parse_definition(workflow(generic("a", "true"), generic("b", "true", max_retries=0),
                                     retry_policy={"max_attempts": 5}), NO_ML)
    assert spec.config() == {"max_concurrency": 10, "timeout": "1h", "retry_policy": {
        "max_attempts": 5, "initial_delay": "1s", "max_delay": "5m", "backoff_factor": 2.0}}
    assert [t.max_retries for t in spec.tasks] == [5, 0]
    assert [t.priority for t in spec.tasks] == [1, 1]


@pytest.mark.parametrize(("definition", "expected"), [
    ([], "a workflow must be a JSON object"),
    ({"name": "x", "tasks": []}, "tasks: at least one task is required"),
    ({"name": "x", "tasks": "a"}, "tasks: must be a list of tasks"),
    ({"name": "\ud800", "tasks": [generic("a", "true")]}, "name: contains text that is not"),
    ({"name": "x\x1b[31m", "tasks": [generic("a", "true")]}, "name must not contain control"),
    (workflow(generic("a", "true", payload={"n": 2**70})), "number out of range"),
    (workflow(generic("a", "true", payload={"f": float("nan")})), "finite number"),
    (workflow(generic("a", "true\x00rm")), "payload must not contain NUL"),
    (workflow(generic("a", "true", priority="high")), "priority must be an integer"),
    (workflow(generic("a", "true", max_retries=True)), "max_retries must be an integer"),
    (workflow(generic("a", "true", colour="red")), "tasks[0].colour: task 'a': unknown"),
])
def test_hostile_input_is_refused_with_a_message(definition: Any, expected: str) -> None:
    assert expected in refusal(definition)


def test_deep_and_huge_definitions_are_refused() -> None:
    deep: Any = "x"
    for _ in range(100):
        deep = {"d": deep}
    assert "nested more than 32 levels deep" in refusal(
        workflow(generic("a", "true", payload={"deep": deep})))
    huge = workflow(generic("a", "true", payload={"blob": "x" * 2_000_000}))
    assert "at most 1048576 are accepted" in refusal(huge)


def test_read_only_fields_a_client_echoes_back_are_ignored() -> None:
    definition = workflow(generic("a", "true", id="", status="pending", retry_count=0))
    definition.update(id="", status="", created_at="0001-01-01T00:00:00Z")
    assert parse_definition(definition, NO_ML).tasks[0].name == "a"


async def test_a_refused_workflow_leaves_nothing_behind(engine: Engine) -> None:
    with pytest.raises(ValidationError):
        await engine.flowctl.submit(workflow(generic("a", "true", dependencies=["a"])), "t")
    assert engine.list_flows("flowctl") == []
    assert (await engine.flowctl.list_workflows()).total == 0


text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63) + 1, 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(text, json_values, max_size=4), text.filter(lambda s: s.strip() != ""))
def test_payloads_and_names_survive_the_flow_source(payload: dict[str, Any],
                                                    name: str) -> None:
    """Whatever JSON a payload holds, the flow's YAML gives back the same payload."""
    if any(ch < " " or "\x7f" <= ch <= "\x9f" for ch in name):
        name = "plain"
    definition = workflow({"name": name, "type": "ml_training", "payload": payload})
    ml = FlowctlSettings(task_types={"ml_training": CommandType("true")})
    spec = parse_definition(definition, ml)
    chosen = definition_module._DUMPER
    try:
        for dumper in {chosen, yaml.SafeDumper}:  # libyaml's emitter, and PyYAML's own
            definition_module._DUMPER = dumper
            flow = parse_flow(flow_source(spec, "0190c6e0-0000-7000-8000-000000000001",
                                          ["0190c6e0-0000-7000-8000-000000000002"]))
            [child] = flow.raw["tasks"][0]["tasks"]
            assert child["payload"] == payload and child["name"] == name
    finally:
        definition_module._DUMPER = chosen
