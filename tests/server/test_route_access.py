"""Every route declares who may call it (fail closed), and `/me` says who the caller is."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from fastapi.routing import APIRoute, iter_route_contexts

from flowdeck.engine.keys import Role, TokenStore
from flowdeck.server.app import ServerOptions, create_app
from flowdeck.server.dialects import DEFAULT_DIALECTS
from helpers import open_engine
from live_server import start_server, stop_server


async def test_every_mounted_route_declares_its_access(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path / "data")
    try:
        app = create_app(engine)
    finally:
        await engine.close()
    host = app.state.host
    open_paths: set[str] = set()
    walked = 0
    for context in iter_route_contexts(app.routes):
        route, path = context.original_route, str(context.path)
        rules = host.declared(route)
        assert rules, f"{path} declares no access"
        if any(rule.open for rule in rules):
            assert len(rules) == 1, f"{path} is declared open and not open"
            open_paths.add(path)
        else:
            assert all(rule.roles and rule.roles <= set(Role) for rule in rules), path
        assert isinstance(route, APIRoute) or getattr(route, "access", None) is not None, path
        walked += 1
    assert walked > 100  # both tenants of every dialect, and the host's own routes
    listed = {p for dialect in DEFAULT_DIALECTS for p in dialect.open_routes} | {"/ping"}
    assert open_paths <= listed
    # What is open, exactly: liveness, Kestra's login probe and the webhook triggers.
    assert {p for p in open_paths if "/executions/webhook/" not in p} == {
        "/ping", "/api/v1/configs/login"}
    assert all(p.endswith(("/{key}", "/{key}/{path:path}")) for p in open_paths
               if "/executions/webhook/" in p)


@contextlib.asynccontextmanager
async def with_tokens(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    engine = await open_engine(tmp_path / "data")
    server, task, url = await start_server(engine, ServerOptions(auth_required=True))
    tokens = TokenStore(engine.store, engine.clock)
    secrets = {role: (await tokens.create(role, name=f"{role}-bot"))[1]
               for role in ("viewer", "approver", "service")}
    client = httpx.AsyncClient(base_url=url, timeout=30)
    try:
        yield client, secrets
    finally:
        await client.aclose()
        await stop_server(server, task)
        await engine.close()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_me_names_the_caller(tmp_path: Path) -> None:
    async with with_tokens(tmp_path) as (client, secrets):
        for path in ("/api/v1/me", "/api/v1/main/me"):
            me = await client.get(path, headers=bearer(secrets["approver"]))
            assert me.json() == {"kind": "token", "name": "approver-bot", "role": "approver"}
            assert (await client.get(path)).status_code == 401
        # A service token may call only what declares `service`: not even a viewer's read.
        refused = await client.get("/api/v1/main/me", headers=bearer(secrets["service"]))
        assert refused.status_code == 403 and "'viewer' or above" in refused.json()["detail"]
        flows = await client.get("/api/v1/main/flows/search", headers=bearer(secrets["service"]))
        assert flows.status_code == 403
        assert (await client.get("/api/v1/main/flows/search", headers=bearer(secrets["viewer"]))
                ).status_code == 200


async def test_me_without_auth_is_anonymous_admin(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path / "data")
    server, task, url = await start_server(engine)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            me = await client.get("/api/v1/main/me")
            assert me.json() == {"kind": "anonymous", "name": "anonymous", "role": "admin"}
    finally:
        await stop_server(server, task)
        await engine.close()
