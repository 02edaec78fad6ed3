"""Render Kestra (Pebble) ``{{ ... }}`` expressions with a sandboxed Jinja2 environment.

Jinja2 and Pebble look alike; where they differ, this module makes Jinja behave like Kestra's
Pebble: strict but chainable undefined values, the ``??`` / ``???`` coalescing operators, Pebble's
filters and functions (``date`` with Java patterns, ``toJson``, ``slugify``, ...), and Pebble's way
of printing values (maps and lists as compact JSON, ``true``/``false``, null as nothing).

Every render runs within `engine.template_limits`: sizes of what operators, methods and
filters make, a CPU budget, and timeouts on regular expressions. A render past a limit fails
with `TemplateError`, naming the expression and what was too much.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any, NamedTuple, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import ChainableUndefined, StrictUndefined, Template, Undefined, nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.filters import FILTERS as JINJA_FILTERS
from jinja2.runtime import Context
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment
from jinja2.utils import missing, pass_context, pass_environment, pass_eval_context
from jinja2.visitor import NodeTransformer

from flowdeck.core.errors import FlowdeckError
from flowdeck.engine import template_limits as limits

__all__ = ["TemplateError", "TemplateRenderer", "has_expression"]

_MAX_EXPRESSION = 200
_MAX_REASON = 300
_CACHE_SIZE = 2048


class TemplateError(FlowdeckError):
    """An expression that cannot be rendered: what was written and why it failed."""

    def __init__(self, expression: str, reason: str) -> None:
        self.expression = expression
        self.reason = reason
        super().__init__(f"cannot render {expression!r}: {reason}")

    def __reduce__(self) -> tuple[type[TemplateError], tuple[str, str]]:
        return (type(self), (self.expression, self.reason))


def has_expression(text: str) -> bool:
    """True if ``text`` contains a ``{{`` or ``{%`` block and so needs rendering."""
    return "{{" in text or "{%" in text


# ---------------------------------------------------------------------------------------------
# Undefined: chainable (``a.b.c`` on a missing ``a`` stays undefined) but strict (printing,
# iterating, testing, comparing or computing with it fails), like Pebble's strictVariables.
# ---------------------------------------------------------------------------------------------


class _UndefinedAccess(UndefinedError):
    """An undefined value was used; remembers what was looked up on what, to name it."""

    def __init__(self, message: str, obj: Any, name: Any) -> None:
        super().__init__(message)
        self.obj = obj
        self.name = name


class _FlowUndefined(ChainableUndefined, StrictUndefined):
    __slots__ = ()

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> NoReturn:
        if self._undefined_exception is UndefinedError and not self._undefined_hint:
            raise _UndefinedAccess(
                self._undefined_message, self._undefined_obj, self._undefined_name
            )
        raise self._undefined_exception(self._undefined_message)

    # StrictUndefined binds these to the base class's method; rebind them to ours.
    __iter__ = __str__ = __len__ = __contains__ = _fail_with_undefined_error
    __eq__ = __ne__ = __bool__ = __hash__ = _fail_with_undefined_error
    __add__ = __radd__ = __sub__ = __rsub__ = _fail_with_undefined_error
    __mul__ = __rmul__ = __div__ = __rdiv__ = _fail_with_undefined_error
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = _fail_with_undefined_error
    __mod__ = __rmod__ = __pos__ = __neg__ = __call__ = _fail_with_undefined_error
    __lt__ = __le__ = __gt__ = __ge__ = _fail_with_undefined_error
    __int__ = __float__ = __complex__ = __pow__ = __rpow__ = _fail_with_undefined_error


def _coalesce_present(value: Any) -> tuple[Any, ...]:
    """Helper behind ``a ?? b``: ``(a,)`` when a is defined and not null, else ``()``."""
    if isinstance(value, Undefined):
        if value._undefined_exception is not UndefinedError:  # a blocked (unsafe) access
            value._fail_with_undefined_error()
        return ()
    return () if value is None else (value,)


def _coalesce_defined(value: Any) -> tuple[Any, ...]:
    """Helper behind ``a ??? b``: ``(a,)`` when a is defined (null included), else ``()``."""
    if isinstance(value, Undefined):
        if value._undefined_exception is not UndefinedError:
            value._fail_with_undefined_error()
        return ()
    return (value,)


# ---------------------------------------------------------------------------------------------
# The ``??`` rewrite. Jinja cannot lex ``??``, so before compiling, every ``{{ }}`` / ``{% %}``
# block is tokenized and each ``A ?? B`` is rewritten to ``((A)|__fd_present or [B])[0]``:
# A is evaluated once, B only when A is undefined or null (``or`` short-circuits).
#
# Precedence is Pebble's (Kestra registers ``??`` at 120, above ``~`` 110 and ``|`` 100): the
# operands are postfix expressions (``outputs['t'].value[0]``, ``f(x)``, literals, groups), a
# filter chain directly left of ``??`` belongs to the left operand, filters after the right
# operand apply to the whole coalescence: ``trigger.date ?? execution.startDate | date('yyyy')``
# formats whichever date was chosen. ``a ?? b ?? c`` groups left to right.
# ---------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
      (?P<ws>\s+)
    | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<coalesce>\?\?\??)
    | (?P<name>[^\W\d]\w*)
    | (?P<number>\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d[\d_]*)?)
    | (?P<open>[(\[{])
    | (?P<close>[)\]}])
    | (?P<op>//|\*\*|==|!=|<=|>=|.)
    """,
    re.VERBOSE | re.DOTALL,
)
_BLOCK_START_RE = re.compile(r"\{\{|\{%|\{#")
_RAW_BLOCK_RE = re.compile(r"\{%[-+]?\s*raw\s*[-+]?%\}.*?\{%[-+]?\s*endraw\s*[-+]?%\}", re.DOTALL)
_VAR_END_RE = re.compile(r"-?\}\}")
_STMT_END_RE = re.compile(r"[-+]?%\}")
# Words that are operators, never the start of an operand.
_OPERATOR_WORDS = frozenset({"and", "or", "not", "in", "is", "if", "else"})


class _CoalesceSyntaxError(ValueError):
    """``??`` without an operand on one side."""


class _Tok(NamedTuple):
    kind: str  # ws | string | coalesce | name | number | op | close | group
    text: str
    opener: str = ""  # for groups: "(", "[" or "{"


@dataclass(slots=True)
class _Group:
    opener: str
    children: list[_Tok | _Group] = field(default_factory=list)
    closer: str = ""


def _rewrite_coalesce(source: str) -> str:
    """Rewrite every ``??`` / ``???`` inside the template's blocks into plain Jinja."""
    out: list[str] = []
    pos, n = 0, len(source)
    while True:
        m = _BLOCK_START_RE.search(source, pos)
        if m is None:
            out.append(source[pos:])
            return "".join(out)
        start = m.start()
        out.append(source[pos:start])
        opener = m.group()
        if opener == "{#":
            close = source.find("#}", m.end())
            pos = n if close < 0 else close + 2
            out.append(source[start:pos])
            continue
        if opener == "{%":
            raw = _RAW_BLOCK_RE.match(source, start)
            if raw is not None:
                out.append(raw.group())
                pos = raw.end()
                continue
        body = m.end()
        if body < n and source[body] in "-+":
            body += 1
        out.append(source[start:body])
        statement = opener == "{%"
        items, pos, closer = _scan_block(source, body, _STMT_END_RE if statement else _VAR_END_RE)
        out.append(_rewrite_region(items, statement))
        out.append(closer)


def _scan_block(
    source: str, pos: int, end_re: re.Pattern[str]
) -> tuple[list[_Tok | _Group], int, str]:
    """Tokenize a block body up to its end delimiter (only recognised outside brackets and
    strings, as Jinja's lexer does). Bracketed parts become nested groups."""
    stack: list[tuple[_Group, list[_Tok | _Group]]] = []
    current: list[_Tok | _Group] = []
    n = len(source)
    while pos < n:
        if not stack:
            end = end_re.match(source, pos)
            if end is not None:
                return current, end.end(), end.group()
        m = _TOKEN_RE.match(source, pos)
        if m is None:  # pragma: no cover - the op alternative matches any character
            break
        kind, text, pos = m.lastgroup or "op", m.group(), m.end()
        if kind == "open":
            group = _Group(text)
            stack.append((group, current))
            current = group.children
        elif kind == "close" and stack:
            group, current = stack.pop()
            group.closer = text
            current.append(group)
        else:
            current.append(_Tok(kind, text))
    while stack:  # unterminated: hand it to Jinja, which reports the syntax error
        group, current = stack.pop()
        current.append(group)
    return current, n, ""


def _rewrite_region(items: list[_Tok | _Group], statement: bool,
                    opener: str = "") -> str:
    tokens: list[_Tok] = []
    for item in items:
        if isinstance(item, _Group):
            inner = _rewrite_region(item.children, False, item.opener)
            tokens.append(_Tok("group", item.opener + inner + item.closer, item.opener))
        else:
            tokens.append(item)
    if statement:  # a `{% %}` tag: only `??`
        return _rewrite_operands(tokens, statement)
    rewrite = _rewrite_entry if opener == "{" else _rewrite_ternary
    return ",".join(rewrite(part) for part in _split_top(tokens, ","))


def _rewrite_entry(tokens: list[_Tok]) -> str:
    """One `key: value` of a map literal: a ternary may only be the value."""
    colon = next((k for k, t in enumerate(tokens) if t.kind == "op" and t.text in ":?"), -1)
    if colon < 0 or tokens[colon].text == "?":
        return _rewrite_ternary(tokens)
    return _rewrite_operands(tokens[:colon + 1], False) + _rewrite_ternary(tokens[colon + 1:])


def _rewrite_operands(tokens: list[_Tok], statement: bool) -> str:
    if not any(t.kind == "coalesce" for t in tokens):
        return "".join(t.text for t in tokens)
    return _resolve_coalesce(_elements(tokens, statement))


def _split_top(tokens: list[_Tok], separator: str) -> list[list[_Tok]]:
    """The tokens between each `separator` operator (groups are single tokens already)."""
    parts: list[list[_Tok]] = [[]]
    for tok in tokens:
        if tok.kind == "op" and tok.text == separator:
            parts.append([])
        else:
            parts[-1].append(tok)
    return parts


def _rewrite_ternary(tokens: list[_Tok]) -> str:
    """Pebble's `cond ? a : b` (lowest precedence, right-associative) as Jinja's
    `(a) if (cond) else (b)`; without a `?` the tokens are only checked for `??`."""
    ask = next((k for k, t in enumerate(tokens) if t.kind == "op" and t.text == "?"), -1)
    if ask < 0:
        return _rewrite_operands(tokens, False)
    depth, colon = 0, -1
    for k in range(ask + 1, len(tokens)):
        if tokens[k].kind == "op" and tokens[k].text == "?":
            depth += 1
        elif tokens[k].kind == "op" and tokens[k].text == ":":
            if depth == 0:
                colon = k
                break
            depth -= 1
    if colon < 0:
        raise _CoalesceSyntaxError("'?' needs a ':' and a value for when it is false")
    condition = _rewrite_operands(tokens[:ask], False).strip()
    when_true = _rewrite_ternary(tokens[ask + 1:colon]).strip()
    when_false = _rewrite_ternary(tokens[colon + 1:]).strip()
    if not condition or not when_true or not when_false:
        raise _CoalesceSyntaxError("'? :' needs a condition and two values")
    return f" (({when_true}) if ({condition}) else ({when_false})) "


def _elements(tokens: list[_Tok], statement: bool) -> list[tuple[str, str]]:
    """Group tokens into operands ("unit"), filter calls ("filter"), ``??`` ("coalesce") and
    everything else ("op"). Whitespace sticks to the element before it."""
    elems: list[tuple[str, str]] = []
    n = len(tokens)

    def skip_ws(j: int) -> int:
        while j < n and tokens[j].kind == "ws":
            j += 1
        return j

    def is_op(j: int, text: str) -> bool:
        return j < n and tokens[j].kind == "op" and tokens[j].text == text

    def is_kind(j: int, kind: str) -> bool:
        return j < n and tokens[j].kind == kind

    def take(i: int, j: int, kind: str) -> None:
        elems.append((kind, "".join(t.text for t in tokens[i:j])))

    tag_name = statement  # the first word of a {% %} block is the tag, not an operand
    i = 0
    while i < n:
        tok = tokens[i]
        if tok.kind == "ws":
            if elems:
                elems[-1] = (elems[-1][0], elems[-1][1] + tok.text)
            else:
                elems.append(("op", tok.text))
            i += 1
            continue
        first, tag_name = tag_name, False
        if tok.kind == "coalesce":
            take(i, i + 1, "coalesce")
            i += 1
        elif is_op(i, "|") and is_kind(skip_ws(i + 1), "name"):
            j = skip_ws(i + 1) + 1
            while is_op(skip_ws(j), ".") and is_kind(skip_ws(skip_ws(j) + 1), "name"):
                j = skip_ws(skip_ws(j) + 1) + 1
            k = skip_ws(j)
            if is_kind(k, "group") and tokens[k].opener == "(":
                j = k + 1
            take(i, j, "filter")
            i = j
        elif tok.kind in ("string", "number", "group") or (
            tok.kind == "name" and not first and tok.text not in _OPERATOR_WORDS
        ):
            j = i + 1
            while True:  # postfix: .attr, [item], (call)
                k = skip_ws(j)
                if is_op(k, "."):
                    k2 = skip_ws(k + 1)
                    if is_kind(k2, "name") or is_kind(k2, "number"):
                        j = k2 + 1
                        continue
                elif is_kind(k, "group") and tokens[k].opener in "([":
                    j = k + 1
                    continue
                break
            take(i, j, "unit")
            i = j
        else:
            take(i, i + 1, "op")
            i += 1
    return elems


def _resolve_coalesce(elems: list[tuple[str, str]]) -> str:
    while True:
        idx = next((k for k, (kind, _) in enumerate(elems) if kind == "coalesce"), -1)
        if idx < 0:
            return "".join(text for _, text in elems)
        op = elems[idx][1].strip()
        lo = idx - 1
        while lo >= 0 and elems[lo][0] == "filter":
            lo -= 1
        if lo < 0 or elems[lo][0] != "unit":
            raise _CoalesceSyntaxError(f"'{op}' needs a value on its left")
        hi = idx + 1
        if hi >= len(elems) or elems[hi][0] != "unit":
            raise _CoalesceSyntaxError(f"'{op}' needs a value on its right")
        left = "".join(text for _, text in elems[lo:idx]).strip()
        right = elems[hi][1].rstrip()
        tail = elems[hi][1][len(right) :]
        helper = "__fd_present" if op == "??" else "__fd_defined"
        elems[lo : hi + 1] = [("unit", f"(({left})|{helper} or [{right.strip()}])[0]{tail}")]


# ---------------------------------------------------------------------------------------------
# Printing values the way Pebble does.
# ---------------------------------------------------------------------------------------------


def _iso(value: datetime | date | time) -> str:
    if not isinstance(value, datetime):
        return value.isoformat()
    if value.tzinfo is None:
        return value.isoformat() + "Z"
    text = value.isoformat()
    if value.utcoffset() == timedelta(0):
        text = text[: -len("+00:00")] + "Z"
    return text


def _json_default(value: Any) -> Any:
    if isinstance(value, Undefined):
        return str(value)  # raises: undefined values cannot be serialized
    if isinstance(value, datetime | date | time):
        return _iso(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset | Sequence) and not isinstance(value, str | bytes):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _to_json(value: Any) -> str:
    """Compact JSON, like Kestra's ``toJson``."""
    if not isinstance(value, str | int | float | bool) and value is not None:
        limits.written_size(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)


def _to_text(value: Any) -> str:
    """A value as Pebble prints it."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, Undefined):
        return str(value)  # raises
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime | date | time):
        return _iso(value)
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        return _to_json(value)
    return str(value)


def _finalize(value: Any) -> Any:
    return value if type(value) is str else _to_text(value)


# ---------------------------------------------------------------------------------------------
# Dates: Java DateTimeFormatter patterns and Kestra's named formats.
# ---------------------------------------------------------------------------------------------

_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_UTC_NAMES = frozenset({"UTC", "Z", "GMT", "Etc/UTC", "Etc/GMT"})
_OFFSET_ZONE_RE = re.compile(r"^(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?$")

_Formatter = Callable[[datetime], str]


@functools.lru_cache(maxsize=128)
def _zone(name: str | None) -> tzinfo:
    if name is None or name in _UTC_NAMES:
        return UTC
    m = _OFFSET_ZONE_RE.match(name)
    if m is not None:
        sign = -1 if m.group(1) == "-" else 1
        return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0)))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _offset(dt: datetime, style: str, zero: str | None) -> str:
    """Format the UTC offset. style: H (hours, minutes if any), HHMM, HH:MM, HHMMss, HH:MM:ss."""
    total = int((dt.utcoffset() or timedelta(0)).total_seconds())
    if total == 0 and zero is not None:
        return zero
    sign = "-" if total < 0 else "+"
    hours, rest = divmod(abs(total), 3600)
    minutes, seconds = divmod(rest, 60)
    colon = ":" if ":" in style else ""
    text = f"{sign}{hours:02d}"
    if style != "H" or minutes:
        text += f"{colon}{minutes:02d}"
    if style.endswith("ss") and seconds:
        text += f"{colon}{seconds:02d}"
    return text


def _num(value: int, count: int) -> str:
    return str(value).zfill(count) if count > 1 else str(value)


def _text_field(names: Sequence[str], count: int) -> Callable[[int], str]:
    if count == 4:
        return lambda i: names[i]
    if count == 5:
        return lambda i: names[i][0]
    return lambda i: names[i][:3]


_X_STYLES = {1: "H", 2: "HHMM", 3: "HH:MM", 4: "HHMMss", 5: "HH:MM:ss"}
_MAX_LETTERS = {"d": 2, "H": 2, "h": 2, "k": 2, "K": 2, "m": 2, "s": 2, "a": 1,
                "D": 3, "M": 5, "L": 5, "E": 5, "G": 5, "S": 9, "X": 5, "x": 5, "Z": 5,
                "z": 4}  # fmt: skip


def _field(letter: str, count: int) -> _Formatter:
    """The formatter for a run of ``count`` identical pattern letters."""
    if count > _MAX_LETTERS.get(letter, 19):
        raise ValueError(f"too many pattern letters: {letter * count!r}")
    if letter in "yu":
        if count == 2:
            return lambda dt: f"{dt.year % 100:02d}"
        return lambda dt: _num(dt.year, count)
    if letter in "ML":
        if count <= 2:
            return lambda dt: _num(dt.month, count)
        month = _text_field(_MONTHS, count)
        return lambda dt: month(dt.month - 1)
    if letter == "E":
        day = _text_field(_WEEKDAYS, count)
        return lambda dt: day(dt.weekday())
    simple: dict[str, Callable[[datetime], int]] = {
        "d": lambda dt: dt.day,
        "D": lambda dt: dt.timetuple().tm_yday,
        "H": lambda dt: dt.hour,
        "h": lambda dt: dt.hour % 12 or 12,
        "k": lambda dt: dt.hour or 24,
        "K": lambda dt: dt.hour % 12,
        "m": lambda dt: dt.minute,
        "s": lambda dt: dt.second,
        "n": lambda dt: dt.microsecond * 1000,
    }
    if letter in simple:
        get = simple[letter]
        return lambda dt: _num(get(dt), count)
    if letter == "S":
        return lambda dt: f"{dt.microsecond:06d}000"[:count]
    if letter == "a":
        return lambda dt: "AM" if dt.hour < 12 else "PM"
    if letter == "G":
        return lambda dt: "Anno Domini" if count == 4 else ("A" if count == 5 else "AD")
    if letter == "X":
        return lambda dt: _offset(dt, _X_STYLES[count], "Z")
    if letter == "x":
        return lambda dt: _offset(dt, _X_STYLES[count], None)
    if letter == "Z":
        if count == 4:
            return lambda dt: "GMT" + _offset(dt, "HH:MM:ss", "")
        if count == 5:
            return lambda dt: _offset(dt, "HH:MM:ss", "Z")
        return lambda dt: _offset(dt, "HHMM", None)
    if letter == "z":
        return lambda dt: dt.tzname() or _offset(dt, "HH:MM", "Z")
    if letter == "V" and count == 2:
        return _zone_id
    raise ValueError(f"unsupported date pattern letter {letter!r}")


def _zone_id(dt: datetime) -> str:
    if isinstance(dt.tzinfo, ZoneInfo):
        return dt.tzinfo.key
    if dt.utcoffset() == timedelta(0):
        return "UTC"
    return _offset(dt, "HH:MM:ss", "Z")


@functools.lru_cache(maxsize=256)
def _compile_pattern(pattern: str) -> tuple[str | _Formatter, ...]:
    """Tokenize a Java DateTimeFormatter pattern into literals and field formatters."""
    parts: list[str | _Formatter] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "'":
            if pattern.startswith("''", i):
                parts.append("'")
                i += 2
                continue
            literal: list[str] = []
            j = i + 1
            while True:
                if j >= n:
                    raise ValueError(f"unterminated quote in date pattern {pattern!r}")
                if pattern[j] == "'":
                    if pattern.startswith("''", j):
                        literal.append("'")
                        j += 2
                        continue
                    break
                literal.append(pattern[j])
                j += 1
            parts.append("".join(literal))
            i = j + 1
        elif c.isascii() and c.isalpha():
            j = i
            while j < n and pattern[j] == c:
                j += 1
            parts.append(_field(c, j - i))
            i = j
        elif c in "[]":  # optional sections: every field is available, so always printed
            i += 1
        elif c in "{}#":
            raise ValueError(f"reserved character {c!r} in date pattern {pattern!r}")
        else:
            parts.append(c)
            i += 1
    return tuple(parts)


def _format_pattern(dt: datetime, pattern: str) -> str:
    return "".join(p if isinstance(p, str) else p(dt) for p in _compile_pattern(pattern))


def _fraction_min(dt: datetime) -> str:
    """Java's ISO_LOCAL_TIME fraction: as few digits as needed, none when zero."""
    return "." + f"{dt.microsecond:06d}".rstrip("0") if dt.microsecond else ""


def _local_date(dt: datetime) -> str:
    return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}"


def _local_time(dt: datetime) -> str:
    return f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}{_fraction_min(dt)}"


