"""Checks for everything the forge accepts from outside, each failure naming its field.

Hostile input is normal: non-strings, lone surrogates, control characters, huge numbers and
over-long values are refused here with a `ValidationError` before anything reaches SQLite.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from flowdeck.core.errors import ValidationError
from flowdeck.core.forge import ARTIFACT_TYPES, TRIGGER_TYPES, Artifact
from flowdeck.core.ids import is_uuid

OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}", re.ASCII)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", re.ASCII)
PROJECT = NAME
SHA = re.compile(r"[0-9a-f]{7,64}", re.ASCII)
TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}", re.ASCII)
STEP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._:/-]{0,99}", re.ASCII)
DIGEST = re.compile(r"sha256:[0-9a-f]{64}", re.ASCII)
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000_000
MAX_ARTIFACTS = 100
EXIT_CODE_RANGE = (-(2**31), 2**31 - 1)


def fail(field: str, message: str) -> ValidationError:
    return ValidationError([(field, message)])


def text(field: str, value: Any, *, max_len: int = 200, required: bool = True,
         multiline: bool = False) -> str | None:
    """A string without control characters or lone surrogates, at most `max_len` long."""
    if value is None or value == "":
        if required:
            raise fail(field, "is required")
        return None
    if not isinstance(value, str):
        raise fail(field, "must be a string")
    if len(value) > max_len:
        raise fail(field, f"must be at most {max_len} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise fail(field, "is not valid Unicode text (lone surrogate)") from None
    checked = value.replace("\n", "").replace("\t", "") if multiline else value
    if CONTROL.search(checked):
        raise fail(field, "must not contain control characters")
    if not value.strip():
        raise fail(field, "must not be blank")
    return value


def required_text(field: str, value: Any, *, max_len: int = 200,
                  multiline: bool = False) -> str:
    checked = text(field, value, max_len=max_len, multiline=multiline)
    assert checked is not None
    return checked


def repository(value: Any, field: str = "repository") -> str:
    """`owner/name`, as a pipeline flow can be named after it."""
    checked = required_text(field, value, max_len=201)
    owner, sep, name = checked.partition("/")
    if not sep or OWNER.fullmatch(owner) is None or NAME.fullmatch(name) is None:
        raise fail(field, f"'{checked}' is not a repository identifier: write owner/name "
                          "(letters, digits, '-', '_'; the name may also use '.')")
    return checked


def project(value: Any, field: str = "project") -> str:
    checked = required_text(field, value, max_len=100)
    if PROJECT.fullmatch(checked) is None:
        raise fail(field, f"'{checked}' is not a project name (letters, digits, '.', '_', '-')")
    return checked


def commit_sha(value: Any, field: str = "commit_sha") -> str:
    checked = required_text(field, value, max_len=64).lower()
    if SHA.fullmatch(checked) is None:
        raise fail(field, "must be a commit SHA: 7 to 64 hexadecimal digits")
    return checked


def branch(value: Any, field: str = "branch") -> str:
    checked = required_text(field, value, max_len=255)
    if (" " in checked or ".." in checked or checked.startswith(("-", "/"))
            or checked.endswith(("/", ".lock")) or any(c in checked for c in "~^:?*[\\")):
        raise fail(field, f"'{checked}' is not a valid git branch name")
    return checked


def person(value: Any, field: str) -> str:
    return required_text(field, value, max_len=320)


def trigger_type(value: Any) -> str:
    if value not in TRIGGER_TYPES:
        raise fail("trigger_type", f"must be one of {', '.join(TRIGGER_TYPES)}")
    return str(value)


def environment(value: Any, allowed: Sequence[str], field: str = "environment") -> str:
    checked = required_text(field, value, max_len=63)
    if checked not in allowed:
        raise fail(field, f"'{checked}' is not an environment (one of {', '.join(allowed)})")
    return checked


def tag(value: Any) -> str | None:
    checked = text("tag", value, max_len=128, required=False)
    if checked is None:
        return None
    if TAG.fullmatch(checked) is None or checked.isdigit():
        raise fail("tag", f"'{checked}' is not a tag (letters, digits, '.', '_', '+', '-'; "
                          "not only digits, which are release numbers)")
    return checked


def uuid_field(value: Any, field: str, *, required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            raise fail(field, "is required")
        return None
    if not isinstance(value, str) or not is_uuid(value):
        raise fail(field, "must be a UUID")
    return value.lower()


def page(limit: Any, offset: Any) -> tuple[int, int]:
    for name, value in (("limit", limit), ("offset", offset)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise fail(name, "must be an integer")
    if not 1 <= limit <= MAX_LIMIT:
        raise fail("limit", f"must be between 1 and {MAX_LIMIT}")
    if not 0 <= offset <= MAX_OFFSET:
        raise fail("offset", f"must be between 0 and {MAX_OFFSET}")
    return int(limit), int(offset)


def exit_code(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise fail("exit_code", "must be an integer")
    low, high = EXIT_CODE_RANGE
    if not low <= value <= high:
        raise fail("exit_code", f"must be between {low} and {high}")
    return int(value)


def digest(value: Any, field: str = "oci_digest") -> str | None:
    checked = text(field, value, max_len=80, required=False)
    if checked is not None and DIGEST.fullmatch(checked) is None:
        raise fail(field, "must be sha256:<64 hexadecimal digits>")
    return checked


def artifacts(value: Any) -> tuple[Artifact, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise fail("artifacts", "must be a list")
    if len(value) > MAX_ARTIFACTS:
        raise fail("artifacts", f"at most {MAX_ARTIFACTS} artifacts")
    out = []
    for i, item in enumerate(value):
        path = f"artifacts[{i}]"
        if isinstance(item, Artifact):
            item = item.to_dict()
        if not isinstance(item, dict):
            raise fail(path, "must be an object with name and type")
        unknown = set(item) - {"name", "type", "tracking_oci_uri", "primary_published_uri",
                               "digest"}
        if unknown:
            raise fail(f"{path}.{sorted(unknown)[0]}", "unknown field")
        kind = item.get("type")
        if kind not in ARTIFACT_TYPES:
            raise fail(f"{path}.type", f"must be one of {', '.join(ARTIFACT_TYPES)}")
        out.append(Artifact(
            name=required_text(f"{path}.name", item.get("name"), max_len=200),
            type=str(kind),
            tracking_oci_uri=text(f"{path}.tracking_oci_uri", item.get("tracking_oci_uri"),
                                  max_len=2048, required=False),
            primary_published_uri=text(f"{path}.primary_published_uri",
                                       item.get("primary_published_uri"), max_len=2048,
                                       required=False),
            digest=digest(item.get("digest"), f"{path}.digest")))
    return tuple(out)
