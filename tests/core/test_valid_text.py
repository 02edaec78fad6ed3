"""`valid_text` / `valid_json`: text that SQLite, JSON encoders and HTTP can always carry."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowdeck.core.sanitize import valid_json, valid_text


def encodable(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            item.encode("utf-8")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return True


@pytest.mark.parametrize(("text", "expected"), [
    ("\ud800", "\ufffd"),
    ("a\udfffb", "a\ufffdb"),
    ("\udc80\udcff", "\ufffd\ufffd"),  # what surrogateescape leaves for two bad bytes
    ("pair \ud83d\ude00 joined", "pair \U0001f600 joined"),  # a pair becomes its character
    ("\ude00\ud83d", "\ufffd\ufffd"),  # reversed halves are two lone surrogates
    ("plain", "plain"),
    ("漢字 😀 \ufffd", "漢字 😀 \ufffd"),
])
def test_lone_surrogates_become_the_replacement_character(text: str, expected: str) -> None:
    assert valid_text(text) == expected
    valid_text(text).encode("utf-8")


def test_clean_values_are_returned_as_they_are() -> None:
    text = "clean 漢字"
    assert valid_text(text) is text
    doc = {"a": [1, 2.5, None, True, {"b": "c"}], "t": ("x", "y")}
    assert valid_json(doc) is doc


def test_json_values_are_cleaned_everywhere_keys_too() -> None:
    doc = {"k\ud800": ["\udfff", {"n": ("\ud800", 1)}], "ok": "fine", "x": 3}
    out = valid_json(doc)
    assert out == {"k\ufffd": ["\ufffd", {"n": ("\ufffd", 1)}], "ok": "fine", "x": 3}
    assert isinstance(out["k\ufffd"][1]["n"], tuple)
    assert doc["k\ud800"][0] == "\udfff"  # the input is not changed in place


def test_deep_values_do_not_hit_the_recursion_limit() -> None:
    deep: Any = "\ud800"
    for _ in range(50_000):
        deep = [deep]
    out = valid_json(deep)
    for _ in range(50_000):
        out = out[0]
    assert out == "\ufffd"


def test_a_value_that_contains_itself_is_refused() -> None:
    loop: list[Any] = ["\ud800"]
    loop.append(loop)
    with pytest.raises(ValueError, match="contains itself"):
        valid_json(loop)


hostile_char = st.one_of(
    st.characters(),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"]))
hostile_text = st.text(hostile_char, max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(hostile_char, max_size=4), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_value_comes_out_encodable_and_idempotent(value: Any) -> None:
    out = valid_json(value)
    assert encodable(out)
    assert valid_json(out) == out


def test_a_value_that_contains_itself_is_refused_wherever_the_surrogate_is() -> None:
    loop: list[Any] = []
    loop.append(loop)
    loop.append("\ud800")
    with pytest.raises(ValueError, match="contains itself"):
        valid_json(loop)
    shared = ["\ud800"]
    assert valid_json([shared, shared]) == [["\ufffd"], ["\ufffd"]]  # shared is not a cycle
