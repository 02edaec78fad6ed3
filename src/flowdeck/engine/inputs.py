"""Kestra flow inputs: declarations and the coercion of submitted values to their types.

Values arrive as text (CLI `-i k=v`, multipart parts, webhook bodies) or as JSON values; both
are accepted and turned into the JSON-friendly value the execution stores. Every problem names
the input (`inputs.count: expected an integer, got 'abc'`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, time, timedelta
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import regex
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from flowdeck.core.errors import FlowdeckError, InvalidInputsError
from flowdeck.core.sanitize import valid_json
from flowdeck.core.timefmt import format_duration, format_instant, parse_duration, parse_instant
from flowdeck.core.yamlsafe import FLOW_LIMITS, INPUT_LIMITS, YamlLimits
from flowdeck.core.yamlsafe import load_yaml as bounded_yaml

INPUT_TYPES = {
    "STRING", "INT", "FLOAT", "BOOLEAN", "BOOL", "DATETIME", "DATE", "TIME", "DURATION", "FILE",
    "JSON", "URI", "SECRET", "ARRAY", "SELECT", "MULTISELECT", "YAML", "EMAIL", "ENUM",
}
# Matched whole (fullmatch): `$` would accept a trailing newline.
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
URI = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:[^\s]*")
INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
ARRAY_ITEM_TYPES = INPUT_TYPES - {"ARRAY", "SELECT", "MULTISELECT", "ENUM", "FILE"}
#: Documents longer than this are parsed in `PARSE_POOL`, off the event loop.
INLINE_PARSE_CHARS = 16 << 10
#: Threads that parse big YAML documents (flow sources, YAML inputs) so the loop stays free;
#: two at most, so a burst of big documents cannot take every thread of the default pool.
PARSE_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="flowdeck-parse")
#: How long the event loop waits for a parse before it answers "too long" (the worker stops
#: on its own soon after: `YamlLimits.time_budget`).
PARSE_TIMEOUT_S = 5.0
TRUE = {"true", "1", "yes", "y", "on"}
FALSE = {"false", "0", "no", "n", "off"}


def load_yaml(text: str, limits: YamlLimits = FLOW_LIMITS) -> Any:
    """`yaml.safe_load` without implicit timestamps, within `limits` (a flow's by default).

    Raises `yaml.YAMLError`, or `ValueError` for a value a tag cannot build (`!!int abc`) and
    for a document past the limits (size, depth, alias expansion: `core.yamlsafe`).
    """
    return bounded_yaml(text, limits)


def to_json_value(value: Any) -> Any:
    """`value` with YAML-only types made JSON-friendly; ValueError for what has no JSON form."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a finite number")
        return value
    if isinstance(value, datetime):
        return format_instant(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, dict):
        return {k if isinstance(k, str) else _as_text(k): to_json_value(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    raise ValueError(f"a {type(value).__name__} value cannot be stored")


class InputDef(BaseModel):
    """One declared input of a flow (or of a Pause task's `onResume`)."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
    type: str = "STRING"
    required: bool = True
    defaults: Any = None
    description: str | None = None
    displayName: str | None = None
    values: list[Any] | None = None
    itemType: str | None = None
    validator: str | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _check(self) -> InputDef:
        self.type = self.type.upper()
        if self.type not in INPUT_TYPES:
            raise ValueError(f"unknown input type '{self.type}'")
        if self.type in ("SELECT", "MULTISELECT", "ENUM") and not self.values:
            raise ValueError(f"a {self.type} input needs 'values'")
        if self.itemType is not None:
            self.itemType = self.itemType.upper()
            if self.itemType not in ARRAY_ITEM_TYPES:
                raise ValueError(f"unsupported itemType '{self.itemType}' (one of "
                                 f"{', '.join(sorted(ARRAY_ITEM_TYPES))})")
        if self.validator is not None:
            try:
                regex.compile(self.validator)
            except regex.error as exc:
                raise ValueError(f"invalid validator regex: {exc}") from None
        return self

    @property
    def is_optional(self) -> bool:
        return not self.required or self.defaults is not None


def _as_text(value: Any) -> str:
    """Text for a value that arrived as JSON or YAML: `42`, `true`, `{"a":1}`, `2025-06-01`."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return format_instant(value)
    if isinstance(value, date | time):
        return value.isoformat()
    try:
        return json.dumps(to_json_value(value))
    except ValueError:
        return str(value)


def coerce(inp: InputDef, value: Any, *, uploads: Path | None = None) -> Any:
    """Convert one value to the input's type; raises ValueError with a short reason.

    `uploads` is where uploaded FILE inputs live (`file://` URIs may only point there).
    """
    kind = inp.type
    if kind in ("STRING", "SECRET", "FILE"):
        text = value if isinstance(value, str) else _as_text(value)
        if inp.validator and not _matches(inp.validator, text):
            raise ValueError(f"'{text}' does not match the validator '{inp.validator}'")
        return check_file(text, uploads) if kind == "FILE" else text
    if kind == "INT":
        if isinstance(value, bool):
            raise ValueError(f"expected an integer, got {value!r}")
        if isinstance(value, int):
            result: Any = value
        elif isinstance(value, float) and value.is_integer():
            result = int(value)
        elif isinstance(value, str) and INTEGER.fullmatch(value.strip()):
            result = int(value.strip())
        else:
            raise ValueError(f"expected an integer, got '{value}'")
        _bounds(inp, result)
        return result
    if kind == "FLOAT":
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        if isinstance(value, int | float):
            result = float(value)
        elif isinstance(value, str) and DECIMAL.fullmatch(value.strip()):
            result = float(value.strip())
        else:
            raise ValueError(f"expected a number, got '{value}'")
        if not math.isfinite(result):
            raise ValueError(f"expected a finite number, got '{value}'")
        _bounds(inp, result)
        return result
    if kind in ("BOOLEAN", "BOOL"):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in TRUE:
            return True
        if text in FALSE:
            return False
        raise ValueError(f"expected true or false, got '{value}'")
    if kind == "DATETIME":
        try:
            return format_instant(value if isinstance(value, datetime)
                                  else parse_instant(str(value)))
        except ValueError:
            raise ValueError(f"expected an ISO-8601 date-time, got '{value}'") from None
    if kind == "DATE":
        if isinstance(value, datetime):
            return value.date().isoformat()
        if isinstance(value, date):
            return value.isoformat()
        try:
            return date.fromisoformat(str(value).strip()).isoformat()
        except ValueError:
            raise ValueError(f"expected a date like 2025-06-01, got '{value}'") from None
    if kind == "TIME":
        if isinstance(value, time):
            return value.isoformat()
        try:
            return time.fromisoformat(str(value).strip()).isoformat()
        except ValueError:
            raise ValueError(f"expected a time like 10:15:30, got '{value}'") from None
    if kind == "DURATION":
        if isinstance(value, timedelta):
            return format_duration(value)
        return format_duration(parse_duration(str(value).strip()))
    if kind == "JSON":
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"invalid JSON: {exc.msg}") from None
            except (ValueError, RecursionError):
                raise ValueError("invalid JSON") from None
        return to_json_value(value)
    if kind == "YAML":
        if isinstance(value, str):
            try:
                value = load_yaml(value, INPUT_LIMITS)
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                where = f" at line {mark.line + 1}" if mark else ""
                problem = getattr(exc, "problem", None)
                raise ValueError(f"invalid YAML{where}" + (f": {problem}" if problem else "")
                                 ) from None
        return to_json_value(value)
    if kind == "URI":
        text = str(value)
        if not URI.fullmatch(text):
            raise ValueError(f"expected a URI, got '{text}'")
        return text
    if kind == "EMAIL":
        text = str(value)
        if not EMAIL.fullmatch(text):
            raise ValueError(f"expected an e-mail address, got '{text}'")
        return text
    if kind in ("SELECT", "ENUM"):
        text = str(value)
        allowed = [str(v) for v in inp.values or []]
        if text not in allowed:
            raise ValueError(f"'{text}' is not one of {allowed}")
        return text
    if kind in ("MULTISELECT", "ARRAY"):
        items = value
        if isinstance(value, str):
            try:
                items = json.loads(value)
            except json.JSONDecodeError:
                items = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(items, list):
            raise ValueError(f"expected a list, got '{value}'")
        if kind == "MULTISELECT":
            allowed = [str(v) for v in inp.values or []]
            bad = [str(v) for v in items if str(v) not in allowed]
            if bad:
                raise ValueError(f"{bad} not in {allowed}")
            return [str(v) for v in items]
        if inp.itemType:
            item_def = InputDef(id=inp.id, type=inp.itemType)
            out = []
            for i, item in enumerate(items):
                try:
                    out.append(coerce(item_def, item))
                except ValueError as exc:
                    raise ValueError(f"item {i}: {exc}") from None
            return out
        return to_json_value(items)
    raise ValueError(f"unsupported input type {kind}")  # pragma: no cover - guarded by InputDef


#: How long an input's `validator` may take on one value (a flow author's regular expression
#: meets a caller's text: a catastrophic pattern must not hold the engine).
VALIDATOR_TIMEOUT_S = 0.1


def _matches(pattern: str, text: str) -> bool:
    try:
        return regex.fullmatch(pattern, text, timeout=VALIDATOR_TIMEOUT_S) is not None
    except TimeoutError:
        raise ValueError(f"the validator '{pattern}' took too long on this value (more than "
                         f"{VALIDATOR_TIMEOUT_S * 1000:.0f} ms)") from None


def check_file(text: str, uploads: Path | None) -> str:
    """A FILE input names a namespace file (`nsfile:///path`) or a file uploaded with the
    request (a `file://` URI inside `uploads`), never an arbitrary path on this machine."""
    if text.startswith("nsfile://"):
        path = text[len("nsfile://"):]
        parts = PurePosixPath("/" + path.lstrip("/")).parts[1:]
        if "\x00" in path or any(p in ("..", ".") for p in parts):
            raise ValueError(f"'{text}' must not contain '..' or '.' segments")
        if not parts:
            raise ValueError(f"'{text}' names no file")
        return text
    if text.startswith("file://") and uploads is not None:
        parsed = urlparse(text)
        if parsed.netloc in ("", "localhost"):
            target = Path(os.path.realpath(url2pathname(parsed.path)))
            root = Path(os.path.realpath(uploads))
            if target.is_relative_to(root) and target != root and target.is_file():
                return text
    raise ValueError(f"'{text}' is not a file uploaded with this request or a namespace "
                     "file (nsfile:///path): FILE inputs never read other local paths")


def _bounds(inp: InputDef, number: float) -> None:
    if inp.min is not None and number < inp.min:
        raise ValueError(f"{number} is below the minimum {inp.min:g}")
    if inp.max is not None and number > inp.max:
        raise ValueError(f"{number} is above the maximum {inp.max:g}")


#: Whether an input is in use, given the inputs resolved before it (its `dependsOn`).
Enabled = Callable[[InputDef, dict[str, Any]], bool]


def depends_on_condition(inp: InputDef) -> str | None:
    """The `dependsOn.condition` of an input (Kestra: the input is only asked for, and only
    required, while it renders truthy with the inputs before it), or None."""
    depends = (inp.model_extra or {}).get("dependsOn")
    condition = depends.get("condition") if isinstance(depends, dict) else None
    return condition if isinstance(condition, str) and condition.strip() else None


def resolve_inputs(declared: list[InputDef], given: dict[str, Any], *,
                   prefix: str = "inputs", strict_unknown: bool = False,
                   render_default: Callable[[Any], Any] | None = None,
                   uploads: Path | None = None,
                   enabled: Enabled | None = None) -> dict[str, Any]:
    """Apply defaults and types to submitted inputs; every problem is reported at once.

    `render_default` renders a `{{ }}` default (e.g. `{{ now() | date('yyyy-MM-dd') }}`);
    `enabled` leaves out an input whose `dependsOn` condition is false (neither required nor
    kept).
    """
    problems: list[tuple[str, str]] = []
    out: dict[str, Any] = {}
    given = valid_json(given)
    names = {d.id for d in declared}
    if strict_unknown:
        for key in given:
            if key not in names:
                problems.append((f"{prefix}.{key}", "is not a declared input"))
    for inp in declared:
        if enabled is not None:
            try:
                if not enabled(inp, out):
                    continue
            except FlowdeckError as exc:
                problems.append((f"{prefix}.{inp.id}", f"dependsOn: {exc}"))
                continue
        if inp.id in given and given[inp.id] is not None and given[inp.id] != "":
            raw = given[inp.id]
        elif inp.defaults is not None:
            raw = inp.defaults
            if render_default is not None and isinstance(raw, str) and "{{" in raw:
                try:
                    raw = render_default(raw)
                except FlowdeckError as exc:
                    problems.append((f"{prefix}.{inp.id}", f"default: {exc}"))
                    continue
        elif inp.required:
            problems.append((f"{prefix}.{inp.id}", "is required"))
            continue
        else:
            continue
        try:
            out[inp.id] = valid_json(coerce(inp, raw, uploads=uploads))
        except ValueError as exc:
            problems.append((f"{prefix}.{inp.id}", str(exc)))
    if problems:
        raise InvalidInputsError(problems)
    return out


async def resolve_inputs_async(declared: list[InputDef], given: dict[str, Any],
                               **options: Any) -> dict[str, Any]:
    """`resolve_inputs`, in `PARSE_POOL` when a YAML input's text is big (so a route never
    parses a big document on the event loop)."""
    big = any(d.type == "YAML" and isinstance(given.get(d.id), str)
              and len(given[d.id]) > INLINE_PARSE_CHARS for d in declared)
    if not big:
        return resolve_inputs(declared, given, **options)
    work = functools.partial(resolve_inputs, declared, given, **options)
    future = asyncio.get_running_loop().run_in_executor(PARSE_POOL, work)
    try:
        return await asyncio.wait_for(future, PARSE_TIMEOUT_S)
    except TimeoutError:
        raise InvalidInputsError("the inputs took too long to read") from None
