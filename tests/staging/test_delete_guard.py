"""Delete refuses every name that does not fully match ^staging-[a-z0-9][a-z0-9-]{0,62}$,
exactly as received, and then deletes nothing; through the provider and through the engine."""

from __future__ import annotations

import asyncio
import string
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowdeck.core.ids import new_id
from flowdeck.engine.engine import Engine
from flowdeck.engine.staging import (
    CloneRequest,
    EnvironmentNotFound,
    InvalidEnvironmentName,
    check_deletable,
    is_deletable,
    provider_for,
)
from flowdeck.engine.staging.local import LocalProvider
from staging.conftest import run

ALLOWED_FIRST = set(string.ascii_lowercase + string.digits)
ALLOWED_REST = ALLOWED_FIRST | {"-"}
KEEP = ["staging-keep", "staging-x", "staging-a"]

LOOK_ALIKES = [
    "Staging-x",
    "STAGING-X",
    "staging-X",
    " staging-x",
    "staging-x ",
    "staging-x\n",
    "staging-x\r\n",
    "\tstaging-x",
    "staging-x\x00",
    "ｓｔａｇｉｎｇ-x",  # full-width letters  # noqa: RUF001
    "staging‐x",  # U+2010 hyphen  # noqa: RUF001
    "staging-ｘ",  # noqa: RUF001
    "staging-x/../prod",
    "staging-x/..",
    "../staging-x",
    "staging-x/",
    "prod-staging-x",
    "production",
    "staging-",
    "staging",
    "",
    "staging--x".replace("--", "-_"),
    "staging-" + "a" * 64,
    "staging-" + "a" * 100,
    "staging-*",
    "staging-x;rm -rf /",
    "staging-ß",
    "staging-\u0130",  # İ, whose lower() is "i̇"
    "staging-x\u200b",  # zero-width space
    "staging-x\u202e",  # right-to-left override
]


def oracle(name: str) -> bool:
    """The rule, written without a regular expression."""
    if not name.startswith("staging-"):
        return False
    rest = name[len("staging-"):]
    return (1 <= len(rest) <= 63 and rest[0] in ALLOWED_FIRST
            and all(ch in ALLOWED_REST for ch in rest))


def test_the_rule_itself() -> None:
    assert is_deletable("staging-x") and is_deletable("staging-0") and is_deletable(
        "staging-" + "a" * 63)
    assert is_deletable("staging-a-") and is_deletable("staging-a--b")
    assert not is_deletable("staging--a")
    for name in LOOK_ALIKES:
        assert not is_deletable(name), repr(name)
        assert not oracle(name), repr(name)
        with pytest.raises(InvalidEnvironmentName, match="refusing to delete"):
            check_deletable(name)
    for value in (None, 3, b"staging-x", ["staging-x"]):
        assert not is_deletable(value)


#: Capital S, Greek and Cyrillic capital T, full-width s, U+2010 hyphen, dotted capital I, ...
ODD = "S\u03a4\u0422_/. \n\t\x00\uff53\u2010\u0130"

names = st.one_of(
    st.from_regex(r"staging-[a-z0-9][a-z0-9-]{0,62}", fullmatch=True),
    st.text(max_size=80),
    st.text(alphabet=st.sampled_from(sorted(ALLOWED_REST | set(ODD))),
            max_size=75).map(lambda s: "staging-" + s),
    st.builds(lambda a, b: a + "staging-x" + b, st.text(max_size=3), st.text(max_size=3)),
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names)
def test_delete_refuses_unless_fullmatch(tmp_path: Path, name: str) -> None:
    root = tmp_path / "envs"
    local = LocalProvider(root, clock=lambda: datetime.now(UTC), new_id=new_id)
    for keep in KEEP:
        if not (root / keep).exists():
            asyncio.run(local.clone(CloneRequest(keep, "production", skip_database=True)))
    before = sorted(p.name for p in root.iterdir())

    async def attempt() -> str:
        try:
            await local.delete(name)
        except InvalidEnvironmentName:
            return "refused"
        except EnvironmentNotFound:
            return "not found"
        return "deleted"

    outcome = asyncio.run(attempt())
    after = sorted(p.name for p in root.iterdir())
    if oracle(name):
        assert outcome in ("deleted", "not found")
        assert after == sorted(set(before) - {name})
        if outcome == "deleted":  # put it back for the next example
            asyncio.run(local.clone(CloneRequest(name, "production", skip_database=True)))
    else:
        assert outcome == "refused", repr(name)
        assert after == before


async def test_look_alikes_through_the_engine(staging_engine: Engine) -> None:
    local = provider_for(staging_engine)
    for keep in KEEP:
        await local.clone(CloneRequest(keep, "production"))
    names_before = [e.name for e in await local.list()]
    for name in LOOK_ALIKES:
        done = await run(staging_engine, "delete-staging-environment", environment_name=name)
        assert done.state.current == "FAILED", repr(name)
        errors = [e.message for e in await staging_engine.logs.fetch(done.id)
                  if e.level == "ERROR"]
        expected = ("environment_name is required" if name == "" else "refusing to delete")
        assert len(errors) == 1 and expected in errors[0], (name, errors)
    assert [e.name for e in await local.list()] == names_before
    done = await run(staging_engine, "delete-staging-environment", environment_name="staging-x")
    assert done.state.current == "SUCCESS"
    assert [e.name for e in await local.list()] == [n for n in names_before if n != "staging-x"]
