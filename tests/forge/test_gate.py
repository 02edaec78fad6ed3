"""The production gate: an active, unexpired approval of that release for that environment,
made by someone other than the release's creator, used once; checked and consumed in the
deployment's own transaction (100 races each of revoke vs deploy and of two deploys)."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from flowdeck.core.clock import ManualClock
from flowdeck.core.errors import (
    ConflictError,
    NotFoundError,
    PermissionDenied,
    ValidationError,
)
from flowdeck.engine.engine import Engine, EngineSettings
from forge.conftest import release


async def open_with_clock(data_dir: Path, clock: ManualClock) -> Engine:
    settings = EngineSettings(data_dir=data_dir, scheduler=False, envs={},
                              extra={"forge": {}})
    return await Engine.open(settings, clock=clock)


async def deploy(engine: Engine, release_id: str, approval_id: str | None,
                 environment: str = "production") -> Any:
    return await engine.forge.create_deployment(release_id, environment, by="dora",
                                                approval_id=approval_id)


async def test_every_refusal_says_why(tmp_path: Path) -> None:
    clock = ManualClock()
    engine = await open_with_clock(tmp_path / "data", clock)
    try:
        one, two = await release(engine, 1), await release(engine, 2)
        with pytest.raises(PermissionDenied, match="needs the approval_id"):
            await deploy(engine, one.id, None)
        with pytest.raises(PermissionDenied, match="cannot approve it"):
            await engine.forge.create_approval(one.id, "production", "mine", by="alice")
        with pytest.raises(ValidationError, match="justification"):
            await engine.forge.create_approval(one.id, "production", "  ", by="bob")
        with pytest.raises(NotFoundError):
            await engine.forge.create_approval("00000000-0000-7000-8000-000000000000",
                                               "production", "ok", by="bob")
        for_two = await engine.forge.create_approval(two.id, "production", "ok", by="bob")
        with pytest.raises(PermissionDenied, match=f"is for release {two.id}"):
            await deploy(engine, one.id, for_two.id)
        staging = await engine.forge.create_approval(one.id, "staging", "ok", by="bob")
        with pytest.raises(PermissionDenied, match="is for staging, not production"):
            await deploy(engine, one.id, staging.id)
        revoked = await engine.forge.create_approval(one.id, "production", "ok", by="bob")
        assert (await engine.forge.revoke_approval(revoked.id, by="carol")).status == "revoked"
        with pytest.raises(ConflictError, match="already revoked by carol"):
            await engine.forge.revoke_approval(revoked.id, by="carol")
        with pytest.raises(PermissionDenied, match="was revoked by carol"):
            await deploy(engine, one.id, revoked.id)
        expiring = await engine.forge.create_approval(one.id, "production", "ok", by="bob")
        assert expiring.expires_at > expiring.approved_at
        clock.advance(timedelta(hours=24))
        assert (await engine.forge.get_approval(expiring.id)).status == "expired"
        with pytest.raises(PermissionDenied, match="expired at"):
            await deploy(engine, one.id, expiring.id)
        with pytest.raises(PermissionDenied, match="does not exist"):
            await deploy(engine, one.id, "00000000-0000-7000-8000-000000000000")
        # a self-made approval written some other way (an older version): still refused
        self_made = engine.new_id()
        now = "2026-01-02T00:00:00.000000Z"

        async def insert(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "INSERT INTO forge_approvals(id, release_id, environment, approver, "
                "justification, approved_at, expires_at) VALUES (?,?,?,?,?,?,?)",
                (self_made, one.id, "production", "alice", "x", now, "2999-01-01T00:00:00Z"))

        await engine.store.run(insert)
        with pytest.raises(PermissionDenied, match="who created the release"):
            await deploy(engine, one.id, self_made)
        good = await engine.forge.create_approval(one.id, "production", "reviewed", by="bob")
        status = await engine.forge.approval_status(one.id, "production")
        assert status.id == good.id and status.to_dict() == {
            "approval_id": good.id, "approver": "bob", "approved_at": good.approved_at,
            "expires_at": good.expires_at, "status": "active", "justification": "reviewed"}
        done = await deploy(engine, one.id, good.id)
        assert done.status == "active" and done.approval_id == good.id
        with pytest.raises(PermissionDenied, match=f"already used by deployment {done.id}"):
            await deploy(engine, one.id, good.id)
        with pytest.raises(ConflictError, match="already used"):
            await engine.forge.revoke_approval(good.id, by="carol")
        count = await engine.store.fetchone("SELECT COUNT(*) FROM forge_deployments")
        assert count is not None and count[0] == 1  # no refused one left a row
    finally:
        await engine.close()


async def jittered(rng: random.Random, call: Any) -> Any:
    await asyncio.sleep(rng.random() * 0.002)
    return await call


async def test_a_hundred_races_of_revoke_and_deploy(engine: Engine) -> None:
    rng = random.Random(12)
    made = await release(engine, 1)
    outcomes = {"deployed": 0, "revoked": 0}
    for i in range(100):
        approval = await engine.forge.create_approval(made.id, "production", "ok", by="bob")
        calls = [jittered(rng, deploy(engine, made.id, approval.id)),
                 jittered(rng, engine.forge.revoke_approval(approval.id, by="carol"))]
        if i % 2:
            calls.reverse()
        results = await asyncio.gather(*calls, return_exceptions=True)
        deployed = [r for r in results if getattr(r, "gitops_commit_sha", None)]
        errors = [r for r in results if isinstance(r, Exception)]
        assert len(errors) == 1, results
        if deployed:
            assert isinstance(errors[0], ConflictError)  # the revoke came too late
            outcomes["deployed"] += 1
        else:
            assert isinstance(errors[0], PermissionDenied)  # the deploy came too late
            outcomes["revoked"] += 1
    assert sum(outcomes.values()) == 100
    assert outcomes["deployed"] and outcomes["revoked"], outcomes  # both orders really raced
    # zero deployments on an invalid approval: each used approval is unrevoked and used once
    rows = await engine.store.fetchall(
        "SELECT d.id, a.used_by, a.revoked_at FROM forge_deployments d "
        "JOIN forge_approvals a ON a.id = d.approval_id")
    assert len(rows) == outcomes["deployed"]
    assert all(r[1] == r[0] and r[2] is None for r in rows)


async def test_a_hundred_races_of_two_deploys_sharing_one_approval(engine: Engine) -> None:
    rng = random.Random(34)
    made = await release(engine, 1)
    for _ in range(100):
        approval = await engine.forge.create_approval(made.id, "production", "ok", by="bob")
        results = await asyncio.gather(
            jittered(rng, deploy(engine, made.id, approval.id)),
            jittered(rng, deploy(engine, made.id, approval.id)), return_exceptions=True)
        refused = [r for r in results if isinstance(r, PermissionDenied)]
        assert len(refused) == 1 and "already used" in str(refused[0]), results
    rows = await engine.store.fetchall(
        "SELECT approval_id, COUNT(*) FROM forge_deployments GROUP BY approval_id")
    assert len(rows) == 100 and all(r[1] == 1 for r in rows)
    page = await engine.forge.deployment_history("production", "acme/shop", "api", limit=1000)
    assert page.total == 100
    assert [d.status for d in page.items].count("active") == 1


async def test_lookups_of_malformed_ids_are_not_found(engine: Engine) -> None:
    for bad in ("\ud800", "x" * 10_000, "../../etc", ""):
        with pytest.raises(NotFoundError):
            await engine.forge.get_run(bad)
        with pytest.raises(NotFoundError):
            await engine.forge.cancel_run(bad)
        with pytest.raises(NotFoundError):
            await engine.forge.approval_status(bad, "production")
        with pytest.raises(NotFoundError):
            await engine.forge.get_approval(bad)
        with pytest.raises(NotFoundError):
            await engine.forge.get_deployment(bad)
        with pytest.raises(NotFoundError):
            await engine.forge.release_by_id(bad)
        with pytest.raises(NotFoundError):
            await engine.forge.update_task_status(bad, "running")
        with pytest.raises(NotFoundError):
            await engine.forge.list_approvals(bad)
        with pytest.raises(ValidationError):
            await engine.forge.create_deployment(bad, "dev", by="x")
