"""Limits that keep one template render from holding the event loop or the memory.

A flow author (or a webhook caller whose text reaches a template) can write expressions that
never end: `9 ** (9 ** 7)`, `'x' * 10 ** 9`, loops of loops, a list that holds itself twice
sixty times over, a catastrophic regular expression. Each is stopped here, with a message:

- numbers: an integer result of `**` or `*` may have at most `MAX_INT_BITS` bits;
- text and lists: what an operator, a concatenation, a method or a filter makes is at most
  `MAX_TEXT` characters / `MAX_ITEMS` items, checked *before* the work where the size can be
  known (`'x' * n`, `center(n)`, `%`-formats, `replace`, `join`, `batch`, `slice`), else after;
- writing a value out (printing a list, `toJson`, `string`, `~`) first measures it once per
  distinct object, so shared references cannot expand past `MAX_TEXT`;
- time: a render may use `RENDER_BUDGET_S` of CPU time, checked at every call, attribute and
  item lookup, operator, loop iteration and chunk of output;
- regular expressions (`replace(..., regexp=true)`, `split`, input validators) run with the
  `regex` package's timeout, which stops the matching engine itself.

The budget lives in a thread-local, set by the outermost render; code outside a render is not
limited by time.
"""

from __future__ import annotations

import math
import string
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import regex

#: An integer may have this many bits (about 1,233 decimal digits).
MAX_INT_BITS = 4096
#: Characters one operation may produce (8 MiB); values passed through are not counted.
MAX_TEXT = 8 << 20
#: Items one operation may produce.
MAX_ITEMS = 1_000_000
#: CPU time one render may use. Renders run on the event loop that also answers HTTP, so this is
#: also the longest a template can hold every API call: well under the server's 50 ms p99.
RENDER_BUDGET_S = 0.025
#: Wall-clock cap on one regular-expression call (and never past the render's budget).
REGEX_TIMEOUT_S = 0.025
#: How deep a value may be nested when it is written out.
MAX_DEPTH = 200


class LimitExceeded(Exception):
    """A template asked for more than a render may use; the message says what."""


class _Budget(threading.local):
    depth = 0
    wall_deadline = math.inf
    cpu_deadline = math.inf


_BUDGET = _Budget()


class render_budget:
    """The time budget of one render; nested renders share the outermost one."""

    __slots__ = ()

    def __enter__(self) -> None:
        budget = _BUDGET
        if budget.depth == 0:
            budget.wall_deadline = time.perf_counter() + RENDER_BUDGET_S
            budget.cpu_deadline = time.thread_time() + RENDER_BUDGET_S
        budget.depth += 1

    def __exit__(self, *exc: object) -> None:
        budget = _BUDGET
        budget.depth -= 1
        if budget.depth == 0:
            budget.wall_deadline = budget.cpu_deadline = math.inf


def tick() -> None:
    """Fail if the current render has used up its budget (cheap: one clock read)."""
    if time.perf_counter() > _BUDGET.wall_deadline:
        _check_cpu()


def _check_cpu() -> None:
    # The wall clock ran out; what counts is CPU time (a render that was merely descheduled on
    # a busy machine gets the rest of its budget).
    budget = _BUDGET
    left = budget.cpu_deadline - time.thread_time()
    if left <= 0:
        raise LimitExceeded(f"it took more than {RENDER_BUDGET_S * 1000:.0f} ms to render")
    budget.wall_deadline = time.perf_counter() + left


def regex_timeout() -> float:
    """How long the next regular-expression call may run."""
    left = _BUDGET.wall_deadline - time.perf_counter()
    return max(0.001, min(REGEX_TIMEOUT_S, left))


def too_long(what: str, size: int, limit: int = MAX_TEXT, unit: str = "characters") -> None:
    if size > limit:
        raise LimitExceeded(f"{what} would be too long ({size:,} {unit}; at most {limit:,})")


def check_int(value: int) -> None:
    if value.bit_length() > MAX_INT_BITS:
        raise LimitExceeded(f"the result would be too large (more than {MAX_INT_BITS} bits)")