def _iso_instant(dt: datetime) -> str:
    dt = dt.astimezone(UTC)
    us = dt.microsecond
    frac = "" if not us else (f".{us // 1000:03d}" if us % 1000 == 0 else f".{us:06d}")
    return f"{_local_date(dt)}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}{frac}Z"


def _iso_date_time(dt: datetime) -> str:
    zone = f"[{dt.tzinfo.key}]" if isinstance(dt.tzinfo, ZoneInfo) else ""
    return f"{_local_date(dt)}T{_local_time(dt)}{_offset(dt, 'HH:MM:ss', 'Z')}{zone}"


def _rfc_1123(dt: datetime) -> str:
    return (
        f"{_WEEKDAYS[dt.weekday()][:3]}, {dt.day} {_MONTHS[dt.month - 1][:3]} {dt.year} "
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} {_offset(dt, 'HHMM', 'GMT')}"
    )


def _iso_week_date(dt: datetime) -> str:
    year, week, day = dt.isocalendar()
    return f"{year:04d}-W{week:02d}-{day}{_offset(dt, 'HH:MM:ss', 'Z')}"


_NAMED_FORMATS: dict[str, _Formatter] = {
    "iso": lambda dt: _format_pattern(dt, "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"),
    "iso_sec": lambda dt: _format_pattern(dt, "yyyy-MM-dd'T'HH:mm:ssXXX"),
    "sql": lambda dt: _format_pattern(dt, "yyyy-MM-dd HH:mm:ss.SSSSSS"),
    "sql_seq": lambda dt: _format_pattern(dt, "yyyy-MM-dd HH:mm:ss"),
    "iso_date_time": _iso_date_time,
    "iso_zoned_date_time": _iso_date_time,
    "iso_date": lambda dt: _local_date(dt) + _offset(dt, "HH:MM:ss", "Z"),
    "iso_time": lambda dt: _local_time(dt) + _offset(dt, "HH:MM:ss", "Z"),
    "iso_offset_time": lambda dt: _local_time(dt) + _offset(dt, "HH:MM:ss", "Z"),
    "iso_local_date": _local_date,
    "iso_local_time": _local_time,
    "iso_local_date_time": lambda dt: f"{_local_date(dt)}T{_local_time(dt)}",
    "iso_instant": _iso_instant,
    "iso_ordinal_date": lambda dt: _format_pattern(dt, "yyyy-DDDXXXXX"),
    "iso_week_date": _iso_week_date,
    "rfc_1123_date_time": _rfc_1123,
}
_LOCALIZED_STYLES = frozenset({"full", "long", "medium", "short"})

