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

from flowdeck.core.errors import InvalidInputsError
from flowdeck.engine.flow_document import input_document
from flowdeck.engine.inputs import InputDef, resolve_inputs

#: A SECRET input's value is never sent back.
HIDDEN = "******"


@dataclass(frozen=True, slots=True)
class InputCheck:
    declaration: dict[str, Any]  # the input as Kestra's flow document writes it
    value: Any
    is_default: bool
    errors: list[str]


@dataclass(frozen=True, slots=True)
class InputsCheck:
    namespace: str
    flow_id: str
    inputs: list[InputCheck]


def check_inputs(declared: list[InputDef], given: dict[str, Any], *,
                 render_default: Callable[[Any], Any] | None = None,
                 uploads: Path | None = None) -> list[InputCheck]:
    """Every declared input, resolved on its own (one input's problem does not hide another's)."""
    checks = []
    for inp in declared:
        supplied = given.get(inp.id) not in (None, "")
        try:
            value = resolve_inputs([inp], {inp.id: given[inp.id]} if supplied else {},
                                   render_default=render_default,
                                   uploads=uploads).get(inp.id)
            errors: list[str] = []
        except InvalidInputsError as exc:
            value, errors = None, [message for _, message in exc.problems]
        if inp.type == "SECRET" and value is not None:
            value = HIDDEN
        declaration = input_document(inp.model_dump(exclude_none=True))
        checks.append(InputCheck(declaration, value, not supplied and inp.defaults is not None,
                                 errors))
    return checks
