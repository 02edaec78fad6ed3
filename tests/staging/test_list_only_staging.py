"""The staging list shows staging environments only: never a source such as production."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowdeck.core.staging import response_of
from staging.conftest import open_staging_engine, run


def names(done: Any) -> list[str]:
    assert done.state.current == "SUCCESS", done.state.current
    response = response_of(done)
    assert response is not None
    return [e["name"] for e in response["environments"]]


def created(done: Any) -> str:
    assert done.state.current == "SUCCESS", done.state.current
    response = response_of(done)
    assert response is not None
    return str(response["environment_name"])


async def test_a_prefix_never_lists_a_source_environment(tmp_path: Path) -> None:
    engine = await open_staging_engine(tmp_path / "data")
    try:
        name = created(await run(engine, "clone-staging-api", client_name="acme"))
        assert names(await run(engine, "list-staging-environments")) == [name]
        for prefix in ("p", "prod", "production", ""):
            assert names(await run(engine, "list-staging-environments",
                                   filter_prefix=prefix)) == ([name] if prefix == "" else [])
        assert names(await run(engine, "list-staging-environments",
                               filter_prefix="staging-ac")) == [name]
        # A clone of a staging environment is a staging environment: both are listed.
        other = created(await run(engine, "clone-staging-api", client_name="beta",
                                  source_environment=name))
        assert sorted(names(await run(engine, "list-staging-environments"))) == sorted(
            [name, other])
    finally:
        await engine.close()