_STRPTIME = {
    "y": {2: "%y"}, "u": {2: "%y"}, "M": {1: "%m", 2: "%m", 3: "%b", 4: "%B"},
    "d": {1: "%d", 2: "%d"}, "H": {1: "%H", 2: "%H"}, "h": {1: "%I", 2: "%I"},
    "m": {1: "%M", 2: "%M"}, "s": {1: "%S", 2: "%S"}, "a": {1: "%p"},
    "E": {1: "%a", 2: "%a", 3: "%a", 4: "%A"}, "D": {1: "%j", 2: "%j", 3: "%j"},
}  # fmt: skip


@functools.lru_cache(maxsize=128)
def _strptime_format(pattern: str) -> str:
    """Convert a Java pattern to a ``strptime`` format, for ``existingFormat``."""
    out: list[str] = []
    for part in _pattern_runs(pattern):
        if isinstance(part, str):
            out.append(part.replace("%", "%%"))
            continue
        letter, count = part
        if letter in "yu" and count != 2:
            out.append("%Y")
        elif letter == "S" and count <= 6:
            out.append("%f")
        elif letter in "XxZ":
            out.append("%z")
        elif count in _STRPTIME.get(letter, {}):
            out.append(_STRPTIME[letter][count])
        else:
            raise ValueError(f"cannot parse dates with pattern letters {letter * count!r}")
    return "".join(out)


