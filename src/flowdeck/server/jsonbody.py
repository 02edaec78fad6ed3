"""Bounded JSON for request bodies: what a client sends can be refused, never crash a route.

Python's `json.loads` takes any depth until the interpreter's recursion limit (and whatever
walks the result later hits it again), turns a 5,000-digit number into a `ValueError` of its
own, reads `NaN` and `1e999` as floats JSON cannot write back, and keeps lone surrogates
(`"\\ud800"`) that SQLite refuses. `parse_json` answers all of that with a `ValidationError`
naming the field (`body.inputs.x: ...`), the dialect's 422:

- at most `MAX_DEPTH` levels of arrays and objects;
- integers of at most `MAX_DIGITS` digits, finite numbers only, no `NaN`/`Infinity`;
- lone surrogates become U+FFFD, in values and in keys (`core.sanitize.valid_json`).

A big body is parsed in a worker thread (`parse_json_async`), so a 10 MB upload never holds the
event loop.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

from flowdeck.core.errors import ValidationError
from flowdeck.core.sanitize import valid_json

__all__ = ["INLINE_BYTES", "MAX_DEPTH", "MAX_DIGITS", "JsonRefused", "parse_json",
           "parse_json_async"]

#: Levels of nesting a body may have (Kestra's bodies need a handful).
MAX_DEPTH = 64
#: Digits an integer may have (a 64-bit integer has 19 or 20).
MAX_DIGITS = 100
#: Bodies up to this size are parsed on the event loop; bigger ones in a thread.
INLINE_BYTES = 256 * 1024


class JsonRefused(ValidationError):
    """JSON that parses but is past a bound (depth, digits, range): not a syntax error."""


class _Refused:
    """Stands for a number the parser refused, until the walk names its field."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


def _integer(text: str) -> int | _Refused:
    digits = len(text.lstrip("-"))
    if digits > MAX_DIGITS:
        return _Refused(f"a number of {digits} digits; at most {MAX_DIGITS} are accepted")
    return int(text)


def _float(text: str) -> float | _Refused:
    if len(text) > MAX_DIGITS * 4:
        return _Refused(f"a number written with {len(text)} characters is too long")
    value = float(text)
    if not math.isfinite(value):
        return _Refused(f"{text[:40]} is out of range")
    return value


def _constant(name: str) -> _Refused:
    return _Refused(f"{name} is not a JSON number")


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _check(value: Any, where: str, max_depth: int) -> None:
    """Refuse a refused number or nesting past `max_depth`, naming the field (iterative)."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, _Refused):
            raise JsonRefused([(path, item.why)])
        if isinstance(item, dict | list):
            if depth >= max_depth:
                raise JsonRefused([(path, f"nested too deeply (more than {max_depth} "
                                              "levels of arrays and objects)")])
            children = item.items() if isinstance(item, dict) else enumerate(item)
            stack.extend((child, _join(path, key), depth + 1) for key, child in children)


def parse_json(raw: bytes | str, *, where: str = "body", max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of `raw`, within the bounds above; `ValidationError` naming `where` (or
    the field inside it) otherwise."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise ValidationError([(where, "invalid JSON: not UTF-8 text")]) from None
    try:
        value = json.loads(text, parse_int=_integer, parse_float=_float,
                           parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise ValidationError([(where, f"invalid JSON: {exc.msg} at line {exc.lineno} "
                                       f"column {exc.colno}")]) from None
    except RecursionError:
        raise JsonRefused([(where, f"nested too deeply (more than {max_depth} levels "
                                       "of arrays and objects)")]) from None
    except (ValueError, TypeError, OverflowError) as exc:  # pragma: no cover - defensive
        raise ValidationError([(where, f"invalid JSON: {exc}")]) from None
    _check(value, where, max_depth)
    return valid_json(value)


async def parse_json_async(raw: bytes | str, *, where: str = "body",
                           max_depth: int = MAX_DEPTH) -> Any:
    """`parse_json`, in a worker thread for a body over `INLINE_BYTES`."""
    if len(raw) <= INLINE_BYTES:
        return parse_json(raw, where=where, max_depth=max_depth)
    return await asyncio.to_thread(parse_json, raw, where=where, max_depth=max_depth)
