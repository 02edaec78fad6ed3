"""Known errata of Kestra's OpenAPI document, relaxed before an answer is checked against
it or parsed with a client generated from it (pure Python: the kestrapy 1.x check runs it in
a virtual environment of its own, without flowdeck).

- `State.getDuration`, `getStartDate`, `getEndDate`: the document lists the Java getters as
  required members; Kestra never sends them. They are filled in from the real members.
- `FlowForExecution.labels` is typed as an object; Kestra sends the list of `{key, value}`
  that `Flow.labels` documents.
- An input's `value` in the input validation answer
  (`ExecutionControllerApiValidateExecutionInputsResponse.inputs[].value`) is typed as an
  object (Java's `Object`); Kestra sends the value itself (a string, a number, ...).
- Maps typed as maps of objects (kestrapy 1.x: an execution's `inputs`, `outputs` and
  `variables`; a KV entry's `value`): Kestra fills them with any JSON value, as flowdeck
  does; they are left out of what the 1.x models read.
"""

from __future__ import annotations

from typing import Any

#: (model, member) pairs whose documented type is wrong: removed before parsing.
ERRATA = {("FlowForExecution", "labels")}


#: (model, list member, member of its items) whose documented type is wrong: removed.
NESTED_ERRATA = {("ExecutionControllerApiValidateExecutionInputsResponse", "inputs", "value")}


def without_nested_errata(model: str, body: Any) -> Any:
    if not isinstance(body, dict):
        return body
    out = dict(body)
    for erratum_model, member, inner in NESTED_ERRATA:
        if model == erratum_model and isinstance(out.get(member), list):
            out[member] = [{k: v for k, v in item.items() if k != inner}
                           if isinstance(item, dict) else item for item in out[member]]
    return out


def with_state_getters(value: Any) -> Any:
    if isinstance(value, list):
        return [with_state_getters(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: with_state_getters(v) for k, v in value.items()}
    if "current" in out and "histories" in out:
        out.setdefault("getDuration", out.get("duration"))
        out.setdefault("getStartDate", out.get("startDate"))
        out.setdefault("getEndDate", out.get("endDate") or out.get("startDate"))
    return out


#: Maps the 1.x document types as maps of objects (`Map<String, Object>` read as
#: `Dict[str, Dict]`): an execution's inputs, outputs and variables, a KV entry's value.
OBJECT_MAPS = {"inputs", "outputs", "variables"}
OBJECT_VALUES = {"KVControllerTypedValue": "value"}


def without_object_maps(value: Any) -> Any:
    """An execution's scalar inputs (or outputs, variables) left out where the document
    wrongly wants objects (kestrapy 1.x)."""
    if isinstance(value, list):
        return [without_object_maps(v) for v in value]
    if not isinstance(value, dict):
        return value
    execution = "flowRevision" in value and "state" in value
    return {k: without_object_maps(v) for k, v in value.items()
            if not (execution and k in OBJECT_MAPS)}


def relaxed(model: str, body: Any, *, object_maps: bool = False) -> Any:
    body = without_nested_errata(model, with_state_getters(body))
    if object_maps:
        body = without_object_maps(body)
        if isinstance(body, dict) and model in OBJECT_VALUES:
            body = {k: v for k, v in body.items() if k != OBJECT_VALUES[model]}
    if isinstance(body, dict):
        return {k: v for k, v in body.items() if (model, k) not in ERRATA}
    return body


def parse(models: Any, model: str, body: Any, *, object_maps: bool = False) -> None:
    """Parse strictly with the client's model (`from_dict` validates; it never falls back).
    `[Model]` is a list of them, `Paged[Model]` a `{results, total}` page of them."""
    if model.startswith("["):
        assert isinstance(body, list), (model, body)
        for item in body:
            parse(models, model[1:-1], item, object_maps=object_maps)
        return
    if model.startswith("Paged["):
        assert isinstance(body, dict) and isinstance(body.get("total"), int), body
        parse(models, f"[{model[6:-1]}]", body["results"], object_maps=object_maps)
        return
    getattr(models, model).from_dict(relaxed(model, body, object_maps=object_maps))