def _pattern_runs(pattern: str) -> list[str | tuple[str, int]]:
    """Split a Java pattern into literals and (letter, count) runs."""
    runs: list[str | tuple[str, int]] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "'":
            j = pattern.find("'", i + 1)
            if j < 0:
                raise ValueError(f"unterminated quote in date pattern {pattern!r}")
            runs.append(pattern[i + 1 : j] if j > i + 1 else "'")
            i = j + 1
        elif c.isascii() and c.isalpha():
            j = i
            while j < n and pattern[j] == c:
                j += 1
            runs.append((c, j - i))
            i = j
        elif c in "[]":
            i += 1
        else:
            runs.append(c)
            i += 1
    return runs


def _to_datetime(value: Any, zone: tzinfo, existing_format: str | None = None) -> datetime:
    """Accept what Kestra's date filters accept: datetimes, dates, epoch seconds, ISO strings."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        return datetime.combine(value, time(12), zone)  # Kestra: a LocalDate means noon
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        text = value.strip()
        if existing_format is not None:
            fmt = _NAMED_PARSE.get(existing_format) or _strptime_format(existing_format)
            dt = datetime.strptime(text, fmt)
        else:
            try:
                dt = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(f"{value!r} is not an ISO-8601 date") from None
    elif isinstance(value, Undefined):
        str(value)  # raises, naming what is undefined
        raise AssertionError  # pragma: no cover
    else:
        raise TypeError(f"expected a date, got {type(value).__name__}")
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=zone)


_NAMED_PARSE = {
    "iso": "%Y-%m-%dT%H:%M:%S.%f%z",
    "iso_sec": "%Y-%m-%dT%H:%M:%S%z",
    "sql": "%Y-%m-%d %H:%M:%S.%f",
    "sql_seq": "%Y-%m-%d %H:%M:%S",
    "iso_local_date": "%Y-%m-%d",
}


def _format_date(dt: datetime, fmt: str, zone: tzinfo) -> str:
    dt = dt.astimezone(zone)
    named = _NAMED_FORMATS.get(fmt)
    if named is not None:
        return named(dt)
    if fmt in _LOCALIZED_STYLES:
        raise ValueError(f"localized date style {fmt!r} is not supported; use a pattern")
    return _format_pattern(dt, fmt)


def _check_locale(locale: str | None) -> None:
    if locale is not None and not locale.lower().startswith("en"):
        raise ValueError(f"only English date names are supported, not locale {locale!r}")


def _date_filter(
    value: Any,
    format: str = "iso",
    timeZone: str | None = None,
    existingFormat: str | None = None,
    locale: str | None = None,
) -> str | None:
    """``{{ execution.startDate | date("yyyy-MM-dd") }}``: format with a Java pattern."""
    if value is None:
        return None
    _check_locale(locale)
    zone = _zone(timeZone)
    return _format_date(_to_datetime(value, zone, existingFormat), format, zone)


_EXACT_UNITS = {
    "MICROS": timedelta(microseconds=1),
    "MILLIS": timedelta(milliseconds=1),
    "SECONDS": timedelta(seconds=1),
    "MINUTES": timedelta(minutes=1),
    "HOURS": timedelta(hours=1),
    "HALF_DAYS": timedelta(hours=12),
}
_CALENDAR_DAYS = {"DAYS": 1, "WEEKS": 7}
_CALENDAR_MONTHS = {"MONTHS": 1, "YEARS": 12, "DECADES": 120, "CENTURIES": 1200,
                    "MILLENNIA": 12000}  # fmt: skip


def _add_months(dt: datetime, months: int) -> datetime:
    index = dt.year * 12 + dt.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    next_month = date(year + month // 12, month % 12 + 1, 1)
    last_day = (next_month - timedelta(days=1)).day
    return dt.replace(year=year, month=month, day=min(dt.day, last_day))


def _date_add(
    value: Any,
    amount: Any,
    unit: str,
    format: str = "iso",
    timeZone: str | None = None,
    existingFormat: str | None = None,
    locale: str | None = None,
) -> str | None:
    """``{{ trigger.date | dateAdd(-1, 'DAYS') }}``: shift a date, returned formatted."""
    if value is None:
        return None
    _check_locale(locale)
    if isinstance(amount, float) and amount.is_integer():
        amount = int(amount)
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"dateAdd amount must be a whole number, got {amount!r}")
    zone = _zone(timeZone)
    dt = _to_datetime(value, zone, existingFormat).astimezone(zone)
    key = str(unit).upper()
    if key in _EXACT_UNITS or key == "NANOS":  # time-based: along the instant time-line
        step = (
            timedelta(microseconds=amount / 1000)
            if key == "NANOS"
            else (_EXACT_UNITS[key] * amount)
        )
        dt = (dt.astimezone(UTC) + step).astimezone(zone)
    elif key in _CALENDAR_DAYS:  # date-based units keep the wall-clock time
        local = dt.replace(tzinfo=None) + timedelta(days=_CALENDAR_DAYS[key] * amount)
        dt = local.replace(tzinfo=zone)
    elif key in _CALENDAR_MONTHS:
        dt = _add_months(dt, _CALENDAR_MONTHS[key] * amount)
    else:
        raise ValueError(f"unknown dateAdd unit {unit!r}")
    return _format_date(dt, format, zone)


def _now(format: str | None = None, timeZone: str | None = None) -> datetime | str:
    """``now()``: the current UTC datetime; with a format, the formatted string."""
    current = datetime.now(UTC)
    if format is None and timeZone is None:
        return current
    zone = _zone(timeZone)
    return _format_date(current, format or "iso", zone)


# ---------------------------------------------------------------------------------------------
# Other Pebble / Kestra filters and functions.
# ---------------------------------------------------------------------------------------------


def _from_json(value: Any) -> Any:
    if value is None or isinstance(value, Mapping | list):
        return value
    return json.loads(_to_text(value))


def _upper(value: Any) -> str | None:
    return None if value is None else _to_text(value).upper()


def _lower(value: Any) -> str | None:
    return None if value is None else _to_text(value).lower()


def _trim(value: Any, chars: str | None = None) -> str | None:
    return None if value is None else _to_text(value).strip(chars)


def _capitalize(value: Any) -> str | None:
    """Pebble: upper-case the first letter, leave the rest alone."""
    if value is None:
        return None
    text = _to_text(value)
    stripped = len(text) - len(text.lstrip())
    return text[:stripped] + text[stripped : stripped + 1].upper() + text[stripped + 1 :]


def _title(value: Any) -> str | None:
    """Pebble: upper-case the first letter of each word, leave the rest alone."""
    if value is None:
        return None
    return re.sub(r"(^|\s)(\S)", lambda m: m.group(1) + m.group(2).upper(), _to_text(value))


def _length(value: Any) -> int:
    return 0 if value is None else len(value)


def _default(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    """Pebble: the default replaces undefined, null and empty strings / collections."""
    if isinstance(value, Undefined) or value is None:
        return default_value
    if boolean:
        return value if value else default_value
    if isinstance(value, str | Mapping | list | tuple | set | frozenset) and not value:
        return default_value
    return value


def _join(value: Any, separator: str = "") -> str | None:
    if value is None:
        return None
    items = [_to_text(item) for item in limits.guard_iter(value)]
    separator = _to_text(separator)
    limits.check_join(separator, items)
    return separator.join(items)


def _java_replacement(template: str) -> Callable[[re.Match[str]], str]:
    """A Java regex replacement (``$1``, ``${name}``, ``\\$``) as a Python replacement function."""
    parts: list[tuple[bool, str | int]] = []  # (is_group, literal text or group reference)
    i, n = 0, len(template)
    while i < n:
        c = template[i]
        if c == "\\" and i + 1 < n:
            parts.append((False, template[i + 1]))
            i += 2
        elif c == "$" and template.startswith("{", i + 1) and "}" in template[i:]:
            end = template.index("}", i)
            parts.append((True, template[i + 2 : end]))
            i = end + 1
        elif c == "$" and i + 1 < n and template[i + 1].isdigit():
            j = i + 1
            while j < n and template[j].isdigit():
                j += 1
            parts.append((True, int(template[i + 1 : j])))
            i = j
        else:
            parts.append((False, c))
            i += 1

    def expand(m: re.Match[str]) -> str:
        return "".join(str(m.group(p) or "") if group else str(p) for group, p in parts)

    return expand


def _replace(
    value: Any, old: Any, new: Any = None, count: int | None = None, regexp: bool = False
) -> Any:
    """Kestra's ``replace({'a': 'b'}, regexp=false)`` and Jinja's ``replace('a', 'b')``."""
    if value is None:
        return None
    if isinstance(old, Mapping):
        pairs = [(_to_text(k), _to_text(v)) for k, v in old.items()]
    elif new is None:
        raise TypeError("replace needs a map of replacements, or the text and its replacement")
    else:
        pairs = [(_to_text(old), _to_text(new))]

    def one(text: str) -> str:
        for target, replacement in pairs:
            if regexp:
                text = limits.regex_sub(target, _java_replacement(replacement), text)
            else:
                if count is None or count < 0:
                    limits.too_long("the text", limits.replaced_size(text, target,
                                                                     replacement))
                text = text.replace(target, replacement, -1 if count is None else count)
                limits.check_value(text)
        return text

    def walk(item: Any) -> Any:
        if isinstance(item, Mapping):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v) for v in item]
        return one(_to_text(item))

    return walk(value)


def _split(value: Any, delimiter: str, limit: int = 0) -> list[str] | None:
    """Pebble's ``split``: Java's ``String.split`` (the delimiter is a regex)."""
    if value is None:
        return None
    text = _to_text(value)
    parts: list[str] = []
    last = 0
    matched = False
    for m in limits.regex_finditer(delimiter, text):
        if limit > 0 and len(parts) == limit - 1:
            break
        if m.end() == 0:  # a zero-width match at the start never yields an empty first part
            continue
        matched = True
        parts.append(text[last : m.start()])
        last = m.end()
    if not matched:
        return [text]
    parts.append(text[last:])
    if limit == 0:
        while parts and parts[-1] == "":
            parts.pop()
    return parts


def _starts_with(value: Any, prefix: str) -> bool:
    return value is not None and _to_text(value).startswith(_to_text(prefix))


def _ends_with(value: Any, suffix: str) -> bool:
    return value is not None and _to_text(value).endswith(_to_text(suffix))


def _substring_before(value: Any, separator: str) -> str | None:
    if value is None:
        return None
    text = _to_text(value)
    idx = text.find(separator)
    return text if idx < 0 else text[:idx]


def _substring_after(value: Any, separator: str) -> str | None:
    if value is None:
        return None
    text = _to_text(value)
    idx = text.find(separator)
    return "" if idx < 0 else text[idx + len(separator) :]


def _substring_before_last(value: Any, separator: str) -> str | None:
    if value is None:
        return None
    text = _to_text(value)
    idx = text.rfind(separator) if separator else -1
    return text if idx < 0 else text[:idx]


def _substring_after_last(value: Any, separator: str) -> str | None:
    if value is None:
        return None
    text = _to_text(value)
    idx = text.rfind(separator) if separator else -1
    return "" if idx < 0 else text[idx + len(separator) :]


def _slugify(value: Any) -> str | None:
    if value is None:
        return None
    text = unicodedata.normalize("NFKD", _to_text(value))
    text = text.encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


_INT_TYPES = frozenset({"INT", "INTEGER", "LONG", "SHORT", "BYTE", "BIGINTEGER"})
_FLOAT_TYPES = frozenset({"FLOAT", "DOUBLE", "BIGDECIMAL"})


def _parse_number(text: str) -> int | float:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        if text.lstrip("+-").lower().startswith("0x"):
            return int(text, 16)
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def _number(value: Any, type: str | None = None) -> int | float | None:
    """Kestra's ``number``: parse text into a number, optionally of a given Java type."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("cannot convert a boolean to a number")
    kind = type.upper() if type else None
    if kind is not None and kind not in _INT_TYPES | _FLOAT_TYPES:
        raise ValueError(f"unknown number type {type!r}")
    number = value if isinstance(value, int | float) else _parse_number(_to_text(value))
    if kind in _INT_TYPES:
        return int(number)
    if kind in _FLOAT_TYPES:
        return float(number)
    return number


