"""Flow inputs: every Kestra type coerced from text and from JSON, defaults, and every problem.

Inputs arrive as text (CLI `-i k=v`, multipart, webhook bodies) or as JSON values; both end up
as the same JSON-friendly value, and a bad value names the input it belongs to.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import yaml

from flowdeck.core.errors import InvalidInputsError
from flowdeck.engine.engine import Engine
from flowdeck.engine.inputs import InputDef, coerce, resolve_inputs
from helpers import apply, run_flow


def declare(yaml_text: str) -> list[InputDef]:
    return [InputDef.model_validate(item) for item in yaml.safe_load(yaml_text)]


def one(decl: dict[str, Any], value: Any) -> Any:
    """Resolve a single input `x` declared by `decl` from `value`."""
    inp = InputDef.model_validate({"id": "x", **decl})
    return resolve_inputs([inp], {"x": value})["x"]


def problem(decl: dict[str, Any], value: Any) -> str:
    inp = InputDef.model_validate({"id": "x", **decl})
    with pytest.raises(InvalidInputsError) as info:
        resolve_inputs([inp], {"x": value})
    [(path, message)] = info.value.problems
    assert path == "inputs.x"
    assert str(info.value) == f"inputs.x: {message}"
    return message


# -- coercion: (declaration, submitted value, resolved value) --------------------------------

VALID = [
    # STRING and SECRET keep text; JSON values become their JSON text
    ({"type": "STRING"}, "hello world", "hello world"),
    ({"type": "STRING"}, "", None),  # empty text counts as not given (see below)
    ({"type": "STRING"}, 42, "42"),
    ({"type": "STRING"}, True, "true"),
    ({"type": "STRING"}, {"a": [1, 2]}, '{"a": [1, 2]}'),
    ({"type": "STRING"}, date(2025, 6, 1), "2025-06-01"),
    ({"type": "SECRET"}, "s3cr3t", "s3cr3t"),
    ({"type": "string"}, "lower-case type", "lower-case type"),
    # INT
    ({"type": "INT"}, "42", 42),
    ({"type": "INT"}, " -7 ", -7),
    ({"type": "INT"}, "+5", 5),
    ({"type": "INT"}, 42, 42),
    ({"type": "INT"}, 42.0, 42),
    ({"type": "INT"}, "12345678901234567890", 12345678901234567890),
    # FLOAT
    ({"type": "FLOAT"}, "3.5", 3.5),
    ({"type": "FLOAT"}, "-0.25", -0.25),
    ({"type": "FLOAT"}, "1e3", 1000.0),
    ({"type": "FLOAT"}, ".5", 0.5),
    ({"type": "FLOAT"}, 2, 2.0),
    ({"type": "FLOAT"}, 2.75, 2.75),
    # BOOLEAN and its 2.0 name BOOL
    ({"type": "BOOLEAN"}, "true", True),
    ({"type": "BOOLEAN"}, "FALSE", False),
    ({"type": "BOOLEAN"}, " yes ", True),
    ({"type": "BOOLEAN"}, "0", False),
    ({"type": "BOOLEAN"}, True, True),
    ({"type": "BOOLEAN"}, False, False),
    ({"type": "BOOL"}, "True", True),
    ({"type": "BOOL"}, False, False),
    # DATETIME: normalised to UTC with a Z and six fractional digits
    ({"type": "DATETIME"}, "2025-06-01T12:00:00+02:00", "2025-06-01T10:00:00.000000Z"),
    ({"type": "DATETIME"}, "2025-06-01T10:00:00Z", "2025-06-01T10:00:00.000000Z"),
    ({"type": "DATETIME"}, "2025-06-01T10:00:00.5Z", "2025-06-01T10:00:00.500000Z"),
    ({"type": "DATETIME"}, "2025-06-01 10:00", "2025-06-01T10:00:00.000000Z"),
    ({"type": "DATETIME"}, "2025-06-01", "2025-06-01T00:00:00.000000Z"),
    ({"type": "DATETIME"}, datetime(2025, 6, 1, 10, tzinfo=UTC), "2025-06-01T10:00:00.000000Z"),
    # DATE and TIME
    ({"type": "DATE"}, "2025-06-01", "2025-06-01"),
    ({"type": "DATE"}, date(2025, 6, 1), "2025-06-01"),
    ({"type": "DATE"}, datetime(2025, 6, 1, 23, 59, tzinfo=UTC), "2025-06-01"),
    ({"type": "TIME"}, "10:15:30", "10:15:30"),
    ({"type": "TIME"}, "10:15", "10:15:00"),
    ({"type": "TIME"}, time(8, 0), "08:00:00"),
    # DURATION: written back the way java.time.Duration writes it
    ({"type": "DURATION"}, "PT90M", "PT1H30M"),
    ({"type": "DURATION"}, "P1D", "PT24H"),
    ({"type": "DURATION"}, "pt5m", "PT5M"),
    ({"type": "DURATION"}, "PT0.5S", "PT0.5S"),
    ({"type": "DURATION"}, timedelta(seconds=90), "PT1M30S"),
    # JSON and YAML parse text and keep JSON values
    ({"type": "JSON"}, '{"a": [1, 2], "b": null}', {"a": [1, 2], "b": None}),
    ({"type": "JSON"}, "[1, 2]", [1, 2]),
    ({"type": "JSON"}, '"text"', "text"),
    ({"type": "JSON"}, {"a": 1}, {"a": 1}),
    ({"type": "JSON"}, [1, "two"], [1, "two"]),
    ({"type": "JSON"}, 3, 3),
    ({"type": "YAML"}, "a: 1\nb: [x, y]\n", {"a": 1, "b": ["x", "y"]}),
    ({"type": "YAML"}, "d: 2025-06-01", {"d": "2025-06-01"}),  # text, not a Python date
    ({"type": "YAML"}, "- 1\n- 2\n", [1, 2]),
    ({"type": "YAML"}, {"a": 1}, {"a": 1}),
    # URI and EMAIL
    ({"type": "URI"}, "https://example.com/a?b=1", "https://example.com/a?b=1"),
    ({"type": "URI"}, "s3://bucket/key", "s3://bucket/key"),
    ({"type": "URI"}, "mailto:ada@example.com", "mailto:ada@example.com"),
    ({"type": "EMAIL"}, "ada@example.com", "ada@example.com"),
    # SELECT, ENUM, MULTISELECT
    ({"type": "SELECT", "values": ["dev", "prod"]}, "prod", "prod"),
    ({"type": "SELECT", "values": [1, 2]}, 2, "2"),
    ({"type": "ENUM", "values": ["A", "B"]}, "B", "B"),
    ({"type": "MULTISELECT", "values": ["a", "b", "c"]}, '["a", "c"]', ["a", "c"]),
    ({"type": "MULTISELECT", "values": ["a", "b", "c"]}, "a, b", ["a", "b"]),
    ({"type": "MULTISELECT", "values": ["a", "b", "c"]}, ["c"], ["c"]),
    ({"type": "MULTISELECT", "values": ["a", "b", "c"]}, [], []),
    # ARRAY, with and without itemType
    ({"type": "ARRAY", "itemType": "INT"}, "[1, 2, 3]", [1, 2, 3]),
    ({"type": "ARRAY", "itemType": "INT"}, '["4", 5]', [4, 5]),
    ({"type": "ARRAY", "itemType": "INT"}, "6, 7", [6, 7]),
    ({"type": "ARRAY", "itemType": "INT"}, [8], [8]),
    ({"type": "ARRAY", "itemType": "STRING"}, "a,b", ["a", "b"]),
    ({"type": "ARRAY", "itemType": "DATETIME"}, ["2025-06-01T12:00:00+02:00"],
     ["2025-06-01T10:00:00.000000Z"]),
    ({"type": "ARRAY", "itemType": "boolean"}, "[true, \"no\"]", [True, False]),
    ({"type": "ARRAY"}, '[1, "a", {"b": 2}]', [1, "a", {"b": 2}]),
]


@pytest.mark.parametrize(("decl", "value", "expected"), VALID)
def test_values_coerce_to_their_type(decl: dict[str, Any], value: Any, expected: Any) -> None:
    inp = InputDef.model_validate({"id": "x", "required": False, **decl})
    resolved = resolve_inputs([inp], {"x": value})
    if expected is None:
        assert resolved == {}
    else:
        assert resolved == {"x": expected}
        assert type(resolved["x"]) is type(expected)
        assert json.loads(json.dumps(resolved)) == resolved  # storable as JSON as it is


INVALID = [
    ({"type": "INT"}, "abc", "expected an integer, got 'abc'"),
    ({"type": "INT"}, "4.5", "expected an integer, got '4.5'"),
    ({"type": "INT"}, "1_000", "expected an integer, got '1_000'"),
    ({"type": "INT"}, "١٢", "expected an integer, got '١٢'"),
    ({"type": "INT"}, 4.5, "expected an integer, got '4.5'"),
    ({"type": "INT"}, True, "expected an integer, got True"),
    ({"type": "INT"}, [1], "expected an integer, got '[1]'"),
    ({"type": "FLOAT"}, "abc", "expected a number, got 'abc'"),
    ({"type": "FLOAT"}, "nan", "expected a number, got 'nan'"),
    ({"type": "FLOAT"}, "inf", "expected a number, got 'inf'"),
    ({"type": "FLOAT"}, "1_0", "expected a number, got '1_0'"),
    ({"type": "FLOAT"}, float("inf"), "expected a finite number, got 'inf'"),
    ({"type": "FLOAT"}, False, "expected a number, got False"),
    ({"type": "FLOAT"}, {"a": 1}, "expected a number, got '{'a': 1}'"),
    ({"type": "BOOLEAN"}, "maybe", "expected true or false, got 'maybe'"),
    ({"type": "BOOL"}, 2, "expected true or false, got '2'"),
    ({"type": "DATETIME"}, "yesterday", "expected an ISO-8601 date-time, got 'yesterday'"),
    ({"type": "DATETIME"}, "2025-02-30T10:00:00Z",
     "expected an ISO-8601 date-time, got '2025-02-30T10:00:00Z'"),
    ({"type": "DATE"}, "2025-02-30", "expected a date like 2025-06-01, got '2025-02-30'"),
    ({"type": "DATE"}, "June 1st", "expected a date like 2025-06-01, got 'June 1st'"),
    ({"type": "TIME"}, "25:00", "expected a time like 10:15:30, got '25:00'"),
    ({"type": "DURATION"}, "5 minutes",
     "invalid ISO-8601 duration '5 minutes' (expected e.g. PT30S, PT5M, P1D)"),
    ({"type": "DURATION"}, "P1M",
     "invalid ISO-8601 duration 'P1M': years and months have no fixed length; use days or weeks "
     "instead (e.g. P30D, P4W)"),
    ({"type": "JSON"}, "{bad", "invalid JSON: Expecting property name enclosed in double quotes"),
    ({"type": "JSON"}, "NaN", "nan is not a finite number"),
    ({"type": "YAML"}, "a: [", "invalid YAML at line "),  # libyaml: 2, pure PyYAML: 1
    ({"type": "URI"}, "not a uri", "expected a URI, got 'not a uri'"),
    ({"type": "URI"}, "relative/path", "expected a URI, got 'relative/path'"),
    ({"type": "EMAIL"}, "ada", "expected an e-mail address, got 'ada'"),
    ({"type": "EMAIL"}, "ada@example", "expected an e-mail address, got 'ada@example'"),
    ({"type": "SELECT", "values": ["dev", "prod"]}, "qa", "'qa' is not one of ['dev', 'prod']"),
    ({"type": "ENUM", "values": ["A"]}, "a", "'a' is not one of ['A']"),
    ({"type": "MULTISELECT", "values": ["a", "b"]}, '["a", "z", "y"]',
     "['z', 'y'] not in ['a', 'b']"),
    ({"type": "MULTISELECT", "values": ["a", "b"]}, '{"a": 1}',
     "expected a list, got '{\"a\": 1}'"),
    ({"type": "ARRAY", "itemType": "INT"}, '[1, "x"]', "item 1: expected an integer, got 'x'"),
    ({"type": "ARRAY", "itemType": "EMAIL"}, "a@b.io, nope",
     "item 1: expected an e-mail address, got 'nope'"),
    ({"type": "ARRAY"}, 5, "expected a list, got '5'"),
]


@pytest.mark.parametrize(("decl", "value", "expected"), INVALID)
def test_wrong_values_name_the_input_and_the_problem(decl: dict[str, Any], value: Any,
                                                     expected: str) -> None:
    message = problem(decl, value)
    if expected.startswith("invalid JSON: ") or expected.startswith("invalid YAML"):
        assert message.startswith(expected)
    else:
        assert message == expected


def test_wrong_type_message_is_exactly_kestra_like() -> None:
    with pytest.raises(InvalidInputsError) as info:
        resolve_inputs(declare("- {id: count, type: INT}"), {"count": "abc"})
    assert str(info.value) == "inputs.count: expected an integer, got 'abc'"
    assert info.value.problems == [("inputs.count", "expected an integer, got 'abc'")]


def test_coerce_raises_plain_value_errors() -> None:
    with pytest.raises(ValueError, match="expected an integer"):
        coerce(InputDef(id="n", type="INT"), "x")


# -- defaults, optional, required ---------------------------------------------------------------


def test_defaults_apply_and_are_coerced() -> None:
    # declarations as a flow's YAML gives them: numbers, booleans and timestamps unquoted
    from flowdeck.engine.flows import parse_flow

    flow = parse_flow("""\
