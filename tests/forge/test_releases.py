"""Releases: numbering per repository and project under concurrent creates, lookups by every
identifier, oci_uri and digest, the trigger of a pipeline run, conflicts and the event."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flowdeck.core.errors import ConflictError, NotFoundError, ValidationError
from flowdeck.engine.engine import Engine
from forge.conftest import SHA, install, open_forge, release, sha

DIGEST = "sha256:" + "ab" * 32


async def test_fifty_concurrent_creates_number_without_gaps_or_duplicates(
        engine: Engine) -> None:
    await release(engine, 0, project="web")  # another project counts on its own
    created = await asyncio.gather(*(release(engine, n) for n in range(1, 51)))
    assert sorted(r.release_number for r in created) == list(range(1, 51))
    # a refused create (same commit) consumes no number
    with pytest.raises(ConflictError, match="already exists for commit"):
        await release(engine, 7)
    after = await release(engine, 51)
    assert after.release_number == 51
    page = await engine.forge.list_releases("acme/shop", "api", limit=5)
    assert page.total == 51 and [r.release_number for r in page.items] == [51, 50, 49, 48, 47]
    events = await engine.event_reader.after(0, source="forge", kinds=["release.created"],
                                             limit=1000)
    assert len(events) == 52
    assert {e.payload["data"]["release_number"] for e in events
            if e.payload["data"]["project"] == "api"} == set(range(1, 52))


async def test_lookup_by_id_number_tag_and_sha(engine: Engine) -> None:
    first = await release(engine, 1, tag="v1.2.3")
    assert first.canonical_id == f"acme/shop/api/{sha(1)}"
    assert [a.to_dict() for a in first.aliases] == [{"alias": "v1.2.3", "alias_type": "tag"},
                                                    {"alias": "1", "alias_type": "numeric"}]
    assert first.oci_uri == f"registry.example.com/acme/shop/api:{sha(1)[:12]}"
    assert first.trigger.to_dict() == {"trigger_type": "tag", "branch": None,
                                       "triggered_by": "alice"}
    for ref in (first.id, "1", "v1.2.3", sha(1), sha(1)[-12:].rjust(40, "0")):
        assert (await engine.forge.get_release("acme/shop", "api", ref)).id == first.id
    second = await release(engine, 2)
    assert (await engine.forge.get_release("acme/shop", "api", "2")).id == second.id
    with pytest.raises(NotFoundError, match="more than one"):
        await engine.forge.get_release("acme/shop", "api", "0000000")
    for ref in ("3", "v9", "deadbeef", first.id.replace("7", "6")):
        with pytest.raises(NotFoundError):
            await engine.forge.get_release("acme/shop", "api", ref)
    with pytest.raises(NotFoundError):
        await engine.forge.get_release("acme/shop", "web", first.id)
    with pytest.raises(ConflictError, match=r"tag 'v1\.2\.3' is already release 1"):
        await release(engine, 3, tag="v1.2.3")
    doc = first.to_dict()
    assert set(doc) == {"id", "repository", "project", "commit_sha", "release_number",
                        "oci_uri", "oci_digest", "created_at", "created_by", "artifacts",
                        "aliases", "trigger"}
    assert set(first.created()) == {"id", "release_number", "oci_uri", "canonical_id",
                                    "created_at"}


async def test_oci_uri_template_and_digest(tmp_path: Path) -> None:
    engine = await open_forge(tmp_path / "data",
                              oci_uri_template="reg.example/{owner}/{project}:{release_number}")
    try:
        made = await engine.forge.create_release("acme/shop", "api", SHA, [
            {"name": "api", "type": "container",
             "tracking_oci_uri": f"reg.example/acme/api@{DIGEST}"}], by="alice")
        assert made.oci_uri == "reg.example/acme/api:1" and made.oci_digest == DIGEST
        given = await engine.forge.create_release("acme/shop", "api", sha(2), [
            {"name": "cli", "type": "binary", "primary_published_uri": "https://dl/cli"}],
            by="alice", oci_digest="sha256:" + "cd" * 32)
        assert given.oci_digest == "sha256:" + "cd" * 32
        assert given.oci_uri == "reg.example/acme/api:2"
    finally:
        await engine.close()


async def test_the_trigger_comes_from_the_pipeline_run(engine: Engine) -> None:
    await install(engine, """
        id: shop
        namespace: pipelines.acme
        tasks:
          - id: build
            type: io.kestra.plugin.core.log.Log
            message: ok
        """)
    run = await engine.forge.create_run("acme/shop", "release/1.x", SHA, "carol", "push",
                                        by="ci")
    made = await engine.forge.create_release("acme/shop", "api", SHA, [], by="ci-bot",
                                             pipeline_run_id=run.id)
    assert made.trigger.to_dict() == {"trigger_type": "branch_push", "branch": "release/1.x",
                                      "triggered_by": "carol"}
    assert made.created_by == "ci-bot" and made.pipeline_run_id == run.id
    [event] = await engine.event_reader.after(0, source="forge", kinds=["release.created"])
    assert event.payload == {"event_type": "release.created", "timestamp": made.created_at,
                             "data": {"release_id": made.id, "repository": "acme/shop",
                                      "project": "api", "commit_sha": SHA,
                                      "release_number": 1, "trigger_type": "branch_push"}}
    with pytest.raises(ValidationError, match="built commit"):
        await engine.forge.create_release("acme/shop", "api", sha(9), [], by="ci",
                                          pipeline_run_id=run.id)
    with pytest.raises(ValidationError, match="not of acme/other"):
        await engine.forge.create_release("acme/other", "api", SHA, [], by="ci",
                                          pipeline_run_id=run.id)
    await engine.wait_until_terminal(run.id, 10)


@pytest.mark.parametrize(("field", "kwargs"), [
    ("repository", {"repository": "nope"}),
    ("project", {"project": "a/b"}),
    ("commit_sha", {"commit_sha": "g" * 40}),
    ("artifacts[0].type", {"artifacts": [{"name": "x", "type": "docker"}]}),
    ("artifacts[0].name", {"artifacts": [{"name": "\ud800", "type": "binary"}]}),
    ("artifacts", {"artifacts": "x"}),
    ("artifacts[0].size", {"artifacts": [{"name": "x", "type": "binary", "size": 1}]}),
    ("tag", {"tag": "42"}),
    ("pipeline_run_id", {"pipeline_run_id": "not-a-uuid"}),
    ("oci_digest", {"oci_digest": "md5:00"}),
])
async def test_hostile_release_requests_are_refused(engine: Engine, field: str,
                                                    kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"repository": "acme/shop", "project": "api", "commit_sha": SHA,
                               "artifacts": [], "by": "alice"}
    args.update(kwargs)
    with pytest.raises(ValidationError) as caught:
        await engine.forge.create_release(**args)  # type: ignore[arg-type]
    assert caught.value.problems[0][0] == field