def _keys(value: Any) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return list(value.keys())
    return list(range(len(value)))


def _values(value: Any) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return list(value.values())
    return list(value)


def _pebble_range(start: int, end: int | None = None, step: int = 1) -> list[int]:
    """Pebble's ``range(start, end[, step])`` includes ``end``; ``range(n)`` is ``0..n-1``."""
    if end is None:
        numbers = range(start)
    elif step == 0:
        raise ValueError("range step must not be zero")
    else:
        numbers = range(start, end + 1, step) if step > 0 else range(start, end - 1, step)
    if len(numbers) > MAX_RANGE:
        raise OverflowError(f"range too big: more than {MAX_RANGE} items")
    return list(numbers)


def _is_empty(value: Any) -> bool:
    return value is None or len(value) == 0


# ---------------------------------------------------------------------------------------------
# The environment and the renderer.
# ---------------------------------------------------------------------------------------------


class _Guard(NodeTransformer):
    """Route loops and concatenations of a parsed template through `template_limits`.

    Jinja allows no custom node types; a call to an imported function is an ordinary node,
    and the sandbox's `call` sees it like any other call.
    """

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        assert isinstance(node.iter, nodes.Expr)
        node.iter = _call(f"{limits.__name__}.guard_iter", node.iter)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _call(f"{limits.__name__}.concat", nodes.Tuple(node.nodes, "load"))