id: f
namespace: n
tasks:
  - {id: a, type: io.kestra.plugin.core.log.Log, message: hi}
inputs:
  - {id: name, type: STRING, defaults: world}
  - {id: count, type: INT, defaults: "3"}
  - {id: ratio, type: FLOAT, defaults: 1}
  - {id: go, type: BOOLEAN, defaults: false}
  - {id: when, type: DATETIME, defaults: 2025-06-01T12:00:00+02:00}
  - {id: day, type: DATE, defaults: 2025-06-01}
  - {id: label, type: STRING, defaults: 2025-06-01}
  - {id: wait, type: DURATION, defaults: PT60M}
  - {id: conf, type: JSON, defaults: {a: [1, 2]}}
  - {id: env, type: SELECT, values: [dev, prod], defaults: prod}
  - {id: ids, type: ARRAY, itemType: INT, defaults: [1, "2"]}
  - {id: zero, type: INT, defaults: 0}
""")
    assert resolve_inputs(flow.inputs, {}) == {
        "name": "world", "count": 3, "ratio": 1.0, "go": False,
        "when": "2025-06-01T10:00:00.000000Z", "day": "2025-06-01", "label": "2025-06-01",
        "wait": "PT1H", "conf": {"a": [1, 2]}, "env": "prod", "ids": [1, 2], "zero": 0,
    }
    # a given value wins over the default
    given = resolve_inputs(flow.inputs, {"name": "ada", "count": 9, "go": "true"})
    assert (given["name"], given["count"], given["go"]) == ("ada", 9, True)


def test_optional_inputs_are_omitted_and_required_ones_reported() -> None:
    declared = declare("""\
