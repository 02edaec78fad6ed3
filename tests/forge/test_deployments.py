"""Deployments: real GitOps commits read back with dulwich, superseding, current and history,
the deploy flow, the in-progress limit and the events."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from dulwich.repo import Repo

from flowdeck.core.errors import ConflictError, NotFoundError, ValidationError
from flowdeck.engine.engine import Engine
from flowdeck.engine.forge.gitops import GitOpsRepository
from forge.conftest import install, open_forge, release, sha
from helpers import wait_for_state

MANIFEST = "environments/staging/acme/shop/api.yaml"


def read_back(repo_path: Path, commit: str, path: str) -> dict[str, object]:
    """The manifest as committed, read with dulwich directly (not through the forge)."""
    with Repo(str(repo_path)) as repo:
        tree = repo[commit.encode()].tree
        _, blob = tree_lookup(repo, tree, path)
        return dict(yaml.safe_load(repo[blob].as_raw_string()))


def tree_lookup(repo: Repo, tree: bytes, path: str) -> tuple[int, bytes]:
    from dulwich.object_store import tree_lookup_path

    return tree_lookup_path(repo.__getitem__, tree, path.encode())


async def test_each_deployment_is_one_commit_and_supersedes_the_last(
        engine: Engine, tmp_path: Path) -> None:
    first, second = await release(engine, 1), await release(engine, 2, tag="v2")
    one = await engine.forge.create_deployment(first.id, "staging", by="dora")
    assert one.status == "active" and one.gitops_commit_sha is not None
    two = await engine.forge.create_deployment(second.id, "staging", by="erin")
    dev = await engine.forge.create_deployment(first.id, "dev", by="erin")
    repo_path = tmp_path / "data" / "gitops"
    manifest = read_back(repo_path, str(two.gitops_commit_sha), MANIFEST)
    assert manifest["environment"] == "staging"
    assert manifest["release"] == {  # type: ignore[comparison-overlap]
        "id": second.id, "number": 2, "canonical_id": second.canonical_id,
        "commit_sha": sha(2), "tag": "v2", "oci_uri": second.oci_uri, "oci_digest": None,
        "artifacts": [a.to_dict() for a in second.artifacts]}
    assert read_back(repo_path, str(one.gitops_commit_sha), MANIFEST)["release"][
        "number"] == 1  # type: ignore[index]
    history = GitOpsRepository(repo_path).history()
    assert [c[0] for c in history] == [dev.gitops_commit_sha, two.gitops_commit_sha,
                                       one.gitops_commit_sha]
    assert history[1][2] == [one.gitops_commit_sha]  # a chain: each commit on the last
    assert f"Deployment-Id: {two.id}" in history[1][1]
    current = await engine.forge.current_deployment("staging", "acme/shop", "api")
    assert current.id == two.id and current.release_number == 2
    assert set(current.current()) == {"deployment_id", "release_id", "release_number",
                                      "environment", "status", "deployed_at", "deployed_by",
                                      "gitops_commit_sha"}
    page = await engine.forge.deployment_history("staging", "acme/shop", "api", limit=1)
    assert page.total == 2 and [d.id for d in page.items] == [two.id]
    older = (await engine.forge.deployment_history("staging", "acme/shop", "api", limit=1,
                                                   offset=1)).items[0]
    assert (older.id, older.status) == (one.id, "superseded")
    with pytest.raises(NotFoundError):
        await engine.forge.current_deployment("production", "acme/shop", "api")
    with pytest.raises(ValidationError):
        await engine.forge.create_deployment(first.id, "qa", by="erin")
    events = await engine.event_reader.after(0, source="forge", kinds=[
        "deployment.created", "deployment.completed"])
    assert [e.kind for e in events[:2]] == ["deployment.created", "deployment.completed"]
    assert events[0].payload["data"] == {"deployment_id": one.id, "release_id": first.id,
                                         "environment": "staging", "deployed_by": "dora",
                                         "gitops_commit_sha": one.gitops_commit_sha}
    assert events[1].payload["data"]["status"] == "active"
    assert set(events[1].payload["data"]) == {"deployment_id", "environment", "status",
                                              "reconciliation_duration_seconds"}


DEPLOY_FLOW = """
    id: rollout
    namespace: ops
    inputs:
      - id: release
        type: STRING
      - id: environment
        type: STRING
      - id: manifest
        type: STRING
    tasks:
      - id: check
        type: io.kestra.plugin.core.execution.Fail
        condition: "{{ inputs.environment == 'dev' }}"
        errorMessage: dev is broken today
      - id: wait
        type: io.kestra.plugin.core.flow.Pause
      - id: done
        type: io.kestra.plugin.core.log.Log
        message: "rolled out {{ inputs.release }}"
    """


async def test_a_deploy_flow_decides_when_it_is_active(tmp_path: Path) -> None:
    engine = await open_forge(tmp_path / "data", deploy_flow="ops/rollout",
                              max_deployments_in_progress=2)
    try:
        with pytest.raises(ConflictError, match="does not exist"):
            await engine.forge.create_deployment((await release(engine, 1)).id, "staging",
                                                 by="dora")
        await install(engine, DEPLOY_FLOW)
        made = await release(engine, 2)
        pending = await engine.forge.create_deployment(made.id, "staging", by="dora")
        assert pending.status == "pending" and pending.execution_id is not None
        second = await engine.forge.create_deployment(made.id, "staging", by="dora")
        with pytest.raises(ConflictError, match="in progress"):
            await engine.forge.create_deployment(made.id, "staging", by="dora")
        execution = await wait_for_state(engine, pending.execution_id, "PAUSED")
        assert "environment: staging" in execution.inputs["manifest"]
        await engine.resume(pending.execution_id)
        await engine.wait_until_terminal(pending.execution_id, 10)
        async with asyncio.timeout(10):
            while (await engine.forge.get_deployment(pending.id)).status == "pending":
                await asyncio.sleep(0.02)
        assert (await engine.forge.get_deployment(pending.id)).status == "active"
        assert second.execution_id is not None
        await engine.kill_and_wait(second.execution_id)
        async with asyncio.timeout(10):
            while (await engine.forge.get_deployment(second.id)).status == "pending":
                await asyncio.sleep(0.02)
        failed = await engine.forge.get_deployment(second.id)
        assert failed.status == "failed" and "KILLED" in (failed.error or "")
        broken = await engine.forge.create_deployment(made.id, "dev", by="dora")
        assert broken.execution_id is not None
        await engine.wait_until_terminal(broken.execution_id, 10)
        async with asyncio.timeout(10):
            while (await engine.forge.get_deployment(broken.id)).status == "pending":
                await asyncio.sleep(0.02)
        assert (await engine.forge.get_deployment(broken.id)).status == "failed"
        completed = await engine.event_reader.after(0, source="forge",
                                                    kinds=["deployment.completed"])
        assert [e.payload["data"]["status"] for e in completed] == ["active", "failed",
                                                                     "failed"]
    finally:
        await engine.close()


async def test_pending_deployments_are_finished_after_a_restart(tmp_path: Path) -> None:
    engine = await open_forge(tmp_path / "data", deploy_flow="ops/rollout")
    try:
        await install(engine, DEPLOY_FLOW)
        made = await release(engine, 1)
        pending = await engine.forge.create_deployment(made.id, "staging", by="dora")
        assert pending.execution_id is not None
        await wait_for_state(engine, pending.execution_id, "PAUSED")
    finally:
        await engine.close()
    engine = await open_forge(tmp_path / "data", deploy_flow="ops/rollout")
    try:
        assert pending.execution_id is not None
        await wait_for_state(engine, pending.execution_id, "PAUSED")
        await engine.resume(pending.execution_id)
        async with asyncio.timeout(10):
            while (await engine.forge.get_deployment(pending.id)).status == "pending":
                await asyncio.sleep(0.02)
        assert (await engine.forge.get_deployment(pending.id)).status == "active"
    finally:
        await engine.close()


async def test_projects_show_the_latest_release_and_what_runs_where(engine: Engine) -> None:
    first = await release(engine, 1)
    await release(engine, 2)
    await release(engine, 3, project="web")
    await engine.forge.create_deployment(first.id, "dev", by="dora")
    projects = await engine.forge.list_projects()
    assert [(p.repository, p.project, p.latest_release and p.latest_release.release_number,
             p.releases, sorted(p.current)) for p in projects] == [
        ("acme/shop", "api", 2, 2, ["dev"]), ("acme/shop", "web", 1, 1, [])]