def _call(function: str, argument: nodes.Expr) -> nodes.Call:
    return nodes.Call(nodes.ImportedName(function, lineno=argument.lineno), [argument], [],
                      None, None, lineno=argument.lineno)


class _FlowEnvironment(ImmutableSandboxedEnvironment):
    #: Operators whose results are checked (and never folded at compile time).
    intercepted_binops = frozenset({"*", "**", "+", "%", "//"})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        guarded = _Guard().visit(tree)
        assert isinstance(guarded, nodes.Template)
        return guarded

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        return limits.binop(operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        limits.tick()
        # Pebble reads map keys before methods: ``outputs.t.items`` is the "items" key.
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        limits.tick()
        return super().getitem(obj, argument)

    def call(__self, __context: Context, __obj: Any, *args: Any,
             **kwargs: Any) -> Any:
        limits.tick()
        limits.check_call(__obj, args, kwargs)
        return limits.check_value(super().call(__context, __obj, *args, **kwargs))


#: Jinja filters that are not Pebble's and work on markup or Python reprs (some with
#: regular expressions that backtrack on crafted text): not offered.
_DROPPED_FILTERS = ("striptags", "urlize", "xmlattr", "pprint", "wordwrap")


def _guarded(filter_function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that checks the budget before it runs and the size of what it returns."""

    @functools.wraps(filter_function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        limits.tick()
        return limits.check_value(filter_function(*args, **kwargs))

    return guarded


def _center(value: Any, width: int = 80) -> str:
    text = _to_text(value)
    limits.too_long("the text", max(len(text), int(width)))
    return text.center(width)


def _indent(value: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> Any:
    text = _to_text(value)
    step = len(width) if isinstance(width, str) else int(width)
    limits.too_long("the text", len(text) + (text.count("\n") + 1) * max(0, step))
    return JINJA_FILTERS["indent"](text, width, first, blank)


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    limits.check_percent_format(_to_text(value), tuple(kwargs.values()) or args)
    result: str = JINJA_FILTERS["format"](value, *args, **kwargs)
    return result


def _batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
    limits.too_long("a batch", int(linecount), limits.MAX_ITEMS, "items")
    return JINJA_FILTERS["batch"](value, linecount, fill_with)


def _slice(value: Any, slices: int, fill_with: Any = None) -> Any:
    limits.too_long("the slices", int(slices), limits.MAX_ITEMS, "items")
    return JINJA_FILTERS["slice"](value, slices, fill_with)


@pass_environment
def _sum(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    items = list(limits.guard_iter(iterable))
    if isinstance(start, str | list | tuple) and attribute is None:
        total = len(start) + sum(len(i) for i in items if isinstance(i, str | list | tuple))
        limits.too_long("the sum", total, limits.MAX_ITEMS, "items")
    return JINJA_FILTERS["sum"](environment, items, attribute, start)


def _string(value: Any) -> Any:
    if not isinstance(value, str):
        limits.written_size(value)
    return JINJA_FILTERS["string"](value)


@pass_eval_context
def _tojson(eval_ctx: Any, value: Any, indent: int | None = None) -> Any:
    limits.written_size(value)
    return JINJA_FILTERS["tojson"](eval_ctx, value, indent)


def _build_environment() -> _FlowEnvironment:
    env = _FlowEnvironment(
        autoescape=False,
        undefined=_FlowUndefined,
        finalize=_finalize,
        keep_trailing_newline=True,  # Kestra sets newLineTrimming(false)
        cache_size=0,  # the renderer keeps its own cache of compiled templates
        auto_reload=False,
    )
    env.filters.update(
        {
            "__fd_present": _coalesce_present,
            "__fd_defined": _coalesce_defined,
            "json": _to_json,
            "toJson": _to_json,
            "fromJson": _from_json,
            "upper": _upper,
            "lower": _lower,
            "trim": _trim,
            "capitalize": _capitalize,
            "title": _title,
            "length": _length,
            "default": _default,
            "join": _join,
            "replace": _replace,
            "split": _split,
            "keys": _keys,
            "values": _values,
            "startsWith": _starts_with,
            "endsWith": _ends_with,
            "substringBefore": _substring_before,
            "substringAfter": _substring_after,
            "substringBeforeLast": _substring_before_last,
            "substringAfterLast": _substring_after_last,
            "slugify": _slugify,
            "number": _number,
            "date": _date_filter,
            "dateAdd": _date_add,
            "center": _center,
            "indent": _indent,
            "format": _format,
            "batch": _batch,
            "slice": _slice,
            "sum": _sum,
            "string": _string,
            "tojson": _tojson,
        }
    )
    for name in _DROPPED_FILTERS:
        env.filters.pop(name, None)
    env.filters = {name: _guarded(f) for name, f in env.filters.items()}
    env.globals.pop("lipsum", None)
    env.tests.update({"null": lambda v: v is None, "empty": _is_empty,
                      "map": lambda v: isinstance(v, Mapping)})  # fmt: skip
    env.globals.update(
        {"now": _now, "json": _from_json, "fromJson": _from_json, "range": _pebble_range,
         "render": _render_function}
    )
    return env


#: How many times `render()` renders its text again while it still holds an expression.
_MAX_RENDER_PASSES = 10


@pass_context
def _render_function(context: Context, value: Any, recursive: bool = True) -> Any:
    """Kestra's `render(text)`: the text (a variable holding an expression, say) rendered
    with the current variables, again while the result still holds one (`recursive`)."""
    if not isinstance(value, str):
        return value
    variables = context.get_all()
    for _ in range(_MAX_RENDER_PASSES if recursive else 1):
        if "{{" not in value and "{%" not in value:
            break
        source = _rewrite_coalesce(value) if "?" in value else value
        value = context.environment.from_string(source).render(variables)
        limits.too_long("the rendered text", len(value))
        limits.tick()
    return value


def _path_step(path: str, key: Any) -> str:
    if isinstance(key, str) and key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def _locate(target: Any, context: Mapping[str, Any]) -> str | None:
    """Where ``target`` (a map or list) sits in the context, as ``outputs.t.value``."""
    queue: deque[tuple[str, Any, int]] = deque(
        (_path_step("", k), v, 0) for k, v in context.items()
    )
    visited = 0
    while queue and visited < 5000:
        path, value, depth = queue.popleft()
        visited += 1
        if value is target:
            return path
        if depth >= 8:
            continue
        if isinstance(value, Mapping):
            children: Any = ((_path_step(path, k), v) for k, v in value.items())
        elif isinstance(value, list | tuple):
            children = ((f"{path}[{i}]", v) for i, v in enumerate(value))
        else:
            continue
        for child_path, child in children:
            if isinstance(child, Mapping | list | tuple):
                queue.append((child_path, child, depth + 1))
    return None


def _undefined_reason(exc: _UndefinedAccess, context: Mapping[str, Any]) -> str:
    if exc.obj is missing:
        return f"{exc.name!r} is undefined"
    if isinstance(exc.obj, Mapping | list | tuple):
        path = _locate(exc.obj, context)
        if path is not None:
            return f"{_path_step(path, exc.name)!r} is undefined"
    return str(exc)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reason(exc: Exception, template: str, context: Mapping[str, Any]) -> str:
    if isinstance(exc, _UndefinedAccess):
        return _undefined_reason(exc, context)
    if isinstance(exc, TemplateSyntaxError):
        line = f" (line {exc.lineno})" if "\n" in template else ""
        return f"syntax error: {exc.message}{line}"
    if isinstance(exc, _CoalesceSyntaxError):
        return f"syntax error: {exc}"
    if isinstance(exc, limits.LimitExceeded):
        return str(exc)
    if isinstance(exc, RecursionError):
        return "the template is nested too deeply"
    if isinstance(exc, SecurityError):
        return f"not allowed: {exc}"
    if isinstance(exc, JinjaTemplateError | FlowdeckError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class TemplateRenderer:
    """Renders Kestra-style templates; one sandboxed environment and a cache of templates."""

    def __init__(self) -> None:
        self._env = _build_environment()
        self._compile: Callable[[str], Template] = functools.lru_cache(maxsize=_CACHE_SIZE)(
            self._compile_uncached
        )

    def _compile_uncached(self, source: str) -> Template:
        if "?" in source:
            source = _rewrite_coalesce(source)
        return self._env.from_string(source)

    def render(self, template: str, context: Mapping[str, Any]) -> str:
        """Render ``template``; text without ``{{`` / ``{%`` is returned as is (same object)."""
        if "{{" not in template and "{%" not in template:
            return template
        with limits.render_budget():
            try:
                parts: list[str] = []
                total = 0
                for chunk in self._compile(template).generate(context):
                    total += len(chunk)
                    limits.too_long("the rendered text", total)
                    limits.tick()
                    parts.append(chunk)
                return "".join(parts)
            except TemplateError:
                raise
            except Exception as exc:
                reason = _shorten(_reason(exc, template, context), _MAX_REASON)
                raise TemplateError(_shorten(template, _MAX_EXPRESSION), reason) from exc

    def render_value(self, value: Any, context: Mapping[str, Any]) -> Any:
        """Render every string in ``value``, through dicts (keys too), lists and tuples; all
        of it within one render's budget."""
        with limits.render_budget():
            return self._render_value(value, context)

    def _render_value(self, value: Any, context: Mapping[str, Any]) -> Any:
        if isinstance(value, str):
            return self.render(value, context)
        if isinstance(value, Mapping):
            return {
                self._render_value(k, context): self._render_value(v, context)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self._render_value(v, context) for v in value]
        if isinstance(value, tuple):
            return tuple(self._render_value(v, context) for v in value)
        return value
