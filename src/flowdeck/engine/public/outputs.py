"""An agent's output: its flow outputs, each converted to the type the flow declares.

Flow outputs are rendered from templates, so they arrive as text (`"3"`, `"[{...}]"`); the
API returns them as the JSON values they stand for (`3`, `[{...}]`) by coercing each with the
flow's declared output type, the way inputs are coerced. A value that does not fit its type
is returned as it is rather than lost.
"""

from __future__ import annotations

import functools
from typing import Any

from flowdeck.engine.flows import FlowDefinition
from flowdeck.engine.inputs import InputDef, coerce


@functools.lru_cache(maxsize=64)
def _definition(kind: str) -> InputDef | None:
    try:
        return InputDef(id="output", type=kind)
    except ValueError:  # an output type inputs do not know: keep such values as they are
        return None


def typed_value(kind: str | None, value: Any) -> Any:
    if not isinstance(value, str) or kind is None or kind.upper() in ("STRING", "SECRET"):
        return value
    definition = _definition(kind.upper())
    if definition is None:
        return value
    try:
        return coerce(definition, value)
    except (ValueError, RecursionError):
        return value


def typed_outputs(flow: FlowDefinition | None,
                  outputs: dict[str, Any] | None) -> dict[str, Any] | None:
    if outputs is None:
        return None
    kinds = {o.id: o.type for o in flow.outputs} if flow is not None else {}
    return {name: typed_value(kinds.get(name), value) for name, value in outputs.items()}
