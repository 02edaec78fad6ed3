"""Run retention, forge webhooks through the outbox, and the service role of worker tokens."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from flowdeck.core.clock import ManualClock
from flowdeck.engine.engine import Engine, EngineSettings
from flowdeck.engine.keys import SERVICE, TokenStore, role_allows
from forge.conftest import SHA, install, release
from webhook_receiver import webhook_receiver

PIPELINE = """
    id: shop
    namespace: pipelines.acme
    tasks:
      - id: build
        type: io.kestra.plugin.core.log.Log
        message: built
    """


async def test_runs_older_than_the_retention_are_purged_in_batches(tmp_path: Path) -> None:
    clock = ManualClock()
    settings = EngineSettings(data_dir=tmp_path / "data", scheduler=False, envs={},
                              extra={"forge": {"run_retention": "P90D"}})
    engine = await Engine.open(settings, clock=clock)
    try:
        await install(engine, PIPELINE)
        await install(engine, PIPELINE.replace("pipelines.acme", "team.other"))
        old = []
        for i in range(5):
            run = await engine.forge.create_run("acme/shop", "main", f"{i:07x}", "b", "push",
                                                by="b")
            await engine.wait_until_terminal(run.id, 10)
            old.append(run.id)
        other = await engine.create_execution("team.other", "shop")
        await engine.wait_until_terminal(other.id, 10)
        clock.advance(timedelta(days=91))
        recent = await engine.forge.create_run("acme/shop", "main", SHA, "b", "push", by="b")
        await engine.wait_until_terminal(recent.id, 10)
        made = await release(engine, 1, pipeline_run_id=None)
        assert await engine.forge.retention.purge(batch=2) == 5
        left = {r[0] for r in await engine.store.fetchall("SELECT id FROM executions")}
        assert left == {other.id, recent.id}
        for table, column in (("logs", "execution_id"), ("forge_nodes", "run_id")):
            rows = await engine.store.fetchall(
                f"SELECT COUNT(*) FROM {table} WHERE {column} IN ({','.join('?' * 5)})", old)
            assert rows[0][0] == 0
        assert (await engine.forge.list_runs("acme/shop")).total == 1
        assert (await engine.forge.release_by_id(made.id)).id == made.id  # releases stay
        assert await engine.forge.purge_runs() == 0
    finally:
        await engine.close()


async def test_forge_events_go_out_to_configured_webhooks(tmp_path: Path) -> None:
    async with webhook_receiver() as receiver:
        engine = await open_engine_with_hooks(tmp_path, receiver.url)
        try:
            made = await release(engine, 1)
            await engine.forge.create_deployment(made.id, "dev", by="dora")
            requests = await receiver.received(2, timeout=15)
            kinds = sorted(r.headers["x-webhook-event"] for r in requests)
            assert kinds == ["deployment.completed", "release.created"]
            assert all("x-webhook-signature" in r.headers for r in requests)
        finally:
            await engine.close()


async def open_engine_with_hooks(tmp_path: Path, url: str) -> Engine:
    settings = EngineSettings(data_dir=tmp_path / "data", scheduler=False, envs={}, extra={
        "forge": {"webhooks": [{"url": url, "events": ["release.created",
                                                       "deployment.completed"],
                                "secret": "s"}]},
        "webhooks": {"allow_private_targets": True}})
    return await Engine.open(settings)


async def test_service_tokens_may_do_only_what_requires_service(engine: Engine) -> None:
    assert role_allows(SERVICE, SERVICE)
    assert not any(role_allows(SERVICE, r) for r in ("viewer", "operator", "approver", "admin"))
    assert not any(role_allows(r, SERVICE) for r in ("viewer", "operator", "approver", "admin"))
    tokens = TokenStore(engine.store, engine.clock)
    token, secret = await tokens.create(SERVICE, "worker")
    assert token.role == SERVICE
    found = await tokens.authenticate(secret)
    assert found is not None and found.role == "service"


def test_the_migration_keeps_existing_tokens(tmp_path: Path) -> None:
    """A database at the schema before the forge's, with a Kestra token and a public API key:
    migrating keeps both (every column) and accepts 'service'."""
    import asyncio

    from flowdeck.engine.schema import MIGRATIONS, _statements

    FORGE_MIGRATION = next(i for i, m in enumerate(MIGRATIONS) if "forge_nodes" in m)

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        for number, script in enumerate(MIGRATIONS[:FORGE_MIGRATION]):
            for statement in _statements(script):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number + 1}")
        db.execute("INSERT INTO api_tokens(id, name, role, sha256, prefix, created_at) "
                   "VALUES ('t1', 'ops', 'admin', 'h', 'p', '2026-01-01T00:00:00Z')")
        db.execute("INSERT INTO api_tokens(id, name, role, sha256, prefix, created_at, kind, "
                   "allowed_workflows, usage_limit, usage_count, webhook_url) VALUES "
                   "('k1', 'site', 'viewer', 'hk', 'p', '2026-01-01T00:00:00Z', 'public', "
                   "'[\"a\"]', 100, 7, 'https://x.example')")

    async def migrate() -> None:
        import aiosqlite

        from flowdeck.engine.schema import migrate as run

        async with aiosqlite.connect(path, isolation_level=None) as conn:
            await run(conn)

    asyncio.run(migrate())
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT id, role, kind, allowed_workflows, usage_limit, usage_count, "
                          "webhook_url FROM api_tokens ORDER BY id").fetchall() == [
            ("k1", "viewer", "public", '["a"]', 100, 7, "https://x.example"),
            ("t1", "admin", "token", None, None, 0, None)]
        indexes = {r[1] for r in db.execute("PRAGMA index_list(api_tokens)")}
        assert "api_tokens_by_kind" in indexes
        db.execute("INSERT INTO api_tokens(id, name, role, sha256, prefix, created_at) "
                   "VALUES ('t2', 'w', 'service', 'h2', 'p', '2026-01-01T00:00:00Z')")
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
