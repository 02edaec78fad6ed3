"""The one sanitizer every piece of untrusted text passes before it reaches a terminal.

Flow sources, logs, user comments and server responses can carry escape sequences. Textual
writes them to the terminal byte for byte, so an ``ESC ] 52`` could overwrite the clipboard,
``ESC ] 0`` retitle the window and ``CSI 2J`` wipe the screen. `sanitize` drops every escape
sequence whole (7-bit and 8-bit C1 forms), every other control character except TAB and LF,
and shows bidi controls as ``<U+202E>`` text so they cannot reorder what is displayed.
All patterns are linear (disjoint character classes, no nested repeats): no backtracking blowup.
"""

from __future__ import annotations

import re

__all__ = ["sanitize", "sanitize_line"]

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