def check_value(value: Any) -> Any:
    """A value an operation produced: text and lists within the limits."""
    if isinstance(value, str):
        too_long("the text", len(value))
    elif isinstance(value, list | tuple):
        too_long("the list", len(value), MAX_ITEMS, "items")
    elif isinstance(value, int) and not isinstance(value, bool):
        check_int(value)
    return value


# -- operators ----------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _repeat(sequence: Any, times: int) -> None:
    """`sequence * times`: refuse before the work when the result would be too big."""
    if times <= 0:
        return
    if isinstance(sequence, str):
        too_long("the text", len(sequence) * times)
    else:
        too_long("the list", len(sequence) * times, MAX_ITEMS, "items")
        too_long("the list written out", written_size(sequence) * times)


def binop(operator: str, left: Any, right: Any) -> Any:
    """An intercepted binary operator, with its result's size checked before the work."""
    tick()
    if operator == "**":
        if _is_int(left) and _is_int(right) and right > 0:
            bits = abs(left).bit_length()
            if bits > 1 and (bits - 1) * right > MAX_INT_BITS:
                raise LimitExceeded(f"the result would be too large (more than "
                                    f"{MAX_INT_BITS} bits)")
        return check_value(left**right)
    if operator == "*":
        if _is_int(left) and _is_int(right):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
                raise LimitExceeded(f"the result would be too large (more than "
                                    f"{MAX_INT_BITS} bits)")
        elif _is_int(right) and isinstance(left, str | list | tuple):
            _repeat(left, right)
        elif _is_int(left) and isinstance(right, str | list | tuple):
            _repeat(right, left)
        return check_value(left * right)
    if operator == "+":
        if isinstance(left, str) and isinstance(right, str):
            too_long("the text", len(left) + len(right))
        elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
            too_long("the list", len(left) + len(right), MAX_ITEMS, "items")
        return check_value(left + right)
    if operator == "%":
        if isinstance(left, str):
            check_percent_format(left, right)
        return check_value(left % right)
    if operator == "//":
        return left // right
    raise AssertionError(f"operator {operator} is not intercepted")  # pragma: no cover


_PERCENT_FIELD = regex.compile(r"%[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")


def check_percent_format(template: str, args: Any) -> None:
    """`'%08d' % x`: refuse widths and precisions that would make huge text, and arguments
    that would be huge written out."""
    values = args if isinstance(args, tuple) else (args,)
    stars = [abs(a) for a in values if _is_int(a)]
    for match in _PERCENT_FIELD.finditer(template):
        for part in match.groups():
            if part is not None:
                size = max(stars, default=0) if part == "*" else (
                    int(part) if len(part) <= 12 else 10**12)
                too_long("the formatted text", size)
    for value in values:
        if not isinstance(value, str | int | float):
            written_size(value)


def check_format_spec(template: str) -> None:
    """`'{:>999999999}'.format(x)`: the same for `str.format` fields."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        return  # the formatting itself reports the error
    for _, _, spec, _ in fields:
        if spec:
            for number in regex.findall(r"\d+", spec):
                too_long("the formatted text", int(number[:12]))
                if "{" in spec:
                    check_format_spec(spec)


def concat(items: Iterable[Any]) -> str:
    """Jinja's `~`: each operand as text, the total checked as it grows."""
    tick()
    parts: list[str] = []
    total = 0
    for item in items:
        if not isinstance(item, str):
            written_size(item)
        text = str(item)
        total += len(text)
        too_long("the text", total)
        parts.append(text)
    return "".join(parts)


def guard_iter(iterable: Any) -> Iterator[Any]:
    """What a `{% for %}` loop iterates: the budget is checked as the loop goes."""
    tick()
    for index, item in enumerate(iterable):
        if index & 255 == 255:
            tick()
        yield item


