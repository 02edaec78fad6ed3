"""Inputs checked without running anything: Kestra's `POST /executions/{ns}/{id}/validate`
(a new execution's inputs) and `…/actions/resume/validate` (a paused execution's `onResume`
inputs). Each declared input comes back with the value it would take, whether that value is its
default, and what is wrong with it, so a form can show every problem at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowdeck.core.errors import FlowdeckError, InvalidInputsError
from flowdeck.engine.flow_document import input_document
from flowdeck.engine.inputs import Enabled, InputDef, resolve_inputs

#: A SECRET input's value is never sent back.
HIDDEN = "******"


@dataclass(frozen=True, slots=True)
class InputCheck:
    declaration: dict[str, Any]  # the input as Kestra's flow document writes it
    value: Any
    is_default: bool
    errors: list[str]
    enabled: bool = True  # False: its `dependsOn` condition is false, so it is not asked for


@dataclass(frozen=True, slots=True)
class InputsCheck:
    namespace: str
    flow_id: str
    inputs: list[InputCheck]


def check_inputs(declared: list[InputDef], given: dict[str, Any], *,
                 render_default: Callable[[Any], Any] | None = None,
                 uploads: Path | None = None,
                 enabled: Enabled | None = None) -> list[InputCheck]:
    """Every declared input, resolved on its own (one input's problem does not hide another's),
    in order: an input's `dependsOn` sees the values of those before it."""
    checks: list[InputCheck] = []
    before: dict[str, Any] = {}
    for inp in declared:
        declaration = input_document(inp.model_dump(exclude_none=True))
        supplied = given.get(inp.id) not in (None, "")
        try:
            if enabled is not None and not enabled(inp, before):
                checks.append(InputCheck(declaration, None, False, [], enabled=False))
                continue
            value = resolve_inputs([inp], {inp.id: given[inp.id]} if supplied else {},
                                   render_default=render_default,
                                   uploads=uploads).get(inp.id)
            errors: list[str] = []
        except (InvalidInputsError, FlowdeckError) as exc:
            problems = exc.problems if isinstance(exc, InvalidInputsError) else [("", str(exc))]
            value, errors = None, [message for _, message in problems]
        if value is not None:
            before[inp.id] = value
        if inp.type == "SECRET" and value is not None:
            value = HIDDEN
        checks.append(InputCheck(declaration, value, not supplied and inp.defaults is not None,
                                 errors))
    return checks
