"""A small checker of JSON values against OpenAPI 3.0 schemas (`$ref`, `allOf`, `oneOf`,
`type`, `nullable`, `required`, `properties`, `additionalProperties`, `items`, `enum`,
lengths, `pattern`, `minimum`, `minItems`, `date-time`): what the Kestra dialect's answers are
held to, without a schema library (OpenAPI 3.0's `nullable` is not JSON Schema's anyway).

`relaxed` applies the known errata of Kestra's document (see tests/compat/kestra_errata.py).
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

import regex

TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "integer": (int,), "number": (int, float),
}
REF = "#/components/schemas/"


def relaxed(schemas: dict[str, Any]) -> dict[str, Any]:
    """The document with its errata relaxed, each named."""
    out = copy.deepcopy(schemas)
    # `when` is required, yet Kestra sends it only when a trigger sets it.
    out["AbstractTrigger"]["required"].remove("when")
    for name in ("Flow", "FlowForExecution"):
        props = out[name]["properties"]
        # Maps typed as objects: labels are a list of Label (as `FlowInterface` documents),
        # variables any map.
        props["labels"] = {"type": "array", "items": {"$ref": REF + "Label"}}
        props["variables"] = {"type": "object"}
    for name in ("ApiExecution", "ApiLightExecution"):
        for member in ("inputs", "outputs", "variables"):
            if member in out[name]["properties"]:
                out[name]["properties"][member] = {"type": "object"}  # values of any type
    out["KVController.KvDetail"]["properties"]["value"] = {}  # any JSON value
    # An input's value (Java's `Object`) is typed as an object; it is the value itself.
    out["ExecutionController.ApiValidateExecutionInputsResponse.ApiInputAndValue"][
        "properties"]["value"] = {}
    return out


class Checker:
    def __init__(self, schemas: dict[str, Any]) -> None:
        self.schemas = schemas

    def check(self, name: str, value: Any) -> list[str]:
        """Problems of `value` as schema `name` (`[X]`: a list of X; `Paged[X]`: a page)."""
        if name.startswith("Paged["):
            page = {"type": "object", "required": ["results"],
                    "properties": {"results": {"type": "array",
                                               "items": {"$ref": REF + name[6:-1]}},
                                   "total": {"type": "integer"}}}
            return self._check(page, value, "$")
        if name.startswith("["):
            return self._check({"type": "array", "items": {"$ref": REF + name[1:-1]}},
                               value, "$")
        return self._check({"$ref": REF + name}, value, "$")

    def _check(self, schema: dict[str, Any], value: Any, at: str) -> list[str]:
        if "$ref" in schema:
            return self._check(self.schemas[schema["$ref"].removeprefix(REF)], value, at)
        if value is None:
            return [] if schema.get("nullable") or not schema else [f"{at}: null"]
        problems: list[str] = []
        for part in schema.get("allOf", []):
            problems += self._check(part, value, at)
        if "oneOf" in schema:
            matching = [p for p in schema["oneOf"] if not self._check(p, value, at)]
            if len(matching) != 1:
                problems.append(f"{at}: matches {len(matching)} of oneOf, not 1")
        kind = schema.get("type")
        if kind is not None:
            ok = isinstance(value, TYPES[kind]) and not (
                kind in ("integer", "number") and isinstance(value, bool))
            if not ok:
                return [*problems, f"{at}: expected {kind}"]
        return problems + self._members(schema, value, at)

    def _members(self, schema: dict[str, Any], value: Any, at: str) -> list[str]:
        problems: list[str] = []
        if "enum" in schema and value not in schema["enum"]:
            problems.append(f"{at}: {value!r} is not one of {schema['enum']}")
        if isinstance(value, str):
            problems += self._string(schema, value, at)
        if isinstance(value, int | float) and "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{at}: below {schema['minimum']}")
        if isinstance(value, list):
            if len(value) < schema.get("minItems", 0):
                problems.append(f"{at}: fewer than {schema['minItems']} items")
            for i, item in enumerate(value):
                problems += self._check(schema.get("items", {}), item, f"{at}[{i}]")
        if isinstance(value, dict):
            problems += self._object(schema, value, at)
        return problems

    def _string(self, schema: dict[str, Any], value: str, at: str) -> list[str]:
        problems = []
        if len(value) < schema.get("minLength", 0):
            problems.append(f"{at}: shorter than {schema['minLength']}")
        if len(value) > schema.get("maxLength", len(value)):
            problems.append(f"{at}: longer than {schema['maxLength']}")
        if "pattern" in schema and not regex.search(schema["pattern"], value):
            problems.append(f"{at}: {value!r} does not match {schema['pattern']}")
        if schema.get("format") == "date-time":
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                problems.append(f"{at}: {value!r} is not a date-time")
        return problems

    def _object(self, schema: dict[str, Any], value: dict[str, Any], at: str) -> list[str]:
        problems = [f"{at}: '{name}' is required" for name in schema.get("required", [])
                    if name not in value]
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                problems += self._check(properties[name], item, f"{at}.{name}")
            elif extra is False and not schema.get("allOf"):
                problems.append(f"{at}: '{name}' is not allowed")
            elif isinstance(extra, dict):
                problems += self._check(extra, item, f"{at}.{name}")
        return problems