def written_size(value: Any, limit: int = MAX_TEXT) -> int:
    """About how many characters `value` takes written out (JSON or repr), measuring each
    distinct object once; `LimitExceeded` past `limit`, when nested too deeply, or when it
    contains itself."""
    sizes: dict[int, int] = {}
    open_ids: set[int] = set()

    def measure(item: Any, depth: int) -> int:
        if isinstance(item, str):
            return len(item) + 2
        if not isinstance(item, Mapping | list | tuple | set | frozenset):
            return 8
        key = id(item)
        known = sizes.get(key)
        if known is not None:
            return known
        if key in open_ids:
            raise LimitExceeded("the value contains itself")
        if depth > MAX_DEPTH:
            raise LimitExceeded(f"the value is nested more than {MAX_DEPTH} levels deep")
        open_ids.add(key)
        total = 2
        children: Iterable[Any] = (
            (x for pair in item.items() for x in pair) if isinstance(item, Mapping) else item)
        for count, child in enumerate(children):
            if count & 1023 == 1023:
                tick()
            total += measure(child, depth + 1) + 1
            if total > limit:
                raise LimitExceeded(f"the value would be too long written out (more than "
                                    f"{limit:,} characters)")
        open_ids.discard(key)
        sizes[key] = total
        return total

    return measure(value, 0)


# -- methods called from templates (`'x'.center(n)`) ---------------------------------------------


_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
#: str methods that could multiply text and whose result size is not worth predicting.
_REFUSED_METHODS = frozenset({"translate", "maketrans"})


def check_call(function: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Before a method of a str runs: refuse what would make huge text."""
    method = getattr(function, "__wrapped__", function)  # the sandbox wraps str.format
    owner = getattr(method, "__self__", None)
    if not isinstance(owner, str):
        return
    name = getattr(method, "__name__", "")
    if name in ("format", "format_map"):
        check_format_spec(owner)
        for value in (*args, *kwargs.values()):
            if not isinstance(value, str | int | float):
                written_size(value)
    elif name in _WIDTH_METHODS:
        for arg in (*args, *kwargs.values()):
            if _is_int(arg):
                too_long("the text", abs(arg) * (8 if name == "expandtabs" else 1)
                         + len(owner))
    elif name == "replace" and len(args) >= 2 and all(isinstance(a, str) for a in args[:2]):
        too_long("the text", replaced_size(owner, args[0], args[1]))
    elif name in _REFUSED_METHODS:
        raise LimitExceeded(f"str.{name} is not available in templates")


def replaced_size(text: str, old: str, new: str) -> int:
    """The length of `text.replace(old, new)`, without doing it."""
    hits = len(text) + 1 if old == "" else text.count(old)
    return len(text) + hits * (len(new) - len(old))


def check_join(separator: str, items: list[str]) -> None:
    total = len(separator) * max(0, len(items) - 1)
    for count, item in enumerate(items):
        total += len(item)
        if count & 1023 == 1023:
            tick()
    too_long("the joined text", total)


# -- regular expressions ------------------------------------------------------------------------


def regex_sub(pattern: str, replace: Callable[[Any], str], text: str) -> str:
    """`regex.sub` with a timeout, the result's size checked as it grows."""
    grown = 0

    def counted(match: Any) -> str:
        nonlocal grown
        out = replace(match)
        grown += len(out) - (match.end() - match.start())
        too_long("the text", len(text) + grown)
        return out

    try:
        return str(regex.sub(pattern, counted, text, timeout=regex_timeout()))
    except TimeoutError:
        raise LimitExceeded(_regex_too_long(pattern)) from None


def regex_finditer(pattern: str, text: str) -> list[Any]:
    """Every match of `pattern` in `text`, with a timeout."""
    try:
        matches = list(regex.finditer(pattern, text, timeout=regex_timeout()))
    except TimeoutError:
        raise LimitExceeded(_regex_too_long(pattern)) from None
    too_long("the list", len(matches), MAX_ITEMS, "items")
    return matches


def _regex_too_long(pattern: str) -> str:
    shown = pattern if len(pattern) <= 60 else pattern[:59] + "…"
    return (f"the regular expression {shown!r} took too long (more than "
            f"{REGEX_TIMEOUT_S * 1000:.0f} ms)")
