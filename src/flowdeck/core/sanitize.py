"""The sanitizers untrusted text passes: before it reaches a terminal, and before it is stored.

Flow sources, logs, user comments and server responses can carry escape sequences. Textual
writes them to the terminal byte for byte, so an ``ESC ] 52`` could overwrite the clipboard,
``ESC ] 0`` retitle the window and ``CSI 2J`` wipe the screen. `sanitize` drops every escape
sequence whole (7-bit and 8-bit C1 forms), every other control character except TAB and LF,
and shows bidi controls as ``<U+202E>`` text so they cannot reorder what is displayed.
All patterns are linear (disjoint character classes, no nested repeats): no backtracking blowup.

`valid_text` and `valid_json` make text valid Unicode where it enters the engine. Python strings
can hold lone surrogates (from JSON `"\\ud800"` escapes, YAML escapes, template literals,
`surrogateescape` decoding) that no UTF-8 encoder accepts: SQLite refuses the row, a JSON
response cannot be written. Each one becomes U+FFFD; a high/low pair becomes its character.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["REPLACEMENT", "sanitize", "sanitize_line", "valid_json", "valid_text"]

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"

# Anything at all that sanitize would change; clean text costs one search.
_SUSPECT = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")

_STRIP = re.compile(
    # CSI: parameters, intermediates, final byte (a missing final drops the start only).
    "(?:\x1b\\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
    # OSC: up to BEL or ST; any other ESC ends it too (as in a terminal); else to the end.
    "|(?:\x1b\\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\\\|\x9c)?"
    # DCS, SOS, PM, APC: up to ST; any other ESC ends them too; else to the end.
    "|(?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x1b\x9c]*(?:\x1b\\\\|\x9c)?"
    # Other escapes: ESC, optional intermediates, optional final (ESC c, ESC (B, ESC 7, ESC).
    "|\x1b[\x20-\x2f]*[\x30-\x7e]?"
    # Remaining C0 except TAB and LF, DEL, and lone C1 characters.
    "|[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f-\x9f]"
)

_BIDI_RE = re.compile(f"[{_BIDI}]")
_SHOW_BIDI = {
    cp: f"<U+{cp:04X}>"
    for cp in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
}

_TRUNCATED = "…(truncated)"


def sanitize(text: str) -> str:
    """Make untrusted text safe to write to a terminal (idempotent).

    Removes escape sequences and control characters (keeps TAB and LF; CR LF becomes LF)
    and replaces bidi controls with visible ``<U+XXXX>`` text. Everything else is unchanged.
    """
    if _SUSPECT.search(text) is None:
        return text
    text = _STRIP.sub("", text)
    if _BIDI_RE.search(text) is not None:
        text = text.translate(_SHOW_BIDI)
    return text


def sanitize_line(text: str, limit: int = 8192) -> str:
    """`sanitize`, then keep it on one screen line: LF shows as ``⏎``, and text longer than
    `limit` characters is cut there with ``…(truncated)`` appended. TAB is kept."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    text = sanitize(text).replace("\n", "\u23ce")
    if len(text) > limit:
        return text[:limit] + _TRUNCATED
    return text


#: What a lone surrogate becomes.
REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD (a surrogate pair is joined into
    its character); clean text is returned as is, at the cost of one scan."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _needs_cleaning(value: Any) -> bool:
    """Whether any string (or key) in a JSON-like value holds a surrogate; refuses cycles."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    path: list[int] = []  # ids of the containers from the root to the current one
    on_path: set[int] = set()
    while stack:
        item, depth = stack.pop()
        while len(path) > depth:
            on_path.discard(path.pop())
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item) is not None:
                return True
        elif isinstance(item, dict | list | tuple):
            if id(item) in on_path:
                raise ValueError("a value that contains itself cannot be stored")
            path.append(id(item))
            on_path.add(id(item))
            children = (*item.keys(), *item.values()) if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def valid_json(value: Any) -> Any:
    """A JSON-like value (dicts, lists, tuples, strings, numbers...) with `valid_text` applied
    to every string and mapping key. Returns `value` itself when nothing needed cleaning, else
    a cleaned copy (the input is never changed). Iterative: no recursion limit to hit. A value
    that contains itself is a ValueError."""
    if isinstance(value, str):
        return valid_text(value)
    if not isinstance(value, dict | list | tuple) or not _needs_cleaning(value):
        return value
    return _cleaned_copy(value)


def _clean_scalar(item: Any) -> Any:
    return valid_text(item) if isinstance(item, str) else item


def _cleaned_copy(root: dict[Any, Any] | list[Any] | tuple[Any, ...]) -> Any:
    # Each frame: (source items, index of the next one, the copy being filled, the key the
    # finished copy goes under in its parent's copy, and whether it ends up a tuple).
    def frame(source: Any, key: Any) -> list[Any]:
        if isinstance(source, dict):
            items = [(_clean_scalar(k), v) for k, v in source.items()]
            return [items, 0, {}, key, False]
        return [list(enumerate(source)), 0, [], key, isinstance(source, tuple)]

    stack = [frame(root, None)]
    on_path = {id(root)}
    while True:
        top = stack[-1]
        items, index, copy = top[0], top[1], top[2]
        if index < len(items):
            top[1] = index + 1
            key, child = items[index]
            if isinstance(child, dict | list | tuple):
                if id(child) in on_path:
                    raise ValueError("a value that contains itself cannot be stored")
                on_path.add(id(child))
                stack.append(frame(child, key))
                stack[-1].append(id(child))
            elif isinstance(copy, dict):
                copy[key] = _clean_scalar(child)
            else:
                copy.append(_clean_scalar(child))
            continue
        stack.pop()
        if len(top) > 5:
            on_path.discard(top[5])
        done = tuple(copy) if top[4] else copy
        if not stack:
            return done
        parent = stack[-1][2]
        if isinstance(parent, dict):
            parent[top[3]] = done
        else:
            parent.append(done)