- {id: opt, type: STRING, required: false}
- {id: optint, type: INT, required: false}
- {id: optdef, type: INT, required: false, defaults: 5}
- {id: need, type: STRING}
- {id: needint, type: INT, required: true}
""")
    with pytest.raises(InvalidInputsError) as info:
        resolve_inputs(declared, {})
    assert info.value.problems == [("inputs.need", "is required"),
                                   ("inputs.needint", "is required")]
    assert str(info.value) == "inputs.need: is required; inputs.needint: is required"

    assert resolve_inputs(declared, {"need": "x", "needint": "1"}) == {
        "optdef": 5, "need": "x", "needint": 1}
    # empty text and null count as not given
    with pytest.raises(InvalidInputsError) as info:
        resolve_inputs(declared, {"need": "", "needint": None, "opt": ""})
    assert [p for p, _ in info.value.problems] == ["inputs.need", "inputs.needint"]
    assert [d.is_optional for d in declared] == [True, True, True, False, False]


def test_undeclared_inputs_are_dropped_or_refused_when_strict() -> None:
    declared = declare("- {id: a, type: INT}")
    assert resolve_inputs(declared, {"a": "1", "extra": "x"}) == {"a": 1}
    with pytest.raises(InvalidInputsError) as info:
        resolve_inputs(declared, {"a": "1", "extra": "x"}, strict_unknown=True)
    assert info.value.problems == [("inputs.extra", "is not a declared input")]


def test_prefix_names_the_inputs_container() -> None:
    with pytest.raises(InvalidInputsError) as info:
        resolve_inputs(declare("- {id: reason, type: STRING}"), {}, prefix="onResume")
    assert str(info.value) == "onResume.reason: is required"


# -- validator, min, max ------------------------------------------------------------------------


def test_validator_regex_must_match_the_whole_value() -> None:
    decl = {"type": "STRING", "validator": "[a-z]+"}
    assert one(decl, "abc") == "abc"
    assert problem(decl, "abc1") == "'abc1' does not match the validator '[a-z]+'"
    assert problem(decl, "Abc") == "'Abc' does not match the validator '[a-z]+'"
    secret = {"type": "SECRET", "validator": r"^\d{4}$"}
    assert one(secret, "1234") == "1234"
    assert problem(secret, "12345") == r"'12345' does not match the validator '^\d{4}$'"


def test_min_and_max_bound_numbers() -> None:
    ints = {"type": "INT", "min": 1, "max": 10}
    assert [one(ints, v) for v in ("1", "10", 5)] == [1, 10, 5]
    assert problem(ints, "0") == "0 is below the minimum 1"
    assert problem(ints, 11) == "11 is above the maximum 10"
    floats = {"type": "FLOAT", "min": 0.5, "max": 2.5}
    assert one(floats, "2.5") == 2.5
    assert problem(floats, "0.25") == "0.25 is below the minimum 0.5"
    assert problem(floats, 3) == "3.0 is above the maximum 2.5"


def test_every_problem_is_reported_at_once() -> None:
    declared = declare("""\
