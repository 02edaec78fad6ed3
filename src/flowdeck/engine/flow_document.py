"""A flow as Kestra serialises it: the JSON document every flow route answers.

Kestra's clients are generated from its OpenAPI document and parse strictly, so the document
follows Kestra's serializer rather than the YAML as written:

- a `Property` value (an input's `defaults` and `prefill`) is written as its expression text:
  `defaults: false` is `"false"`, `5` is `"5"`, a list or map is its compact JSON text
  (`["a","b"]`); kestrapy 1.x refuses anything else;
- an input says whether it is `required` (Kestra's default, true, when the YAML is silent),
  and its type by the name Kestra 2.x writes (`BOOLEAN` is `BOOL`);
- `labels` are a list of `{key, value}` whatever form the YAML used (Kestra 2.x writes them so),
  and are absent when the flow has none; null members are left out (`non_null` inclusion);
- `disabled`, `deleted` and 2.x's `draft` (flowdeck has no draft revisions) are always there.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowdeck.engine.flows import FlowDefinition

#: Input members that are Kestra `Property` values, written as their expression text.
PROPERTY_MEMBERS = ("defaults", "prefill")
#: Input types by the name Kestra 2.x writes (1.x clients know both names).
TYPE_NAMES = {"BOOLEAN": "BOOL"}
#: Flow members copied as the YAML wrote them, in Kestra's order.
PASSED_THROUGH = ("inputs", "outputs", "variables", "tasks", "errors", "finally",
                  "afterExecution", "triggers", "pluginDefaults", "concurrency", "retry")


def property_text(value: Any) -> str:
    """Kestra's `PropertySerializer`: a scalar's text, anything else its compact JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def input_document(raw: Any) -> Any:
    """One input declaration as Kestra writes it (anything unreadable is left as written:
    the flow was validated, so this is only ever a mapping)."""
    if not isinstance(raw, dict):
        return raw
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None:
            continue
        if key in PROPERTY_MEMBERS:
            value = property_text(value)
        elif key == "type" and isinstance(value, str):
            value = TYPE_NAMES.get(value.upper(), value.upper())
        out[key] = value
    out.setdefault("required", True)
    return out


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def flow_document(flow: FlowDefinition, *, with_source: bool = True,
                  deleted: bool = False) -> dict[str, Any]:
    """The flow's `Flow` (or, with its source, `FlowWithSource`) JSON document."""
    out: dict[str, Any] = {"id": flow.id, "namespace": flow.namespace,
                           "revision": flow.revision, "tenantId": "main"}
    if flow.description is not None:
        out["description"] = flow.description
    if flow.labels:
        out["labels"] = [{"key": k, "value": v} for k, v in flow.labels]
    for key in PASSED_THROUGH:
        value = flow.raw.get(key)
        if value is None:
            continue
        if key == "inputs" and isinstance(value, list):
            value = [input_document(item) for item in value]
        elif key == "concurrency" and isinstance(value, dict):
            value = {"behavior": "QUEUE", **value}  # Kestra's default, always written
        out[key] = _without_nulls(value)
    out["disabled"] = flow.disabled
    out["deleted"] = deleted
    out["draft"] = False
    if flow.updated:
        out["updated"] = flow.updated
    if with_source:
        out["source"] = flow.source
    return out
