import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowdeck.core.sanitize import sanitize, sanitize_line

FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
BIDI = [
    "\u061c", "\u200e", "\u200f",
    "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
    "\u2066", "\u2067", "\u2068", "\u2069",
]  # fmt: skip
ESC = "\x1b"
ST = "\x1b\\"

# (payload, expected output): visible text around each payload must survive.
CORPUS = [
    ("a\x1b]0;pwned\x07b", "ab"),
    ("a\x1b]2;window title\x1b\\b", "ab"),
    ("a\x1b]52;c;cm0gLXJmIH4=\x07b", "ab"),
    ("a\x1b]52;c;?\x1b\\b", "ab"),
    ("see \x1b]8;;https://evil.example/\x1b\\docs\x1b]8;;\x1b\\ here", "see docs here"),
    ("a\x1b[2Jb", "ab"),
    ("a\x1b[6nb", "ab"),
    ("a\x1b[?1049hb", "ab"),
    ("a\x1b[38;2;255;0;0mred\x1b[0mb", "aredb"),
    ("a\x1b[1 qb", "ab"),
    ("a\x1bPq#0;2;0;0;0#1!14@\x1b\\b", "ab"),
    ("a\x1bP+q544e\x1b\\b", "ab"),
    ("a\x1b_Gf=100;AAAA\x1b\\b", "ab"),
    ("a\x1bXsos body\x1b\\b", "ab"),
    ("a\x1b^pm body\x1b\\b", "ab"),
    ("a\x1bcb", "ab"),
    ("a\x1b(Bb", "ab"),
    ("a\x1b7b\x1b8", "ab"),
    ("a\x1b#8b", "ab"),
    ("a\x1b=b\x1b>", "ab"),
    ("a\x9b2Jb", "ab"),
    ("a\x9b?1049hb", "ab"),
    ("a\x9d0;pwned\x07b", "ab"),
    ("a\x9d52;c;Zm9v\x9cb", "ab"),
    ("a\x90q\x9cb", "ab"),
    ("a\x98sos\x9cb", "ab"),
    ("a\x9epm\x9cb", "ab"),
    ("a\x9fapc\x9cb", "ab"),
    ("a\x85b\x9cc\x80d", "abcd"),
    ("visible\x1b]0;unterminated title", "visible"),
    ("visible\x1bPunterminated dcs", "visible"),
    ("visible\x1b", "visible"),
    ("visible\x1b[", "visible"),
    ("visible\x9d", "visible"),
    # an OSC cut short by another escape: both go, the text after survives
    ("a\x1b]0;title\x1b[2Jb", "ab"),
    ("a\x1b\x1b[2Jb", "ab"),
    ("a\x1b\x9b2Jb", "ab"),
    ("line1\r\nline2\rx", "line1\nline2x"),
    ("bell\x07 back\x08 nul\x00 del\x7f vt\x0b ff\x0c", "bell back nul del vt ff"),
    ("tab\there\nnext", "tab\there\nnext"),
    ("user\u202etxt.exe", "user<U+202E>txt.exe"),
    ("\u2066x\u2069 \u200e\u200f\u061c", "<U+2066>x<U+2069> <U+200E><U+200F><U+061C>"),
    ("[bold]not markup[/bold] 漢字 😀 e\u0301", "[bold]not markup[/bold] 漢字 😀 e\u0301"),
]


@pytest.mark.parametrize(("payload", "expected"), CORPUS)
def test_payload_corpus(payload: str, expected: str) -> None:
    out = sanitize(payload)
    assert out == expected
    assert ESC not in out
    assert not FORBIDDEN.search(out)
    assert not any(c in out for c in BIDI)


def test_whole_corpus_at_once() -> None:
    payload = "".join(p for p, _ in CORPUS)
    out = sanitize(payload)
    assert ESC not in out
    assert not FORBIDDEN.search(out)
    assert sanitize(out) == out


def test_clean_text_is_returned_as_is() -> None:
    text = "plain text\twith tab\nand newline [b]x[/b] 漢字 😀"
    assert sanitize(text) is text


def test_sanitize_line_keeps_one_screen_line() -> None:
    assert sanitize_line("a\r\nb\tc\x1b[2J") == "a\u23ceb\tc"
    assert sanitize_line("") == ""


def test_sanitize_line_truncates() -> None:
    assert sanitize_line("x" * 10, limit=10) == "x" * 10
    assert sanitize_line("x" * 11, limit=10) == "x" * 10 + "…(truncated)"
    assert sanitize_line("\x1b[31m" + "y" * 9000) == "y" * 8192 + "…(truncated)"
    assert sanitize_line("abc", limit=0) == "…(truncated)"
    with pytest.raises(ValueError):
        sanitize_line("abc", limit=-1)


# --- properties -------------------------------------------------------------------------------

interesting = st.sampled_from(
    [
        "\x1b", "[", "]", "P", "X", "^", "_", "\\", "\x07", "\x9c", "\x9b", "\x9d", "\x90",
        "0", ";", "?", "2", "J", "m", "(", "B", " ", "\t", "\n", "\r", "a", "漢", "😀",
        *BIDI,
    ]
)  # fmt: skip
hostile_text = st.lists(
    st.one_of(interesting, st.characters(codec="utf-8"), st.characters(max_codepoint=0xA0)),
    max_size=60,
).map("".join)
safe_text = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x20, max_codepoint=0x7E),
        st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
        st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),
        st.sampled_from(["\t", "\n", "\u0301", "\u200d"]),
    )
)

many = settings(max_examples=500, deadline=None)


@many
@given(hostile_text)
def test_no_control_survives(text: str) -> None:
    out = sanitize(text)
    assert not FORBIDDEN.search(out)


@many
@given(hostile_text)
def test_idempotent(text: str) -> None:
    once = sanitize(text)
    assert sanitize(once) == once


@many
@given(hostile_text)
def test_bidi_never_survives_raw(text: str) -> None:
    out = sanitize(text)
    assert not any(c in out for c in BIDI)


@many
@given(hostile_text)
def test_sanitize_line_is_one_safe_line(text: str) -> None:
    out = sanitize_line(text)
    assert "\n" not in out
    assert not FORBIDDEN.search(out)


@many
@given(safe_text)
def test_safe_text_unchanged(text: str) -> None:
    assert sanitize(text) == text


@many
@given(safe_text, safe_text)
def test_tab_and_newline_kept_around_payloads(left: str, right: str) -> None:
    out = sanitize(f"{left}\t\x1b]0;x\x07\n\x1b[2J{right}")
    assert out == f"{left}\t\n{right}"


# --- speed ------------------------------------------------------------------------------------

MIB = 1 << 20


@pytest.mark.parametrize(
    "unit",
    [
        "log line 漢字 😀 [bold]x[/] \x1b[31mred\x1b[0m \x1b]0;t\x07 \r\n\u202e ok\t",
        "plain clean text without anything to do, 漢字 😀\n",
        ESC,
        "\x1b]",
        "\x1b[1;",
        "\x1bP",
        "\u202e",
        "\x9b",
    ],
)
def test_one_mebibyte_is_fast(unit: str) -> None:
    text = (unit * (MIB // len(unit) + 1))[:MIB]
    start = time.perf_counter()
    out = sanitize(text)
    elapsed = time.perf_counter() - start
    assert not FORBIDDEN.search(out)
    assert elapsed < 1.0  # about 50 ms on a quiet machine; the goal is < 200 ms
