"""Whatever text arrives, the forge's validators answer with the value or a ValidationError
naming the field: never another exception (which a server would turn into a 500)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flowdeck.core.errors import ValidationError
from flowdeck.engine.forge import validate

ANYTHING = st.one_of(st.text(), st.integers(), st.none(), st.booleans(),
                     st.lists(st.text(), max_size=3), st.dictionaries(st.text(), st.text()))
CHECKS = [
    lambda v: validate.repository(v),
    lambda v: validate.project(v),
    lambda v: validate.commit_sha(v),
    lambda v: validate.branch(v),
    lambda v: validate.person(v, "triggered_by"),
    lambda v: validate.trigger_type(v),
    lambda v: validate.environment(v, ("dev", "production")),
    lambda v: validate.tag(v),
    lambda v: validate.uuid_field(v, "release_id"),
    lambda v: validate.exit_code(v),
    lambda v: validate.digest(v),
    lambda v: validate.artifacts(v),
    lambda v: validate.artifacts([v]),
    lambda v: validate.page(v, 0),
]


@settings(max_examples=150, deadline=None)
@given(value=ANYTHING, which=st.integers(0, len(CHECKS) - 1))
def test_validators_never_raise_anything_else(value: Any, which: int) -> None:
    try:
        result = CHECKS[which](value)
    except ValidationError as exc:
        assert exc.problems and exc.problems[0][0]
        return
    if isinstance(result, str):
        result.encode("utf-8")  # what passes is storable text


@given(owner=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True),
       name=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True))
@settings(max_examples=100, deadline=None)
def test_every_well_formed_repository_is_accepted(owner: str, name: str) -> None:
    assert validate.repository(f"{owner}/{name}") == f"{owner}/{name}"