- {id: count, type: INT}
- {id: ok, type: STRING}
- {id: ratio, type: FLOAT, max: 1}
- {id: when, type: DATETIME}
- {id: env, type: SELECT, values: [dev, prod]}
- {id: code, type: STRING, validator: "[A-Z]{3}"}
- {id: must, type: BOOLEAN}
""")
    with pytest.raises(InvalidInputsError) as info:
        resolve_inputs(declared, {"count": "abc", "ok": "fine", "ratio": 2, "when": "soon",
                                  "env": "qa", "code": "ab"})
    assert info.value.problems == [
        ("inputs.count", "expected an integer, got 'abc'"),
        ("inputs.ratio", "2.0 is above the maximum 1"),
        ("inputs.when", "expected an ISO-8601 date-time, got 'soon'"),
        ("inputs.env", "'qa' is not one of ['dev', 'prod']"),
        ("inputs.code", "'ab' does not match the validator '[A-Z]{3}'"),
        ("inputs.must", "is required"),
    ]


# -- input declarations ------------------------------------------------------------------------


@pytest.mark.parametrize(("decl", "message"), [
    ({"id": "x", "type": "COLOR"}, "unknown input type 'COLOR'"),
    ({"id": "x", "type": "SELECT"}, "a SELECT input needs 'values'"),
    ({"id": "x", "type": "MULTISELECT", "values": []}, "a MULTISELECT input needs 'values'"),
    ({"id": "x", "type": "ENUM"}, "a ENUM input needs 'values'"),
    ({"id": "x", "validator": "("}, "invalid validator regex: missing ) at position 1"),
    ({"id": "x", "type": "ARRAY", "itemType": "NOPE"}, "unsupported itemType 'NOPE'"),
    ({"id": "x", "type": "ARRAY", "itemType": "ARRAY"}, "unsupported itemType 'ARRAY'"),
    ({"id": "-x"}, "String should match pattern"),
])
def test_bad_declarations_are_refused(decl: dict[str, Any], message: str) -> None:
    from pydantic import ValidationError as PydanticValidationError

    with pytest.raises(PydanticValidationError) as info:
        InputDef.model_validate(decl)
    assert message in str(info.value)


def test_item_type_is_normalised() -> None:
    inp = InputDef.model_validate({"id": "x", "type": "array", "itemType": "int"})
    assert (inp.type, inp.itemType) == ("ARRAY", "INT")


# -- through the engine ---------------------------------------------------------------------------

TYPED_FLOW = """
    id: typed
    namespace: t.inputs
    inputs:
      - id: count
        type: INT
        min: 1
      - id: when
        type: DATETIME
      - id: tags
        type: ARRAY
        itemType: STRING
        required: false
      - id: mode
        type: SELECT
        values: [fast, slow]
        defaults: slow
      - id: note
        type: STRING
        required: false
    tasks:
      - id: show
        type: io.kestra.plugin.core.debug.Return
        format: "{{ inputs.count + 1 }} {{ inputs.when }} {{ inputs.mode }}"
    """


async def _execution_count(engine: Engine) -> int:
    row = await engine.store.fetchone("SELECT COUNT(*) FROM executions")
    assert row is not None
    return int(row[0])


async def test_create_execution_coerces_and_stores_inputs(engine: Engine) -> None:
    await apply(engine, TYPED_FLOW)
    final = await run_flow(engine, "t.inputs", "typed",
                           inputs={"count": "41", "when": "2025-06-01T12:00:00+02:00",
                                   "tags": "a,b", "unknown": "dropped"})
    assert final.state.current == "SUCCESS"
    assert final.inputs == {"count": 41, "when": "2025-06-01T10:00:00.000000Z",
                            "tags": ["a", "b"], "mode": "slow"}
    doc = await engine.get_execution_doc(final.id)
    assert doc["inputs"] == final.inputs
    assert final.task_runs[0].outputs == {"value": "42 2025-06-01T10:00:00.000000Z slow"}


async def test_invalid_inputs_are_refused_before_anything_is_stored(engine: Engine) -> None:
    await apply(engine, TYPED_FLOW)
    sub = engine.watch_executions()
    try:
        with pytest.raises(InvalidInputsError) as info:
            await engine.create_execution("t.inputs", "typed",
                                          inputs={"count": "0", "mode": "medium"})
        assert info.value.problems == [
            ("inputs.count", "0 is below the minimum 1"),
            ("inputs.when", "is required"),
            ("inputs.mode", "'medium' is not one of ['fast', 'slow']"),
        ]
        with pytest.raises(InvalidInputsError, match=r"^inputs\.count: expected an integer, "
                                                     r"got 'abc'$"):
            await engine.create_execution("t.inputs", "typed",
                                          inputs={"count": "abc", "when": "2025-06-01"})
        assert sub.queue.empty()  # no execution event was published either
    finally:
        sub.close()
    assert await _execution_count(engine) == 0
    assert engine.running_ids() == []
    # and a valid one afterwards is the first and only execution
    ok = await run_flow(engine, "t.inputs", "typed", inputs={"count": 1, "when": "2025-06-01"})
    assert ok.state.current == "SUCCESS"
    assert await _execution_count(engine) == 1
